"""A hostile world (issue 26), each probe on real servers: a spool disk that fills (a real
tmpfs), and more below. In every probe nothing acknowledged is lost, `/healthz` answers within a
second throughout and says in words what is wrong, and the ingestor recovers by itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack.services import InfluxDB, Mosquitto
from ingest.settings import IngestSettings
from tests.helpers import (
    IngestProcess,
    Publisher,
    count,
    fill,
    ingest_process,
    local_settings,
    small_tmpfs,
    wait_until,
)

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
