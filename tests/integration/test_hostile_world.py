"""A hostile world (issue 26), each probe on real servers: a spool disk that fills (a real
tmpfs), a device codec that runs away on one uplink (real QuickJS), and more below. In every
probe nothing acknowledged is lost, `/healthz` answers within a second throughout and says in
words what is wrong, and the ingestor recovers by itself."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.site import default_site_text
from devstack.services import InfluxDB, Mosquitto
from ingest.settings import IngestSettings
from tests.faultproxy import FaultProxy
from tests.helpers import (
    ENERGY_DEVICES,
    IngestProcess,
    Publisher,
    count,
    faketime_env,
    fill,
    ingest_process,
    local_settings,
    query,
    small_tmpfs,
    wait_until,
)
from tests.unit.test_codec_sandbox import RUNAWAY_UPLINK, TEXT_FRAME_CODEC

log = logging.getLogger(__name__)


@pytest.fixture
def own_influx(tmp_path: Path) -> Iterator[InfluxDB]:
    with InfluxDB(tmp_path / "influx").start() as db:
        yield db


class HealthWatch:
    """Asks /healthz every 0.2 s with a 1 s limit while a probe runs; keeps the slowest answer
    and every failure to answer, and the statuses and problems seen."""

    def __init__(self, ingest: IngestProcess) -> None:
        self.ingest = ingest
        self.slowest = 0.0
        self.unanswered: list[str] = []
        self.seen: list[dict[str, Any]] = []
        # Set around a deliberate restart: no one answers until the new process listens.
        self.restarting = False

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                started = time.monotonic()
                try:
                    async with session.get(
                        f"{self.ingest.health_url}/healthz",
                        timeout=aiohttp.ClientTimeout(total=1.0),
                    ) as r:
                        self.seen.append(await r.json())
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    if not self.restarting:
                        self.unanswered.append(repr(exc))
                if not self.restarting:
                    self.slowest = max(self.slowest, time.monotonic() - started)
                await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def watching(ingest: IngestProcess) -> AsyncIterator[HealthWatch]:
    watch = HealthWatch(ingest)
    task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not watch.unanswered, watch.unanswered[:3]
    assert watch.slowest < 1.0


def _dead_letter_watcher(port: int, seen: list[dict[str, Any]]) -> paho.Client:
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id="deadletter-watch")
    watcher.on_message = lambda c, u, m: seen.append(json.loads(m.payload))
    watcher.connect("127.0.0.1", port)
    watcher.subscribe("kera/kera/deadletter", qos=0)
    watcher.loop_start()
    return watcher


async def test_a_full_spool_disk_is_a_state_not_a_crash(
    broker: Mosquitto, own_influx: InfluxDB, tmp_path: Path
) -> None:
    """InfluxDB is down and the spool's 2 MiB filesystem fills with 30,000 QoS 1 readings. The
    ingestor says so (503, in words, in metrics and the log) and acknowledges nothing more; it
    restarts on the full disk without error; once InfluxDB is back, replay drains the spool
    without needing a free byte, and every reading arrives, with no one freeing space."""
    db = own_influx
    n = 30_000
    with small_tmpfs(tmp_path / "disk", "2m") as disk:
        settings = local_settings(
            broker.url, db.url, "diskfull", tmp_path, spool_dir=disk / "spool",
            batch_size=200, influx_timeout_s=1.0,
        )  # fmt: skip
        base = int(time.time() * 1000) - 3_600_000
        async with (
            ingest_process(settings, tmp_path / "ingest.log") as ingest,
            watching(ingest) as watch,
        ):
            db.stop()
            with Publisher(broker.port, "diskfull-pub") as pub:
                thread = threading.Thread(target=pub.energy, args=(n, base, 3000.0), daemon=True)
                thread.start()

                async def disk_full() -> dict[str, Any] | None:
                    h = await ingest.health()
                    return h if h["spool"]["disk_full"] else None

                health = await wait_until(disk_full, timeout=60)
                assert health["status"] == "failing"
                assert health["http_status"] == 503
                assert any("no space left" in p for p in health["problems"]), health
                assert str(disk / "spool") in health["spool"]["disk_error"]
                metrics = await ingest.metrics()
                assert metrics["kera_ingest_spool_disk_full"] == 1
                assert metrics["kera_ingest_spool_disk_full_events_total"] == 1
                assert metrics["kera_ingest_spool_disk_free_bytes"] < 64 << 10
                assert "spool disk refused a batch: no space left" in ingest.log()
                # The warning came before the refusal: the disk ran low first.
                assert any(h["spool"]["disk_low"] for h in watch.seen)
                thread.join()

                # A restart on the full disk starts and waits, as before it.
                watch.restarting = True
                ingest.kill()
                ingest.start()
                await ingest.wait_connected()
                watch.restarting = False
                await wait_until(disk_full, timeout=30)

                db.start()

                async def stored() -> bool:
                    return await count(settings, "energy", "power_w") >= n

                await wait_until(stored, timeout=180, interval=0.5)
                assert await count(settings, "energy", "power_w") == n

                async def recovered() -> bool:
                    h = await ingest.health()
                    return h["status"] == "ok" and not h["spool"]["disk_full"]

                await wait_until(recovered, timeout=30)
                assert await wait_until(lambda: pub.unacknowledged() == 0, timeout=30)
            assert "spool disk takes batches again" in ingest.log()
            assert ingest.starts == 2
            assert ingest.terminate() == 0


async def test_dead_letters_are_published_when_their_file_cannot_be_written(
    broker: Mosquitto, settings: IngestSettings, tmp_path: Path
) -> None:
    """The spool's disk is full of something else while InfluxDB is fine: readings are stored,
    and a rejected message still reaches the dead-letter topic; the lost file copy is counted."""
    seen: list[dict[str, Any]] = []
    watcher = _dead_letter_watcher(broker.port, seen)
    try:
        with small_tmpfs(tmp_path / "disk", "256k") as disk:
            settings = settings.model_copy(update={"spool_dir": disk / "spool"})
            async with ingest_process(settings, tmp_path / "ingest.log") as ingest:
                fill(disk / "filler")
                with Publisher(broker.port, "dl-pub") as pub:
                    pub.energy(100, int(time.time() * 1000) - 60_000, rate=1000.0)
                    pub.client.publish("kera/kera/no-such-meter/telemetry", b'{"power_w": 1}', 1)

                    async def stored() -> bool:
                        return await count(settings, "energy", "power_w") >= 100

                    await wait_until(stored, timeout=30)
                    await wait_until(lambda: seen, timeout=10)
                assert seen[0]["reason"] == "unknown_device"
                assert seen[0]["device"] == "no-such-meter"
                metrics = await ingest.metrics()
                assert metrics["kera_ingest_dead_letter_errors_total"] == 1
                assert "cannot keep 1 dead letters in the file" in ingest.log()
                assert ingest.terminate() == 0
    finally:
        watcher.loop_stop()
        watcher.disconnect()


async def test_a_runaway_codec_costs_one_uplink_not_the_ingestor(
    broker: Mosquitto, settings: IngestSettings, tmp_path: Path
) -> None:
    """A device codec with a backtracking regular expression and one 41-byte uplink froze the
    whole ingestor (QuickJS does not interrupt its regex engine) and froze it again after every
    restart, as the broker redelivered the message. Now the codec runs in its worker: the uplink
    is dead-lettered `codec_failed` after the deadline, every other reading is stored, /healthz
    answers within 1 s throughout, the device's next uplink decodes, and a restart has nothing
    to redeliver."""
    (tmp_path / "text.js").write_text(TEXT_FRAME_CODEC)
    site = tmp_path / "site.yaml"
    site.write_text(
        default_site_text().replace(
            "\ndevices:\n",
            "\ndevices:\n  - {id: air-text, kind: indoor_air, space: lab, codec: text.js, "
            "dev_eui: '00000000000000aa'}\n",
            1,
        )
    )
    settings = settings.model_copy(update={"site_config": site, "codec_deadline_s": 0.5})
    seen: list[dict[str, Any]] = []
    watcher = _dead_letter_watcher(broker.port, seen)
    base = int(time.time() * 1000) - 60_000
    try:
        async with (
            ingest_process(settings, tmp_path / "ingest.log") as ingest,
            watching(ingest) as watch,
        ):
            with Publisher(broker.port, "codec-pub") as pub:
                pub.client.publish(*_tts_uplink("air-text", RUNAWAY_UPLINK), qos=1)
                pub.energy(500, base, rate=500.0)
                pub.client.publish(*_tts_uplink("air-text", b"T=21.5;C=600"), qos=1)
                pub.published += 2

                async def stored() -> bool:
                    energy = await count(settings, "energy", "power_w")
                    return energy >= 500 and await count(settings, "indoor_air", "co2_ppm") >= 1

                await wait_until(stored, timeout=30)
                await wait_until(lambda: seen, timeout=10)
                assert await wait_until(lambda: pub.unacknowledged() == 0, timeout=10)
            assert seen[0]["reason"] == "codec_failed"
            assert "did not finish within 0.5 s" in seen[0]["detail"]
            assert seen[0]["device"] == "air-text"
            metrics = await ingest.metrics()
            assert metrics['kera_ingest_rejected_total{reason="codec_failed"}'] == 1
            assert "codec worker missed its deadline" in ingest.log()

            watch.restarting = True
            assert ingest.terminate() == 0
            ingest.start()
            await ingest.wait_connected()
            watch.restarting = False
            await asyncio.sleep(1)
            assert (await ingest.metrics())["kera_ingest_messages_total"] == 0
            assert ingest.terminate() == 0
    finally:
        watcher.loop_stop()
        watcher.disconnect()


def _tts_uplink(device: str, frame: bytes) -> tuple[str, bytes]:
    """An undecoded uplink in The Things Stack v3's MQTT message shape (its integration docs)."""
    body = {
        "end_device_ids": {"device_id": device, "dev_eui": "00000000000000AA"},
        "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "uplink_message": {
            "f_port": 1,
            "f_cnt": 7,
            "frm_payload": base64.b64encode(frame).decode(),
            "rx_metadata": [{"rssi": -101, "snr": -3.5}],
        },
    }
    return f"v3/kera@ttn/devices/{device}/up", json.dumps(body).encode()


async def test_hostile_sizes_stay_outside_and_retained_junk_counts_once(
    broker: Mosquitto, settings: IngestSettings, tmp_path: Path
) -> None:
    """A 50 MB payload raised the ingestor's RSS by hundreds of MB before it was refused: the
    CONNECT now announces a Maximum Packet Size (from KERA_MAX_PAYLOAD_BYTES) and the broker
    drops the packet. A payload just over the limit still arrives and is dead-lettered with its
    reason. Retained junk on a telemetry topic is dead-lettered once, not at every restart."""
    with Publisher(broker.port, "sizes-pub") as pub:
        pub.client.publish("kera/kera/em-main/telemetry", b"{not json", qos=1, retain=True)
        pub.published += 1
        assert await wait_until(lambda: pub.unacknowledged() == 0, timeout=10)
        async with ingest_process(settings, tmp_path / "ingest.log") as ingest:

            async def metric(name: str) -> float:
                return (await ingest.metrics()).get(name, 0.0)

            bad_json = 'kera_ingest_rejected_total{reason="bad_json"}'
            await wait_until(lambda: metric(bad_json), timeout=10)
            before = ingest.rss()
            pub.client.publish("kera/kera/em-main/telemetry", b"x" * (50 << 20), qos=1)
            pub.client.publish("kera/kera/em-main/telemetry", b"y" * (100 << 10), qos=1)
            pub.published += 2
            assert await wait_until(lambda: pub.unacknowledged() == 0, timeout=30)
            too_large = 'kera_ingest_rejected_total{reason="payload_too_large"}'
            await wait_until(lambda: metric(too_large), timeout=10)
            await asyncio.sleep(1)
            assert ingest.rss() - before < 20 << 20
            assert await metric("kera_ingest_messages_total") == 2  # the junk, the 100 KB one

            assert ingest.terminate() == 0
            ingest.start()
            await ingest.wait_connected()
            pub.energy(1, int(time.time() * 1000) - 1000, rate=100.0)

            async def one() -> bool:
                return await metric("kera_ingest_accepted_total") == 1

            await wait_until(one, timeout=10)
            # The resumed session does not get the retained junk again.
            assert await metric("kera_ingest_messages_total") == 1
            assert ingest.terminate() == 0


async def test_a_slow_database_gets_merged_writes_and_is_reported(
    broker: Mosquitto, influx: InfluxDB, database: str, tmp_path: Path
) -> None:
    """Every InfluxDB answer 3 s late (a TCP proxy that delays each request): one batch per
    write stored 22 points/s against 300/s arriving, and /healthz said "ok". Batches queued
    behind a slow write are merged now, so all 3,000 readings land within seconds of the last
    publish, and /healthz says `degraded` with the reason while it lasts."""
    async with FaultProxy(int(influx.url.rsplit(":", 1)[1]), delay_s=3.0) as proxy:
        settings = local_settings(broker.url, proxy.url, database, tmp_path, evaluate=False)
        direct = settings.model_copy(update={"influx_url": influx.url})
        async with (
            ingest_process(settings, tmp_path / "ingest.log") as ingest,
            watching(ingest) as watch,
        ):
            with Publisher(broker.port, "slow-pub") as pub:
                started = time.monotonic()
                thread = threading.Thread(
                    target=pub.energy, args=(3000, int(time.time() * 1000) - 60_000, 300.0)
                )
                thread.start()
                await asyncio.to_thread(thread.join)

                async def stored() -> bool:
                    return await count(direct, "energy", "power_w") >= 3000

                await wait_until(stored, timeout=60, interval=0.5)
                took = time.monotonic() - started
            assert await count(direct, "energy", "power_w") == 3000
            assert took < 30, took  # 10 s of publishing; one batch per write took minutes
            slow = [h for h in watch.seen if h["writer"]["slow"]]
            assert slow, "never reported slow"
            assert slow[-1]["status"] == "degraded"
            assert any("InfluxDB answers slowly" in p for p in slow[-1]["problems"])
            metrics = await ingest.metrics()
            assert metrics["kera_ingest_batches_written_total"] < 30
            assert metrics["kera_ingest_last_write_seconds"] >= 3.0
            assert ingest.terminate() == 0


async def test_a_frozen_database_at_start_does_not_keep_the_ingestor_away(
    broker: Mosquitto, own_influx: InfluxDB, tmp_path: Path
) -> None:
    """The evaluating ingestor loaded the rollups' history before subscribing, with aiohttp's
    5-minute timeout: with InfluxDB frozen it answered 503 for 322 s. Now it subscribes within
    seconds and loads the history beside the live readings, which wait for the rollups."""
    db = own_influx
    assert db.proc is not None
    settings = local_settings(broker.url, db.url, "frozen", tmp_path, influx_timeout_s=2.0)
    assert settings.evaluate
    db.proc.send_signal(signal.SIGSTOP)
    try:
        ingest = IngestProcess(settings, tmp_path / "ingest.log").start()
        started = time.monotonic()
        await ingest.wait_connected(timeout=10)
        assert time.monotonic() - started < 8
        async with watching(ingest):
            with Publisher(broker.port, "frozen-pub") as pub:
                pub.energy(200, int(time.time() * 1000) - 60_000, rate=200.0)
                await asyncio.sleep(2)
                db.proc.send_signal(signal.SIGCONT)

                async def stored() -> bool:
                    return await count(settings, "energy", "power_w") >= 200

                await wait_until(stored, timeout=60, interval=0.5)
        # The history loads (or is given up, within its bounds) once InfluxDB answers again.
        await wait_until(
            lambda: "rollups: loaded" in ingest.log() or "could not load" in ingest.log(),
            timeout=60,
            interval=0.5,
        )
        assert ingest.terminate() == 0
    finally:
        db.proc.send_signal(signal.SIGCONT)


def _live_energy(pub: Publisher, rounds: int, gap_s: float) -> None:
    """Five meters, each reading stamped with the test's (right) clock, `gap_s` apart."""
    for k in range(rounds):
        for device in ENERGY_DEVICES[:5]:
            body = {"ts": int(time.time() * 1000), "power_w": 100.0 + k, "energy_kwh": 1.0 + k}
            pub.client.publish(f"kera/kera/{device}/telemetry", json.dumps(body), qos=1)
            pub.published += 1
        time.sleep(gap_s)


@pytest.mark.parametrize(("offset", "behind"), [("-2h", True), ("+2h", False)])
async def test_a_wrong_ingestor_clock_is_named(
    broker: Mosquitto, settings: IngestSettings, tmp_path: Path, offset: str, behind: bool
) -> None:
    """The ingestor's clock 2 h off its devices' (libfaketime on the ingestor only). Behind, all
    readings were rejected ts_in_future while /healthz said "ok" and the log blamed the devices;
    ahead, readings without a time were stamped in the future, unnoticed. Now /healthz, the
    metrics and the `pipeline` point say the ingestor's clock is wrong, by how much and which
    way, and the rejections say it may be the ingestor's."""
    settings = settings.model_copy(update={"pipeline_interval_s": 1.0})
    async with ingest_process(settings, tmp_path / "ingest.log", faketime_env(offset)) as ingest:
        with Publisher(broker.port, "clock-pub") as pub:
            await asyncio.to_thread(_live_energy, pub, 3, 2.2)
            assert await wait_until(lambda: pub.unacknowledged() == 0, timeout=10)

        async def suspect() -> dict[str, Any] | None:
            h = await ingest.health()
            return h if h["clock"]["suspect"] else None

        health = await wait_until(suspect, timeout=10)
        assert health["status"] == "degraded"
        assert health["clock"]["devices"] == 5
        assert abs(abs(health["clock"]["skew_s"]) - 7200) < 60
        words = "behind its devices'" if behind else "ahead of its devices'"
        assert any(words in p for p in health["problems"]), health["problems"]
        metrics = await ingest.metrics()
        assert metrics["kera_ingest_clock_suspect"] == 1
        assert (metrics["kera_ingest_clock_skew_seconds"] > 0) is behind
        rejected = metrics.get('kera_ingest_rejected_total{reason="ts_in_future"}', 0)
        accepted = metrics["kera_ingest_accepted_total"]
        assert (rejected, accepted) == ((15, 0) if behind else (0, 15))
        if behind:
            assert "the ingestor's clock is behind" in ingest.log()
        await asyncio.sleep(1.5 * settings.pipeline_interval_s)
        assert ingest.terminate() == 0
    points = await query(
        settings, 'SELECT last("clock_suspect"), last("clock_skew_s") FROM "pipeline"'
    )
    assert points[0]["values"][0][1] == 1
