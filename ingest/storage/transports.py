"""Sending line protocol to InfluxDB.

Two write APIs, one behaviour:
- `v1` (default): `POST /write?db=...&precision=ms`. Served by InfluxDB 1.x and, through their
  v1-compatible endpoints, by 2.x and 3.x. Credentials: `user:pass@` in the URL (1.x), or a token
  (`Authorization: Token ...`, 2.x/3.x).
- `v2`: `POST /api/v2/write` with token, org and bucket, through `influxdb-client`.
Both raise `WriteError`, which says whether trying the same batch again can succeed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from ingest.storage.influxql import ident
from ingest.storage.ports import Transport

log = logging.getLogger(__name__)

_TEXT = {"Content-Type": "text/plain; charset=utf-8"}
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class WriteError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool,
        retry_after: float | None = None,
        missing_database: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.missing_database = missing_database


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; the caller's own backoff applies


def _classify(status: int, body: str, retry_after: str | None) -> WriteError:
    text = body.strip()[:500]
    if status == 404 and "database not found" in text:
        return WriteError(f"HTTP 404: {text}", status=status, retryable=True, missing_database=True)
    # 401/403/404 are configuration problems an operator can fix while we wait; the data is fine,
    # so the batch is kept and tried again rather than dropped.
    retryable = status in RETRYABLE_STATUS or status in (401, 403, 404)
    return WriteError(
        f"HTTP {status}: {text}",
        status=status,
        retryable=retryable,
        retry_after=_retry_after(retry_after),
    )


def split_credentials(url: str) -> tuple[str, aiohttp.BasicAuth | None]:
    parts = urlsplit(url)
    if parts.username is None:
        return url.rstrip("/"), None
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")
    return clean, aiohttp.BasicAuth(parts.username, parts.password or "")


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    url: str
    database: str
    api: str = "v1"
    token: str | None = None
    org: str | None = None
    timeout_s: float = 10.0
    verify_tls: bool = True


class V1Transport:
    """The v1 HTTP API with aiohttp."""

    def __init__(self, target: InfluxTarget) -> None:
        self._target = target
        self._base, self._auth = split_credentials(target.url)
        self._headers: dict[str, str] = {}
        if target.token:
            self._headers["Authorization"] = f"Token {target.token}"
        self._session: aiohttp.ClientSession | None = None
        self._write_url = f"{self._base}/write"
        self._params = {"db": target.database, "precision": "ms"}

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            auth=self._auth,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self._target.timeout_s),
            connector=aiohttp.TCPConnector(ssl=self._target.verify_tls),
        )

    async def write(self, body: bytes, place: str | None = None) -> None:
        """`place`: a retention policy of the database other than its default."""
        assert self._session is not None, "start() first"
        params = self._params if place is None else {**self._params, "rp": place}
        try:
            async with self._session.post(
                self._write_url, params=params, data=body, headers=_TEXT
            ) as r:
                if r.status in {204, 200}:
                    return
                raise _classify(r.status, await r.text(), r.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise WriteError(f"{type(exc).__name__}: {exc}", retryable=True) from exc

    async def create_database(self) -> None:
        """CREATE DATABASE is idempotent on 1.x; 2.x/3.x refuse it (their buckets are made by
        an operator), which is logged and otherwise ignored."""
        assert self._session is not None, "start() first"
        q = f"CREATE DATABASE {ident(self._target.database)}"
        try:
            async with self._session.post(f"{self._base}/query", data={"q": q}) as r:
                text = await r.text()
                if r.status != 200 or '"error"' in text:
                    log.warning(
                        "could not create database %r: HTTP %s %s",
                        self._target.database,
                        r.status,
                        text[:200],
                    )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise WriteError(f"{type(exc).__name__}: {exc}", retryable=True) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class V2Transport:
    """The native 2.x API through influxdb-client's asyncio client."""

    def __init__(self, target: InfluxTarget) -> None:
        self._target = target
        self._client: Any = None
        self._write_api: Any = None

    async def start(self) -> None:
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

        self._client = InfluxDBClientAsync(
            url=self._target.url,
            token=self._target.token or "",
            org=self._target.org or "",
            timeout=int(self._target.timeout_s * 1000),
            verify_ssl=self._target.verify_tls,
        )
        self._write_api = self._client.write_api()

    async def write(self, body: bytes, place: str | None = None) -> None:
        """`place`: a bucket other than the target's."""
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            await self._write_api.write(
                bucket=place or self._target.database,
                org=self._target.org,
                record=body,
                write_precision=WritePrecision.MS,
            )
        except ApiException as exc:
            headers: Any = exc.headers or {}
            body_text = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body)
            raise _classify(int(exc.status or 0), body_text, headers.get("Retry-After")) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise WriteError(f"{type(exc).__name__}: {exc}", retryable=True) from exc

    async def create_database(self) -> None:
        """Nothing: 2.x buckets are made by an operator, with rights a write token lacks."""

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def make_transport(target: InfluxTarget) -> Transport:
    if target.api == "v1":
        return V1Transport(target)
    if target.api == "v2":
        if not target.token or not target.org:
            raise ValueError("the v2 API needs KERA_INFLUX_TOKEN and KERA_INFLUX_ORG")
        return V2Transport(target)
    raise ValueError(f"KERA_INFLUX_API must be v1 or v2, not {target.api!r}")
