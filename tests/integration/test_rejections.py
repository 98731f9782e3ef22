"""Bad messages are rejected with distinct, logged reasons while valid readings keep landing."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devstack.services import Mosquitto
from ingest.settings import IngestSettings
from tests.helpers import count, rows, running_ingestor, wait_until

# Run again with the clock 400 days ahead by scripts/test (the age and future limits).
pytestmark = pytest.mark.shifted_clock


def publisher(broker: Mosquitto) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-pub")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


async def test_bad_messages_get_reasons_and_good_ones_land(
    settings: IngestSettings, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ingest.rejected")
    base = int(time.time() * 1000) - 60_000
    bad = [
        ("kera/kera/em-main/telemetry", b'{"power_w": 1200, "energy_kwh": ', "bad_json"),
        ("kera/kera/em-ghost/telemetry", b'{"power_w": 1, "energy_kwh": 2}', "unknown_device"),
        ("kera/kera/occ-cafe/telemetry", b'{"people": "many"}', "wrong_type"),
        ("kera/kera/bin-bio-1/telemetry", b"{}", "missing_field"),
    ]
    async with running_ingestor(settings) as ingestor:
        pub = publisher(broker)
        try:
            for i in range(50):
                ts = base + i * 1000
                good = {"ts": ts, "power_w": 1000.0 + i, "energy_kwh": 100.0 + i / 100}
                pub.publish("kera/kera/em-main/telemetry", json.dumps(good), qos=1)
                topic, payload, _ = bad[i % len(bad)]
                pub.publish(topic, payload, qos=1).wait_for_publish(5)

            async def landed() -> bool:
                return await count(settings, "energy", "power_w") == 50

            await wait_until(landed)
        finally:
            pub.disconnect()
            pub.loop_stop()
        stats = ingestor.stats
    assert ingestor.rollups is not None
    got = sorted(r["power_w"] for r in await rows(settings, "energy"))
    assert got == [1000.0 + i for i in range(50)]
    assert stats.rejected == {
        "bad_json": 13,
        "unknown_device": 13,
        "wrong_type": 12,
        "missing_field": 12,
    }
    # The ingestor's own `pipeline` points (one at least, written at shutdown) count too.
    own = await rows(settings, "pipeline")
    per_device = await rows(settings, "rejections")
    # And the rollups of the 50 readings (an hour or day may be written more than once).
    rolled = ingestor.rollups.written
    assert rolled >= len(await rows(settings, "energy_hourly")) > 0
    assert stats.points_written == 50 + len(own) + len(per_device) + rolled
    by_device: dict[str, int] = {}
    for r in per_device:
        by_device[r["device"]] = by_device.get(r["device"], 0) + r["rejected"]
    # em-ghost is not registered: counted as unknown, so made-up ids cannot create series.
    assert by_device == {"em-main": 13, "unknown": 13, "occ-cafe": 12, "bin-bio-1": 12}
    assert sum(r["rejected_bad_json"] for r in own) == 13
    assert sum(r["rejected"] for r in own) == 50
    assert sum(r["messages"] for r in own) == 100
    letters = [
        json.loads(line)
        for line in (settings.spool_path() / "dead-letters.jsonl").read_text().splitlines()
    ]
    assert Counter(e["reason"] for e in letters) == stats.rejected
    ghost = next(e for e in letters if e["reason"] == "unknown_device")
    assert ghost["topic"] == "kera/kera/em-ghost/telemetry"
    assert json.loads(ghost["payload"]) == {"power_w": 1, "energy_kwh": 2}
    logged = {r.getMessage().split()[1] for r in caplog.records if r.name == "ingest.rejected"}
    assert logged == {"bad_json", "unknown_device", "wrong_type", "missing_field"}
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "em-ghost" in messages
    assert "people must be an integer" in messages
    assert "no waste_bin fields in the message" in messages


async def test_unknown_vendor_fields_are_stored_around_counted_and_listed(
    settings: IngestSettings, broker: Mosquitto
) -> None:
    """A firmware update adds a field: the reading still lands, the new field is counted per
    device and field in InfluxDB, and `kera-ingest unknown-fields` lists it. A frame with only
    unknown fields (device information) is no reading, not a rejection."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    base = int(time.time() * 1000) - 60_000
    async with running_ingestor(settings) as ingestor:
        pub = publisher(broker)
        try:
            for i in range(5):
                body = {"ts": base + i * 1000, "people": i, "co2_ppm": 600, "fw_extra": i}
                pub.publish("kera/kera/occ-cafe/telemetry", json.dumps(body), qos=1)
            info = {"firmware": "2.1", "serial": "x1"}
            pub.publish("kera/kera/occ-cafe/telemetry", json.dumps(info), qos=1).wait_for_publish(5)

            async def landed() -> bool:
                return await count(settings, "occupancy", "people") == 5

            await wait_until(landed)
        finally:
            pub.disconnect()
            pub.loop_stop()
        stats = ingestor.stats
    assert not stats.rejected
    assert stats.no_reading == 1
    assert stats.accepted == 5
    stored = await rows(settings, "occupancy")
    assert all("fw_extra" not in r for r in stored)
    env = dict(os.environ, KERA_INFLUX_URL=settings.influx_url, KERA_INFLUX_DB=settings.influx_db)
    exe = str(Path(sys.executable).with_name("kera-ingest"))
    out = subprocess.run(
        [exe, "unknown-fields", "--json"],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows_out = [json.loads(line) for line in out.stdout.splitlines()]
    listed = {(r["device"], r["field"]): r["count"] for r in rows_out}
    assert listed == {("occ-cafe", "fw_extra"): 5, ("occ-cafe", "firmware"): 1,
                      ("occ-cafe", "serial"): 1}  # fmt: skip
    down = dict(env, KERA_INFLUX_URL="http://127.0.0.1:9")
    failed = subprocess.run(
        [exe, "unknown-fields"], env=down, check=False, capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 2
    assert "could not query InfluxDB" in failed.stderr
    assert "Traceback" not in failed.stderr
