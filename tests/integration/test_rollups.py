"""A simulated day backfilled through the real pipeline: the hourly energy rollups add up to the
meters' own counter deltas."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from devices import Registry
from devstack.services import Mosquitto
from firmware_sim import Links, run
from ingest.mqtt import parse_mqtt_url
from ingest.settings import IngestSettings
from tests.helpers import count, query, running_ingestor, wait_until

pytestmark = pytest.mark.integration


async def test_hourly_energy_matches_the_counters(
    settings: IngestSettings, broker: Mosquitto, tmp_path: Path
) -> None:
    registry = Registry.load()
    now = int(time.time() * 1000)
    async with running_ingestor(settings) as ingestor:
        links = Links(parse_mqtt_url(settings.mqtt_url), "kera", client_prefix="rollup-sim")
        summary = await asyncio.to_thread(
            run, registry, links, seed=4, start_ms=now - 86_400_000 - 60_000,
            duration_s=86_400.0, speed=0,
        )  # fmt: skip
        n = summary.by_kind["energy_meter"]

        async def stored() -> bool:
            return await count(settings, "energy", "energy_kwh") == n

        await wait_until(stored, timeout=60)
    assert ingestor.rollups is not None and ingestor.rollups.too_late == 0
    counters = await query(settings, 'SELECT spread("energy_kwh") FROM "energy" GROUP BY "device"')
    hourly = await query(
        settings, 'SELECT sum("kwh"), count("kwh") FROM "energy_hourly" GROUP BY "device"'
    )
    delta = {s["tags"]["device"]: s["values"][0][1] for s in counters}
    rolled = {s["tags"]["device"]: (s["values"][0][1], s["values"][0][2]) for s in hourly}
    assert set(rolled) == set(delta) == {d.id for d in registry if d.kind == "energy_meter"}
    for device, total in delta.items():
        kwh, hours = rolled[device]
        assert kwh == pytest.approx(total, rel=0.005), device
        assert 24 <= hours <= 26, device
