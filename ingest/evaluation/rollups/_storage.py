"""Rollups from what InfluxDB already holds: the evaluator's start-up (so the first hours after a
restart are not computed from half their readings), its repairs of readings later than the live
window (their neighbours read back), and `kera-ingest rollups`, the recompute for readings later
than a repair reaches, or after a change of factor or site file. Also reading stored rollup
points back, to compare them."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Protocol

import aiohttp

from devices import AnyDevice, Registry
from devices.contract import DEVICE_TAG, ROLLUP_MEASUREMENTS, SITE_TAG
from ingest.evaluation.shard import Shard
from ingest.reading import FieldValue, Reading
from ingest.storage.influxql import between, ident, idents, ms, one_of, string
from ingest.storage.query import influx_session, influxql

from ._energy import HOUR_MS
from ._engine import Rollups
from ._factors import EmissionFactors
from ._kinds import READ_FIELDS, hour_of, qualified
from ._repair import Repair
from ._waste import SPAN

log = logging.getLogger(__name__)

DAY_MS = 24 * HOUR_MS


class StoredReadings(Protocol):
    """Where a repair reads a device's readings back: InfluxDB (`InfluxReadings`)."""

    async def before(self, device: AnyDevice, t: int, n: int) -> list[Reading]:
        """The last `n` readings of `device` before `t`, oldest first."""
        ...

    async def between(self, device: AnyDevice, start: int, end: int) -> list[Reading]:
        """The readings of `device` in [start, end), in time order."""
        ...


class InfluxReadings:
    """`StoredReadings` from InfluxDB, over one connection: use it as `async with`."""

    def __init__(self, site: str, url: str, database: str, token: str | None = None) -> None:
        self._site, self._url, self._db, self._token = site, url, database, token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> InfluxReadings:
        self._session = influx_session(self._token)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _select(self, device: AnyDevice, where: str, tail: str = "") -> list[Reading]:
        measurement = device.spec.measurement
        fields = READ_FIELDS.get(measurement)
        if fields is None:
            return []
        q = (
            f"SELECT {idents(fields)} FROM {ident(measurement)} "
            f"WHERE {ident(SITE_TAG)} = {string(self._site)} "
            f"AND {ident(DEVICE_TAG)} = {string(device.id)} AND {where}{tail}"
        )
        out: list[Reading] = []
        for series in await influxql(self._url, q, self._db, self._token, self._session):
            out += _readings(measurement, device, series)
        return out

    async def before(self, device: AnyDevice, t: int, n: int) -> list[Reading]:
        found = await self._select(device, f"time < {ms(t)}", f" ORDER BY time DESC LIMIT {n:d}")
        return found[::-1]

    async def between(self, device: AnyDevice, start: int, end: int) -> list[Reading]:
        return await self._select(device, between(start, end))


async def repair_late(
    rollups: Rollups,
    repairs: Sequence[Repair],
    source: StoredReadings,
    run_steps: Callable[[Generator[None, None, int]], Awaitable[int]],
) -> int:
    """Roll up late readings (`Rollups.take_late`): read their neighbours back from `source`
    and recompute the hours they touch. Run it before a flush, on readings taken after the
    previous one, so that what the repair reads was accepted at least a flush ago and is
    stored. If reading fails, what is left is held again for the next time, and the error
    raised. Returns the points written."""
    written = 0
    for k, repair in enumerate(repairs):
        try:
            first = min(
                (d for d in repair.devices if d.id in repair.late),
                key=lambda d: repair.late[d.id].times[0],
            )
            # As far back as a late reading can change an interval, a hold or a median.
            pre = await source.before(first, repair.since_ms, SPAN + 1)
            since = hour_of(pre[0].time_ms if pre else repair.since_ms)
            stored: dict[str, list[Reading]] = {}
            for d in repair.devices:
                stored[d.id] = await source.before(d, since, SPAN + 1) + await source.between(
                    d, since, rollups.horizon(d.id)
                )
            written += await run_steps(rollups.repair_steps(repair, since, stored))
        except BaseException:
            # Done again later from the start: a repair gives the same points twice.
            rollups.give_back(repairs[k:])
            raise
    return written


RollupKey = tuple[str, str, int]  # measurement, its tags as "k=v,..." sorted, epoch ms


async def read_rollups(
    url: str, database: str, where: str = "", rp: str | None = None, token: str | None = None
) -> dict[RollupKey, dict[str, Any]]:
    """Every stored rollup point (`where`: an InfluxQL condition, e.g. a time range), with the
    fields it has; retracted emptyings left out. To compare rollups: live against a recompute,
    one implementation against another."""
    out: dict[RollupKey, dict[str, Any]] = {}
    condition = f" WHERE {where}" if where else ""
    for m in ROLLUP_MEASUREMENTS:
        keys = [
            v[0]
            for x in await influxql(url, f"SHOW TAG KEYS FROM {qualified(m, rp)}", database, token)
            for v in x["values"]
        ]
        for x in await influxql(url, f"SELECT * FROM {qualified(m, rp)}{condition}", database,
                                token):  # fmt: skip
            cols = x["columns"]
            for v in x["values"]:
                row = dict(zip(cols, v, strict=True))
                if row.get("retracted"):
                    continue
                tags = ",".join(f"{k}={row.pop(k)}" for k in sorted(keys) if row.get(k) is not None)
                t = row.pop("time")
                # A field this point lacks comes back as None (other points of it have it).
                out[(m, tags, t)] = {k: v for k, v in row.items() if v is not None}
    return out


async def load_readings(
    registry: Registry,
    url: str,
    database: str,
    start_ms: int,
    end_ms: int,
    sink: Callable[[Reading], None],
    token: str | None = None,
    after_chunk: Callable[[], Awaitable[object]] | None = None,
    chunk_ms: int = DAY_MS,
    per_query: int | None = None,
    timeout_s: float | None = None,
) -> int:
    """Hand `sink` the readings rollups need, of registered devices, in [start_ms, end_ms), a
    chunk of `chunk_ms` at a time (`after_chunk` is awaited after each, say to flush them), and
    with `per_query`, that many devices of a kind per query: what one answer holds, and so
    memory, does not grow with the range or the fleet. A device's readings come in time order.
    One connection for all the queries. Returns how many."""
    devices = {d.id: d for d in registry}
    queries: list[tuple[str, str]] = []  # (measurement, the query without its time range)
    site = string(registry.site_id)
    for measurement, fields in READ_FIELDS.items():
        head = f"SELECT {idents(fields)} FROM {ident(measurement)} WHERE {ident(SITE_TAG)} = {site}"
        ids = sorted(d.id for d in registry if d.spec.measurement == measurement)
        if per_query is None:
            queries.append((measurement, head))
            continue
        for k in range(0, len(ids), per_query):
            group = one_of(ids[k : k + per_query])
            queries.append((measurement, f"{head} AND {ident(DEVICE_TAG)} =~ {group}"))
    n = 0
    async with influx_session(token, timeout_s) as session:
        chunk = start_ms
        while chunk < end_ms:
            until = min(end_ms, chunk + chunk_ms)
            for measurement, head in queries:
                q = f"{head} AND {between(chunk, until)} GROUP BY {ident(DEVICE_TAG)}"
                for series in await influxql(url, q, database, token, session):
                    device = devices.get(series.get("tags", {}).get(DEVICE_TAG, ""))
                    if device is None:
                        continue
                    for reading in _readings(measurement, device, series):
                        sink(reading)
                        n += 1
            if after_chunk is not None:
                await after_chunk()
            chunk = until
    return n


def _readings(measurement: str, device: AnyDevice, series: dict[str, Any]) -> list[Reading]:
    columns: list[str] = series["columns"]
    out = []
    for row in series["values"]:
        fields: dict[str, FieldValue] = {
            c: v for c, v in zip(columns[1:], row[1:], strict=True) if v is not None
        }
        if "people" in fields:
            fields["people"] = int(fields["people"])
        if fields:
            out.append(Reading(measurement, device, int(row[0]), fields))
    return out


async def recompute(
    registry: Registry,
    url: str,
    database: str,
    start_ms: int,
    end_ms: int,
    write_lines: Callable[[list[str]], Awaitable[None]],
    token: str | None = None,
    chunk_days: int = 7,
    on_day: Callable[[int], None] | None = None,
    shards: int = 1,
) -> int:
    """Recompute and write every rollup point in [start_ms, end_ms), a chunk of days at a time
    (both ends should be local midnights, so every written day is complete). With `shards`,
    the site's days come per shard, as evaluators with KERA_EVALUATION_SHARD write them. Returns
    the number of points written.

    The readings are read an hour of 500 devices at a time, in time order, through the live
    engine with its short window, flushed after each hour; a point is written once, when it is
    two days behind the readings read (nothing changes it after that), so memory holds two days
    of points and an hour of readings however long the range and large the site."""
    factors = EmissionFactors.from_impact(registry.site.impact)
    written = 0
    chunk = start_ms
    while chunk < end_ms:
        until = min(end_ms, chunk + chunk_days * DAY_MS)
        part = _Chunk(registry, factors, chunk, until, shards, write_lines)
        # A day before the chunk gives its first hour the interval into it and its first
        # emptying the readings before; an hour after it gives the last hour its end.
        await load_readings(
            registry, url, database, chunk - DAY_MS, until + HOUR_MS, part.observe, token,
            after_chunk=part.hour_read, chunk_ms=HOUR_MS, per_query=500,
        )  # fmt: skip
        written += part.written + await part.write_final(until)
        if on_day is not None:
            on_day(until)
        chunk = until
    return written


class _Chunk:
    """A recompute's chunk of days: its readings through the live engine (a part per shard),
    and the points not written yet, each in its latest version."""

    def __init__(
        self,
        registry: Registry,
        factors: EmissionFactors,
        floor: int,
        until: int,
        shards: int,
        write_lines: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self._parts = [
            Rollups(registry, self._keep, factors, floor_ms=floor,
                    shard=Shard(k, shards) if shards > 1 else None)
            for k in range(shards)
        ]  # fmt: skip
        self._by_device = {d.id: r for r in self._parts for d in registry if r.rolls_up(d.id)}
        self._pending: dict[tuple[str, int], str] = {}  # by series and time
        self._read_to = floor - DAY_MS
        self._until = until
        self._write = write_lines
        self.written = 0

    def _keep(self, lines: list[str]) -> None:
        for line in lines:
            self._pending[(line.split(" ", 1)[0], int(line.rsplit(" ", 1)[1]))] = line

    def observe(self, reading: Reading) -> None:
        part = self._by_device.get(reading.device.id)
        if part is not None:
            part.observe(reading)

    async def hour_read(self) -> None:
        for part in self._parts:
            part.flush()
        self._read_to += HOUR_MS
        # Two days behind the readings, nothing changes a point any more.
        self.written += await self.write_final(min(self._until, self._read_to - 2 * DAY_MS))

    async def write_final(self, before: int) -> int:
        """Write the points before `before` (and forget them); how many."""
        batch = [self._pending.pop(k) for k in sorted(k for k in self._pending if k[1] < before)]
        for i in range(0, len(batch), 5000):
            await self._write(batch[i : i + 5000])
        return len(batch)
