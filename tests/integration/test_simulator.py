"""The simulator as a real process against a real Mosquitto (and, end to end, the ingestor and
InfluxDB): what the summary counts is what the broker delivered, devices behave like firmware
across a broker restart, faults land as their reasons, and the commissioning helpers work."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices import Registry
from devstack.services import Mosquitto
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from ingest.reading import DeadLetter
from ingest.settings import IngestSettings
from tests.helpers import count, ingest_process, point_field, rows, wait_until

FAULTS = [
    "--drop", "0.01",
    "--outage", "0.003",
    "--outage-s", "1200",
    "--stuck", "0.01",
    "--spike", "0.01",
    "--outlier", "0.01",
    "--malformed", "0.02",
    "--duplicate", "0.02",
    "--battery-drain",
]  # fmt: skip


def kera_sim(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("kera-sim"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, check=True)


class Listener:
    """A persistent-session QoS 1 subscriber that keeps everything it receives, in order."""

    def __init__(self, port: int, topic: str = "kera/kera/#", client_id: str = "listener") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        # Set by the SUBACK: from then on nothing published is missed.
        self.subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.c.reconnect_delay_set(1, 1)
        self.c.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.c.loop_start()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


async def _quiet(listener: Listener, for_s: float = 1.0) -> None:
    """Wait until nothing new has arrived for `for_s`."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < for_s:
        n = len(listener.messages)
        if n != last:
            last, since = n, time.monotonic()
        await asyncio.sleep(0.1)


async def test_fault_counts_match_what_the_broker_delivered(
    broker: Mosquitto, tmp_path: Path
) -> None:
    listener = Listener(broker.port)
    try:
        assert await asyncio.to_thread(listener.subscribed.wait, 10), "no SUBACK"
        result = kera_sim(
            "run", "--duration", str(2 * 86400), "--speed", "0", "--start", "-2d",
            "--seed", "5", "--mqtt-url", broker.url, "--json", "--quiet", *FAULTS,
        )  # fmt: skip
        summary = json.loads(result.stdout)
        await _quiet(listener)
    finally:
        listener.close()
    telemetry = [(t, p) for t, p, _ in listener.messages if t.endswith("/telemetry")]
    status = Counter(p.decode() for t, p, _ in listener.messages if t.endswith("/status"))
    faults = summary["faults"]
    assert len(telemetry) == summary["published"]
    assert status["online"] == summary["status"]["online"]
    # Offline: only the last wills the broker published for devices that dropped off
    # (outages, empty batteries); the end of the run is a clean disconnect of every device.
    assert status["offline"] == summary["status"]["will"]
    assert summary["status"]["disconnected"] > 0
    assert summary["status"]["will"] == faults["outages"] + faults["battery_empty"] > 0
    assert faults["missed_offline"] > 0
    broken = sum(1 for _, p in telemetry if not _is_json(p))
    # Each device has its own connection, so its messages keep their order per topic.
    by_device: dict[str, list[bytes]] = {}
    for t, p in telemetry:
        by_device.setdefault(t, []).append(p)
    twice = sum(1 for ps in by_device.values() for a, b in itertools.pairwise(ps) if a == b)
    assert twice == faults["duplicates"] > 0
    assert broken >= faults["malformed_json"] > 0
    # A broken message duplicated arrives twice; nothing else is broken.
    assert broken <= 2 * faults["malformed_json"]
    assert faults["dropped"] > 0
    assert faults["stuck"] > 0
    assert faults["spikes"] > 0


def _is_json(payload: bytes) -> bool:
    try:
        json.loads(payload)
    except ValueError:
        return False
    return True


async def test_devices_reconnect_and_send_their_buffer_after_a_broker_restart(
    tmp_path: Path,
) -> None:
    broker = Mosquitto(tmp_path / "mosquitto").start()
    listener = Listener(broker.port)
    assert await asyncio.to_thread(listener.subscribed.wait, 10), "no SUBACK"
    record = tmp_path / "published.jsonl"
    exe = str(Path(sys.executable).with_name("kera-sim"))
    sim = subprocess.Popen(
        [
            exe, "run", "--duration", "10", "--speed", "120", "--start", "-1h", "--seed", "3",
            "--mqtt-url", broker.url, "--record", str(record), "--json", "--quiet",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        await asyncio.sleep(3)
        broker.stop()
        await asyncio.sleep(2)
        broker.start()
        out, _ = await asyncio.to_thread(sim.communicate, timeout=120)
        assert sim.returncode == 0
        summary = json.loads(out)
        await _quiet(listener, 2.0)
    finally:
        listener.close()
        if sim.poll() is None:
            sim.kill()
        broker.stop()
    assert summary["network"]["reconnects"] >= summary["devices"]
    assert summary["network"].get("buffer_overflow", 0) == 0
    sent = [json.loads(line) for line in record.read_text().splitlines()]
    sent_telemetry = Counter(
        (m["topic"], m["payload"]) for m in sent if m["topic"].endswith("/telemetry")
    )
    got = Counter((t, p.decode()) for t, p, _ in listener.messages if t.endswith("/telemetry"))
    # Every reading arrived, including those buffered while the broker was away (a QoS 1
    # reading in flight at the cut may arrive twice).
    assert set(got) == set(sent_telemetry)
    assert sum(got.values()) >= sum(sent_telemetry.values())


async def test_faulty_fleet_end_to_end(
    settings: IngestSettings, broker: Mosquitto, tmp_path: Path
) -> None:
    """The core end-to-end run with faults on: valid readings land, faulty ones are rejected
    with their reasons, devices that dropped off show offline in device_status."""
    record = tmp_path / "published.jsonl"
    async with ingest_process(settings, tmp_path / "ingest.log") as ingest:
        result = kera_sim(
            "run", "--duration", "4", "--speed", "1800", "--start", "-3h", "--seed", "8",
            "--mqtt-url", settings.mqtt_url, "--record", str(record), "--json", "--quiet",
            *FAULTS,
        )  # fmt: skip
        summary = json.loads(result.stdout)
        published = [json.loads(line) for line in record.read_text().splitlines()]
        telemetry = [p for p in published if p["topic"].endswith("/telemetry")]

        # The ingestor's verdict on each message, worked out offline with its own code.
        registry = Registry.load()
        judge = Pipeline(registry, Stats())
        expected_points: dict[str, set[str]] = {}
        expected_reasons: Counter[str] = Counter()
        for p in telemetry:
            verdict = judge.handle(p["topic"], p["payload"].encode(), summary["sim_end_ms"])
            if isinstance(verdict, DeadLetter):
                expected_reasons[verdict.reason.value] += 1
            else:
                for line in verdict:
                    measurement = line.split(",", 1)[0]
                    expected_points.setdefault(measurement, set()).add(
                        line.rsplit(" ", 1)[1] + line.split(" ")[0]
                    )
        assert expected_reasons["bad_json"] > 0
        assert expected_reasons["out_of_range"] > 0

        async def all_judged() -> bool:
            m = await ingest.metrics()
            return m["kera_ingest_messages_total"] >= len(published)

        await wait_until(all_judged, timeout=60)
        for measurement, points in expected_points.items():

            async def landed(m: str = measurement, n: int = len(points)) -> bool:
                return await count(settings, m, point_field(m)) == n

            await wait_until(landed, timeout=30)
        metrics = await ingest.metrics()
        for reason, n in expected_reasons.items():
            assert metrics[f'kera_ingest_rejected_total{{reason="{reason}"}}'] == n, reason
        assert ingest.terminate() == 0

    wills = {p["topic"].split("/")[2] for p in published if p.get("will")}
    assert wills
    assert summary["status"]["will"] > 0
    status = await rows(settings, "device_status")
    offline = {r["device"] for r in status if r["online"] is False}
    assert wills <= offline


async def test_send_watch_and_replay(
    settings: IngestSettings, broker: Mosquitto, tmp_path: Path
) -> None:
    exe = str(Path(sys.executable).with_name("kera-sim"))
    watcher = subprocess.Popen(
        [exe, "watch", "--count", "2", "--timeout", "30", "--json", "--mqtt-url", broker.url],
        stdout=subprocess.PIPE,
        text=True,
    )
    await asyncio.sleep(1.0)
    ok = kera_sim(
        "send", "occ-cafe", "people=4", "co2_ppm=650", "fw_build=7", "--mqtt-url", broker.url
    )
    assert "will accept it" in ok.stderr
    bad = subprocess.run(
        [exe, "send", "occ-cafe", "people=many", "--mqtt-url", broker.url],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "wrong_type" in bad.stderr
    out, _ = await asyncio.to_thread(watcher.communicate, timeout=60)
    seen = [json.loads(line) for line in out.splitlines()]
    assert [s["accepted"] for s in seen] == [True, False]
    assert seen[1]["reason"] == "wrong_type"
    assert json.loads(seen[0]["payload"])["people"] == 4
    # A field the contract does not have is stored around, and the technician sees it named.
    assert seen[0]["ignored"] == ["fw_build"]
    assert "fw_build" not in " ".join(seen[0]["lines"])

    # Replay a recording (the simulator's own --record output) and a CSV, into the ingestor.
    record = tmp_path / "rec.jsonl"
    kera_sim(
        "run", "--duration", "1800", "--speed", "0", "--start", "-1h", "--seed", "4",
        "--mqtt-url", broker.url, "--record", str(record), "--quiet",
    )  # fmt: skip
    csv_file = tmp_path / "meter.csv"
    base = int(time.time() * 1000) - 600_000
    csv_file.write_text(
        "device,ts,power_w,energy_kwh\n"
        + "".join(f"em-workshop,{base + i * 1000},{100 + i},{5 + i / 100}\n" for i in range(20))
    )
    async with ingest_process(settings, tmp_path / "ingest.log"):
        replayed = json.loads(
            kera_sim(
                "replay", str(record), "--speed", "0", "--json", "--mqtt-url", broker.url
            ).stdout
        )
        lines = record.read_text().splitlines()
        assert replayed["sent"] == len(lines)
        kera_sim("replay", str(csv_file), "--speed", "20", "--mqtt-url", broker.url)
        n_energy = sum(
            1 for line in lines if "/em-" in json.loads(line)["topic"] and "telemetry" in line
        )

        async def landed() -> bool:
            return await count(settings, "energy", "power_w") == n_energy + 20

        await wait_until(landed, timeout=30)


async def test_backfill_a_day(settings: IngestSettings, tmp_path: Path) -> None:
    async with ingest_process(settings, tmp_path / "ingest.log"):
        summary = json.loads(
            kera_sim(
                "backfill", "--days", "1", "--json", "--quiet", "--mqtt-url", settings.mqtt_url
            ).stdout
        )
        n = summary["by_kind"]["occupancy"]

        async def landed() -> bool:
            return bool(await count(settings, "occupancy", "people") == n)

        await wait_until(landed, timeout=60)
    span = await rows(settings, "occupancy")
    times = [r["time"] for r in span]
    assert max(times) - min(times) > 23 * 3_600_000
