"""The writer against a real InfluxDB: escaping round trips, refused points dead-lettered one by
one, and nothing accepted is lost while InfluxDB is away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion

from devices import Registry, parse_site
from devstack.services import InfluxDB, Mosquitto
from ingest.observability.counters import Stats
from ingest.reading import Reading
from ingest.storage.batch import Batch
from ingest.storage.deadletter import DeadLetters
from ingest.storage.lineproto import LineEncoder
from ingest.storage.query import influxql
from ingest.storage.spool import Spool
from ingest.storage.transports import InfluxTarget, V1Transport
from ingest.storage.writer import BatchWriter
from tests.helpers import (
    Acks,
    count,
    http_server,
    local_settings,
    running_ingestor,
    wait_until,
)

AWKWARD = [
    "plain",
    'quote " inside',
    'back\\slash and \\" both',
    "new\nline and\r\nCRLF",
    "ääkköset, Kerä = Espoo ✓",
    "trailing backslash \\",
    "",
]


@contextlib.asynccontextmanager
async def running_writer(
    url: str, database: str, tmp_path: Path, create_database: bool = True, **options: Any
) -> AsyncIterator[tuple[BatchWriter, Acks]]:
    """The writer with its spool and dead letters in `tmp_path`, both of its tasks running;
    yields it and the connection its batches acknowledge on (give it to their `connection`)."""
    transport = V1Transport(InfluxTarget(url, database))
    await transport.start()
    if create_database:
        await transport.create_database()
    spool = Spool(tmp_path / "spool").open()
    acked = Acks()
    writer = BatchWriter(transport, spool, DeadLetters(tmp_path / "spool"), Stats(), **options)
    tasks = [asyncio.create_task(writer.run()), asyncio.create_task(writer.replay())]
    try:
        yield writer, acked
    finally:
        for task in tasks:
            task.cancel()
        await transport.close()
        spool.close()


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
    settings = local_settings(broker.url, db.url, "outage", tmp_path)
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


def _retried(n: int) -> bool:
    return n > 0


async def test_refused_points_are_dead_lettered_exactly(
    influx: InfluxDB, database: str, tmp_path: Path
) -> None:
    """A 400 for some points of a batch: exactly those go to the dead letters, the rest is
    stored, and the batch is acknowledged."""
    async with running_writer(influx.url, database, tmp_path) as (writer, acked):
        # power_w exists as a float from now on, so string values conflict with it.
        await writer.transport.write(b"energy,device=seed power_w=1.5 1000")
        good = [f"energy,device=d{i % 7} power_w={i}.5 {2000 + i}" for i in range(97)]
        bad = [
            'energy,device=bad power_w="a string" 5000',
            "energy,device=bad power_w= 5001",  # unparseable
            'energy,device=bad power_w="another" 5002',
        ]
        lines = good[:40] + bad[:1] + good[40:70] + bad[1:] + good[70:]
        writer.submit(Batch(lines, ids=[1, 2, 3], connection=acked))
        await asyncio.wait_for(writer.drain(), 30)
    assert acked.ids == [[1, 2, 3]]
    letters = [json.loads(line) for line in writer.dead_letters.path.read_text().splitlines()]
    assert [letter["line"] for letter in letters] == bad
    assert all(letter["detail"].startswith("HTTP 400") for letter in letters)
    assert {letter["reason"] for letter in letters} == {"influx_refused"}
    assert writer.stats.points_dead_lettered == 3
    assert writer.spool.empty
    assert writer.healthy
    series = await influxql(influx.url, 'SELECT count("power_w") FROM "energy"', database)
    assert series[0]["values"][0][1] == 1 + len(good)


async def test_429_is_spooled_and_replayed_after_retry_after(tmp_path: Path) -> None:
    """An overloaded InfluxDB answering 429 with Retry-After: the batch is spooled and
    acknowledged at once, and replay waits at least as long as asked before trying again."""
    calls: list[float] = []
    stored: list[bytes] = []

    async def write(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            return web.Response(status=429, headers={"Retry-After": "1"}, text="slow down")
        stored.append(await request.read())
        return web.Response(status=204)

    lines = [f"energy,device=em-main power_w={i} {1000 + i}" for i in range(10)]
    async with (
        http_server("/write", write) as url,
        running_writer(url, "kera", tmp_path, False, backoff_initial_s=0.01) as (writer, acked),
    ):
        writer.submit(Batch(lines, ids=[7], connection=acked))
        await asyncio.wait_for(writer.drain(), 5)
        assert acked.ids == [[7]]  # acknowledged once spooled, before the write
        assert writer.stats.points_spooled == 10
        assert not stored

        def replayed() -> bool:
            return bool(stored) and writer.spool.empty

        await wait_until(replayed, timeout=10)
    assert stored == ["\n".join(lines).encode()]
    assert len(calls) == 3
    assert calls[2] - calls[1] >= 0.95  # Retry-After, not the 10 ms backoff
    assert writer.healthy


async def test_a_batch_for_another_retention_policy_stays_there_through_the_spool(
    tmp_path: Path,
) -> None:
    """Rollups go to their own retention policy (KERA_ROLLUPS_RP), also when they had to wait in
    the spool for InfluxDB to come back."""
    db = InfluxDB(tmp_path / "influx").start()
    try:
        await influxql(db.url, 'CREATE DATABASE "rp"')
        await influxql(
            db.url, 'CREATE RETENTION POLICY "forever" ON "rp" DURATION INF REPLICATION 1'
        )
        async with running_writer(db.url, "rp", tmp_path) as (writer, acked):
            writer.submit(Batch(["energy_hourly,device=m kwh=1.5 1000"], place="forever"))
            await asyncio.wait_for(writer.drain(), 10)
            db.stop()
            writer.submit(Batch(["energy_hourly,device=m kwh=2.5 2000"], place="forever"))
            writer.submit(Batch(["energy,device=m power_w=7.0 2000"], [1], acked))
            await wait_until(lambda: acked.ids == [[1]], timeout=10)
            assert writer.spool.pending_records == 2  # spooled, each with its place
            db = InfluxDB(tmp_path / "influx", port=db.port).start()

            async def replayed() -> bool:
                return writer.spool.empty

            await wait_until(replayed, timeout=30)
        rollups = await influxql(db.url, 'SELECT "kwh" FROM "forever"."energy_hourly"', "rp")
        assert [v[1] for v in rollups[0]["values"]] == [1.5, 2.5]
        assert await influxql(db.url, 'SELECT * FROM "autogen"."energy_hourly"', "rp") == []
        readings = await influxql(db.url, 'SELECT "power_w" FROM "autogen"."energy"', "rp")
        assert readings[0]["values"][0][1] == 7.0
    finally:
        db.stop()
