"""Asking InfluxDB InfluxQL questions over the v1-compatible `/query` API (1.x, 2.x and 3.x).

For the rollups' reload, the CLIs, the report, the dashboards' query checks, tests and benchmarks:
never the hot path, which only writes (`ingest.storage.transports`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp

from ingest.storage.transports import split_credentials


async def influxql(
    url: str,
    query: str,
    database: str | None = None,
    token: str | None = None,
    session: aiohttp.ClientSession | None = None,
) -> list[dict[str, Any]]:
    """Run an InfluxQL query over the v1 API and return its series (name, tags, columns,
    values): the rollups' reload and repair, the CLIs, the report and the pilots, tests and
    benchmarks; never the hot path, which only writes.
    Many queries in a row give a `session` (`influx_session`): one connection, not one each."""
    base, auth = split_credentials(url)
    params = {"q": query, "epoch": "ms"}
    if database:
        params["db"] = database
    async with contextlib.AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(influx_session(token))
        r = await stack.enter_async_context(session.post(f"{base}/query", data=params, auth=auth))
        payload = await r.json(content_type=None)
    if r.status != 200:
        raise RuntimeError(f"InfluxQL {query!r}: HTTP {r.status} {payload}")
    series: list[dict[str, Any]] = []
    for result in payload.get("results", []):
        if "error" in result:
            raise RuntimeError(f"InfluxQL {query!r}: {result['error']}")
        series.extend(result.get("series", []))
    return series


def influx_session(
    token: str | None = None, timeout_s: float | None = None
) -> aiohttp.ClientSession:
    """A session for `influxql` calls, with the token (a URL's user and password go with
    each query); `timeout_s` bounds each query (aiohttp's own default is 5 minutes)."""
    headers = {"Authorization": f"Token {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s else None
    if timeout is None:
        return aiohttp.ClientSession(headers=headers)
    return aiohttp.ClientSession(headers=headers, timeout=timeout)


def influxql_sync(
    url: str, query: str, database: str | None = None, token: str | None = None
) -> list[dict[str, Any]]:
    return asyncio.run(influxql(url, query, database, token))
