"""10,000 hostile messages alongside the simulator's traffic, all through real processes: the
ingestor stays up, every valid reading lands, every hostile message is dead-lettered (file and
topic) with the reason expected for it, and the `pipeline` measurement counts the same."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices import Registry
from devices.site import default_site_text
from devstack.services import Mosquitto
from ingest.settings import IngestSettings
from ingest.storage.deadletter import PAYLOAD_KEEP
from tests.helpers import Publisher, count, ingest_process, point_field, rows, wait_until

# Run again with the clock 400 days ahead by scripts/test (age and future limits, hostile input).
pytestmark = pytest.mark.shifted_clock

N_HOSTILE = 10_000


def hostile_messages(now_ms: int) -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected reason) for every way in, cycled up to N_HOSTILE."""
    t = "kera/kera/{}/telemetry"
    tts = "v3/kera-waste@ttn/devices/{}/up"
    received_at = datetime.fromtimestamp(now_ms / 1000, UTC).isoformat().replace("+00:00", "Z")

    def uplink(device: str, **up: Any) -> bytes:
        msg = {
            "end_device_ids": {"device_id": device, "dev_eui": "70B3D57ED0061001"},
            # Relative to the clock: a fixed date would pass the 30-day age limit one day.
            "received_at": received_at,
            "uplink_message": {"f_cnt": 1, **up},
        }
        return json.dumps(msg).encode()

    def j(obj: object) -> bytes:
        return json.dumps(obj).encode()

    kinds: list[tuple[str, bytes, str]] = [
        (t.format("em-main"), b'{"power_w": 1200, "energy_kwh": ', "bad_json"),
        (t.format("em-main"), b"\xff\xfe\x00power", "not_utf8"),
        (t.format("occ-cafe"), b'{"people": "' + b"x" * 70_000 + b'"}', "payload_too_large"),
        (t.format("occ-cafe"), b"[" * 20_000, "json_too_deep"),
        (t.format("occ-cafe"), j({f"k{i}": i for i in range(3000)}), "too_many_keys"),
        (t.format("occ-cafe"), b"[1, 2, 3]", "not_object"),
        (t.format("intruder-7"), j({"power_w": 1.0, "energy_kwh": 2.0}), "unknown_device"),
        (t.format("em-main"), j({"power_w": 1.0, "energy_kwh": 2.0, "colour": 1}), "unknown_field"),
        (t.format("occ-cafe"), j({"people": "many"}), "wrong_type"),
        (t.format("em-main"), b'{"power_w": NaN, "energy_kwh": 1}', "not_finite"),
        (t.format("occ-cafe"), j({"people": 2, "humidity_pct": 150}), "out_of_range"),
        (t.format("occ-cafe"), j({"ts": now_ms + 86_400_000, "people": 1}), "ts_in_future"),
        (t.format("occ-cafe"), j({"ts": now_ms - 60 * 86_400_000, "people": 1}), "ts_too_old"),
        (t.format("occ-cafe"), j({"ts": "yesterday", "people": 1}), "bad_timestamp"),
        ("kera/kera/bin-bio-1/status", b"maybe", "bad_status"),
        (tts.format("someone-else"), uplink("bin-bio-1", decoded_payload={}), "bad_topic"),
        (tts.format("bin-bio-1"), uplink("bin-bio-1", frm_payload="AQI="), "bad_format"),
        ("kera/kera/senml/gw", j([{"n": "em-main/power_w", "u": "Cel", "v": 1}]), "bad_unit"),
        (t.format("bin-bio-1"), j({}), "missing_field"),
        # Line-protocol injection attempts: they never reach a line, because names and types
        # are checked against the contract first.
        (
            t.format("em-main"),
            j({"power_w": 1, "energy_kwh": 1, "x=1,device=em-solar power_w": 9}),
            "unknown_field",
        ),
        (
            t.format("em-main"),
            j({"power_w": "1\nenergy,site=kera,device=em-solar power_w=9", "energy_kwh": 1}),
            "wrong_type",
        ),
    ]
    return [kinds[i % len(kinds)] for i in range(N_HOSTILE)]


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


async def test_hostile_flood_beside_simulator(
    settings: IngestSettings, broker: Mosquitto, tmp_path: Path
) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text(
        default_site_text()
        .replace("unknown_devices: reject", "unknown_devices: quarantine")
        # A site that refuses fields it does not know, so that the injection attempts through
        # field names are rejected (with the default `ignore` they are counted, not stored).
        .replace("  - codec: native ", "  - unknown_fields: reject\n    codec: native ")
    )
    settings = settings.model_copy(update={"site_config": site_file, "pipeline_interval_s": 1.0})
    registry = Registry.load(site_file)

    seen_on_topic: list[dict[str, Any]] = []
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id="deadletter-watch")
    watcher.on_message = lambda c, u, m: seen_on_topic.append(json.loads(m.payload))
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("kera/kera/deadletter", qos=0)
    watcher.loop_start()

    now_ms = int(time.time() * 1000)
    hostile = hostile_messages(now_ms)
    record = tmp_path / "published.jsonl"
    async with ingest_process(settings, tmp_path / "ingest.log") as ingest:
        with Publisher(broker.port, "hostile-pub") as pub:

            def flood() -> None:
                for topic, payload, _ in hostile:
                    pub.client.publish(topic, payload, qos=1)
                    pub.published += 1

            thread = threading.Thread(target=flood, daemon=True)
            thread.start()
            sim = subprocess.run(
                [
                    _bin("kera-sim"),
                    "run",
                    "--duration",
                    "4",
                    "--speed",
                    "1200",
                    "--start",
                    "-2h",
                    "--seed",
                    "11",
                    "--mqtt-url",
                    settings.mqtt_url,
                    "--config",
                    str(site_file),
                    "--record",
                    str(record),
                    "--json",
                    "--quiet",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            thread.join(120)
            sim_summary = json.loads(sim.stdout)

            async def all_seen() -> bool:
                m = await ingest.metrics()
                rejected = sum(
                    v for k, v in m.items() if k.startswith("kera_ingest_rejected_total")
                )
                return rejected >= N_HOSTILE and pub.unacknowledged() == 0

            await wait_until(all_seen, timeout=120, interval=0.5)
            assert ingest.proc is not None
            assert ingest.proc.poll() is None
            assert (await ingest.health())["status"] == "ok"

        published = [json.loads(line) for line in record.read_text().splitlines()]
        telemetry = Counter(
            registry.get(p["topic"].split("/")[2]).spec.measurement  # type: ignore[union-attr]
            for p in published
            if p["topic"].endswith("/telemetry")
        )
        status = sum(1 for p in published if p["topic"].endswith("/status"))
        assert sum(telemetry.values()) == sim_summary["published"]

        async def counts() -> dict[str, int]:
            return {m: await count(settings, m, point_field(m)) for m in telemetry}

        async def stored() -> bool:
            # The hostile flood is judged when all_seen; the simulator's last batch may still
            # be on its way to InfluxDB then.
            return all(got >= telemetry[m] for m, got in (await counts()).items())

        with contextlib.suppress(TimeoutError):
            await wait_until(stored, timeout=30)
        assert await counts() == dict(telemetry)
        assert await count(settings, "device_status", "online") == status
        assert ingest.terminate() == 0

    expected = Counter(reason for _, _, reason in hostile)
    letters = [
        json.loads(line)
        for line in (settings.spool_path() / "dead-letters.jsonl").read_text().splitlines()
    ]
    assert Counter(e["reason"] for e in letters) == expected
    by_reason = {r: [(t, p) for t, p, why in hostile if why == r] for r in expected}
    for e in letters:
        raw = e["payload"].encode() if "payload" in e else base64.b64decode(e["payload_b64"])
        kept = {(t, p[:PAYLOAD_KEEP]) for t, p in by_reason[e["reason"]]}
        assert (e["topic"], raw) in kept
        assert e["truncated"] is (e["payload_bytes"] > PAYLOAD_KEEP)

    own = await rows(settings, "pipeline")
    for reason, n in expected.items():
        assert sum(r[f"rejected_{reason}"] for r in own) == n, reason
    assert sum(r["rejected"] for r in own) == N_HOSTILE
    assert sum(r["messages"] for r in own) == N_HOSTILE + len(published)

    await wait_until(lambda: _settled(seen_on_topic, N_HOSTILE), timeout=30)
    watcher.disconnect()
    watcher.loop_stop()
    assert Counter(e["reason"] for e in seen_on_topic) == expected

    quarantined = (settings.spool_path() / "quarantine.jsonl").read_text().splitlines()
    assert len(quarantined) == expected["unknown_device"]
    cli = subprocess.run(
        [
            _bin("kera-ingest"),
            "quarantine",
            "--spool-dir",
            str(settings.spool_path()),
            "--config",
            str(site_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "intruder-7" in cli.stdout
    assert "kind: energy_meter" in cli.stdout


async def _settled(seen: list[dict[str, Any]], n: int) -> bool:
    return len(seen) >= n
