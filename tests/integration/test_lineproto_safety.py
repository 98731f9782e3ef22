"""Line protocol safety, property-tested against the real InfluxDB: whatever names a site file
gives and whatever values a device sends, an accepted reading becomes exactly one point whose
tags and fields read back equal to what was accepted. Nothing can add points, tags or fields."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import Registry, Site
from devstack.services import InfluxDB
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from ingest.storage.query import influxql
from ingest.storage.transports import InfluxTarget, V1Transport

# What the site file allows in a tag value: any text without control characters or backslash.
tag_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\\x7f"),
    min_size=1,
    max_size=40,
)
finite = st.floats(allow_nan=False, allow_infinity=False)
occupancy = st.fixed_dictionaries(
    {"people": st.integers(0, 100_000)},
    optional={
        "co2_ppm": st.floats(0, 10_000),
        "temperature_c": st.floats(-50, 80),
        "humidity_pct": st.floats(0, 100),
    },
)
energy = st.fixed_dictionaries(
    {"power_w": st.floats(-1e6, 1e6), "energy_kwh": st.floats(0, 1e12)},
    optional={"voltage_v": st.floats(0, 500)},
)
waste = st.fixed_dictionaries(
    {"distance_mm": st.floats(0, 20_000)},
    optional={"tilt": st.booleans(), "battery_pct": st.floats(0, 100)},
)
_times = itertools.count(1_790_000_000_000, 1000)


@pytest.fixture(scope="module")
def db(influx: InfluxDB) -> tuple[str, str]:
    asyncio.run(_create(influx.url, "lpsafety"))
    return influx.url, "lpsafety"


async def _create(url: str, database: str) -> None:
    t = V1Transport(InfluxTarget(url, database))
    await t.start()
    await t.create_database()
    await t.close()


async def _write(url: str, database: str, lines: list[str]) -> None:
    t = V1Transport(InfluxTarget(url, database))
    await t.start()
    try:
        await t.write("\n".join(lines).encode())
    finally:
        await t.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    space=tag_text,
    kind_values=st.one_of(
        st.tuples(st.just("occupancy"), occupancy),
        st.tuples(st.just("energy_meter"), energy),
        st.tuples(st.just("waste_bin"), waste),
    ),
    device_suffix=st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=20),
)
def test_accepted_reading_reads_back_as_exactly_itself(
    db: tuple[str, str], space: str, kind_values: tuple[str, dict[str, object]], device_suffix: str
) -> None:
    url, database = db
    kind, values = kind_values
    device: dict[str, object] = {"id": f"d{device_suffix}", "kind": kind, "space": space}
    if kind == "waste_bin":
        device.update(depth_mm=20_000, fraction="glass")
    registry = Registry(Site.model_validate({"site": "kera", "devices": [device]}))
    ts = next(_times)
    payload = json.dumps({"ts": ts, **values}).encode()
    lines = Pipeline(registry, Stats()).handle(f"kera/kera/d{device_suffix}/telemetry", payload, ts)
    assert isinstance(lines, list)
    assert len(lines) == 1
    asyncio.run(_write(url, database, lines))

    measurement = registry.get(f"d{device_suffix}").spec.measurement  # type: ignore[union-attr]
    series = asyncio.run(
        influxql(url, f'SELECT * FROM "{measurement}" WHERE time = {ts}ms', database)
    )
    assert len(series) == 1
    assert len(series[0]["values"]) == 1
    row = dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))
    assert row["site"] == "kera"
    assert row["space"] == space
    assert row["device"] == f"d{device_suffix}"
    for name, value in values.items():
        assert row[name] == value, name
    tag_keys = asyncio.run(influxql(url, f'SHOW TAG KEYS FROM "{measurement}"', database))
    allowed = {"site", "space", "device", "fraction", "role"}
    assert {v[0] for v in tag_keys[0]["values"]} <= allowed
    names = asyncio.run(influxql(url, "SHOW MEASUREMENTS", database))
    assert {v[0] for v in names[0]["values"]} <= {"energy", "occupancy", "waste_bin"}
