"""Helpers for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from devices import Registry
from ingest.influx import influxql
from ingest.service import Ingestor
from ingest.settings import IngestSettings

T = TypeVar("T")


@contextlib.asynccontextmanager
async def running_ingestor(
    settings: IngestSettings, registry: Registry | None = None
) -> AsyncIterator[Ingestor]:
    ingestor = Ingestor(settings, registry)
    stop = asyncio.Event()
    task = await ingestor.start(stop)
    try:
        yield ingestor
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def wait_until(
    predicate: Callable[[], Awaitable[T]], timeout: float = 20.0, interval: float = 0.1
) -> T:
    """Poll an async predicate until it returns a truthy value; return that value."""
    async with asyncio.timeout(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await asyncio.sleep(interval)


async def query(settings: IngestSettings, q: str) -> list[dict[str, Any]]:
    return await influxql(settings.influx_url, q, settings.influx_db)


async def rows(settings: IngestSettings, measurement: str) -> list[dict[str, Any]]:
    """Every point of a measurement as a dict of column -> value (time in epoch ms)."""
    out: list[dict[str, Any]] = []
    for series in await query(settings, f'SELECT * FROM "{measurement}"'):
        for values in series["values"]:
            out.append(dict(zip(series["columns"], values, strict=True)))
    return out


async def count(settings: IngestSettings, measurement: str, field: str) -> int:
    """Points with `field` in `measurement`; 0 while the database does not exist yet."""
    try:
        series = await query(settings, f'SELECT count("{field}") FROM "{measurement}"')
    except RuntimeError as exc:
        if "database not found" in str(exc):
            return 0
        raise
    return int(series[0]["values"][0][1]) if series else 0
