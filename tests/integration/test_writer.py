"""The writer against a real InfluxDB: escaping round trips, and nothing accepted is lost while
InfluxDB is away."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices import Registry, parse_site
from devstack.services import InfluxDB, Mosquitto
from ingest.influx import InfluxTarget, V1Transport, influxql
from ingest.lineproto import LineEncoder
from ingest.reading import Reading
from ingest.settings import IngestSettings
from tests.helpers import count, running_ingestor, wait_until

pytestmark = pytest.mark.integration

AWKWARD = [
    "plain",
    'quote " inside',
    'back\\slash and \\" both',
    "new\nline and\r\nCRLF",
    "ääkköset, Kerä = Espoo ✓",
    "trailing backslash \\",
    "",
]


async def test_line_protocol_round_trip(influx: InfluxDB, database: str) -> None:
    registry = Registry(
        parse_site(
            "site: kera\ndevices:\n"
            "  - {id: occ-1, kind: occupancy, space: 'Kokoushuone 1, itä = east'}\n"
        )
    )
    device = registry.get("occ-1")
    assert device is not None
    encoder = LineEncoder("kera")
    lines = [
        encoder.encode(Reading("notes", device, 1_000 + i, {"text": s, "n": i, "ok": i % 2 == 0}))
        for i, s in enumerate(AWKWARD)
    ]
    transport = V1Transport(InfluxTarget(influx.url, database))
    await transport.start()
    try:
        await transport.create_database()
        await transport.write("\n".join(lines).encode())
    finally:
        await transport.close()
    series = await influxql(influx.url, "SELECT * FROM notes", database)
    cols = series[0]["columns"]
    got = [dict(zip(cols, v, strict=True)) for v in series[0]["values"]]
    assert [g["text"] for g in got] == AWKWARD
    assert [g["n"] for g in got] == list(range(len(AWKWARD)))
    assert {g["space"] for g in got} == {"Kokoushuone 1, itä = east"}
    assert [g["time"] for g in got] == [1_000 + i for i in range(len(AWKWARD))]


async def test_influxdb_outage_loses_nothing(broker: Mosquitto, tmp_path: Path) -> None:
    """Readings published while InfluxDB is down stay unacknowledged (the broker keeps them)
    and land once it is back."""
    db = InfluxDB(tmp_path / "influx").start()
    settings = IngestSettings(
        mqtt_url=broker.url,
        influx_url=db.url,
        influx_db="outage",
        mqtt_client_id="outage",
        flush_interval_s=0.05,
        stats_interval_s=3600,
        spool_dir=tmp_path / "spool",
        health_port=0,
    )
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="outage-pub")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    base = int(time.time() * 1000) - 3_600_000

    def publish(start: int, n: int) -> None:
        for i in range(start, start + n):
            body = {"ts": base + i, "power_w": float(i), "energy_kwh": 1.0}
            pub.publish("kera/kera/em-main/telemetry", json.dumps(body), qos=1)

    try:
        async with running_ingestor(settings) as ingestor:
            publish(0, 500)
            await wait_until(lambda: count(settings, "energy", "power_w"), timeout=20)
            db.stop()
            publish(500, 1500)
            # The writer keeps retrying: nothing acknowledged, nothing dropped.
            await wait_until(lambda: _retried(ingestor.stats.write_retries), timeout=20)
            db = InfluxDB(tmp_path / "influx", port=db.port).start()

            async def all_in() -> bool:
                return await count(settings, "energy", "power_w") == 2000

            await wait_until(all_in, timeout=60)
            assert ingestor.stats.points_dead_lettered == 0
    finally:
        pub.disconnect()
        pub.loop_stop()
        db.stop()


async def _retried(n: int) -> bool:
    await asyncio.sleep(0)
    return n > 0
