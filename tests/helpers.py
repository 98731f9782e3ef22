"""Helpers for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, overload

import aiohttp
import paho.mqtt.client as paho
import psutil
import pytest
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion

from devices import Registry
from devstack.services import free_port
from ingest.service import Ingestor
from ingest.settings import IngestSettings
from ingest.storage.batch import Batch
from ingest.storage.query import influxql

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


@overload
async def wait_until(
    predicate: Callable[[], Awaitable[T]], timeout: float = 20.0, interval: float = 0.1
) -> T: ...
@overload
async def wait_until(
    predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.1
) -> T: ...
async def wait_until(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1
) -> Any:
    """Poll a predicate, plain or async, until it returns a truthy value; return that value."""
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
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


def point_field(measurement: str) -> str:
    """A field every simulated point of a catalogue measurement carries (its kind's first), to
    count the points with count()."""
    from devices import KINDS

    return next(iter(next(k for k in KINDS.values() if k.measurement == measurement).fields))


@contextlib.asynccontextmanager
async def http_server(
    path: str,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    method: str = "POST",
) -> AsyncIterator[str]:
    """A real HTTP server on a free loopback port answering `method` `path`; yields its base
    URL. For InfluxDB behaviour 1.6 cannot show (the v2 API, 429 with Retry-After), and for
    services this machine cannot reach (FMI), answering with recorded responses."""
    app = web.Application()
    app.router.add_route(method, path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real filesystem of `size` (mount's units: 2m, 256k) at `path`, for a disk that fills.
    Needs root (CI runs as root); elsewhere the test is skipped with the reason."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        reason = f"cannot mount a {size} tmpfs at {path}: {mounted.stderr.strip()} (needs root)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def faketime_env(offset: str) -> dict[str, str]:
    """The environment that runs a child process with its clock `offset` off (libfaketime,
    Debian's faketime package, as scripts/setup installs it): "-2h", "+2h"."""
    libs = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not libs:
        reason = "libfaketime is missing (apt-get install faketime)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return {"LD_PRELOAD": str(libs[0]), "FAKETIME": offset}


def fill(path: Path) -> int:
    """Write a file at `path` until its filesystem has no space left; return its size."""
    written = 0
    with path.open("wb", buffering=0) as f:
        try:
            while True:
                written += f.write(b"\0" * 4096) or 0
        except OSError:
            pass
    return written


class HookReceiver:
    """A webhook receiver for `http_server`: keeps every alert it is sent and when it came;
    can fail the first deliveries (503), answer late, or with another status (a redirect)."""

    def __init__(self, delay_s: float = 0.0, status: int = 204, location: str = "") -> None:
        self.events: list[dict[str, Any]] = []
        self.calls: list[float] = []
        self.fail_first = 0
        self.delay_s = delay_s
        self.status = status
        self.location = location

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append(time.monotonic())
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=503)
        self.events.append(await request.json())
        await asyncio.sleep(self.delay_s)
        headers = {"Location": self.location} if self.location else None
        return web.Response(status=self.status, headers=headers)

    def seen(self) -> list[tuple[str, str, bool, str]]:
        return [(e["rule"], e["device"], e["firing"], e["level"]) for e in self.events]


@contextlib.asynccontextmanager
async def hook_receiver(
    receiver: HookReceiver | None = None,
) -> AsyncIterator[tuple[HookReceiver, str]]:
    """A HookReceiver on `/hook` of a loopback server: (it, the server's base URL)."""
    r = receiver or HookReceiver()
    async with http_server("/hook", r.handle) as url:
        yield r, url


def local_settings(
    mqtt_url: str, influx_url: str, database: str, workdir: Path, **overrides: Any
) -> IngestSettings:
    """Settings for an ingestor under test: its own session, spool and database."""
    values: dict[str, Any] = {
        "mqtt_url": mqtt_url,
        "influx_url": influx_url,
        "influx_db": database,
        "mqtt_client_id": f"ingest-{database}",
        "flush_interval_s": 0.05,
        "stats_interval_s": 3600,
        "spool_dir": workdir / "spool",
        "health_port": 0,
        "dev_mode": True,  # the test brokers are anonymous
    }
    values.update(overrides)
    return IngestSettings(**values)


def settings_env(settings: IngestSettings) -> dict[str, str]:
    """The environment that gives a `kera-ingest run` subprocess these settings."""
    return {**os.environ, **settings.as_env()}


class IngestProcess:
    """`kera-ingest run` as a child process that a test can kill, restart and inspect.

    The health port is fixed across restarts so /healthz stays at one address."""

    def __init__(
        self, settings: IngestSettings, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        # `env`: more environment (libfaketime's, for a process with a wrong clock).
        self.env = env or {}
        if not settings.health_port:
            settings = settings.model_copy(update={"health_port": free_port()})
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.health_port}"

    def start(self) -> IngestProcess:
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("kera-ingest")), "run"],
                env={**settings_env(self.settings), **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        return self

    async def wait_connected(self, timeout: float = 30.0) -> None:
        async def connected() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ingestor exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                return bool((await self.health())["broker_connected"])
            except (aiohttp.ClientError, OSError):
                return False

        await wait_until(connected, timeout=timeout, interval=0.05)

    async def health(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.health_url}/healthz") as r,
        ):
            body: dict[str, Any] = await r.json()
            body["http_status"] = r.status
            return body

    async def metrics(self) -> dict[str, float]:
        """Unlabelled samples of /metrics by name, labelled ones as name{labels}."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.health_url}/metrics") as r,
        ):
            text = await r.text()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def rss(self) -> int:
        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text()


@contextlib.asynccontextmanager
async def ingest_process(
    settings: IngestSettings, log_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[IngestProcess]:
    """A connected `kera-ingest run` subprocess, SIGKILLed on the way out if still running."""
    ingest = IngestProcess(settings, log_path, env).start()
    try:
        await ingest.wait_connected()
        yield ingest
    finally:
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.kill()


class Publisher:
    """A device-like QoS 1 publisher in its own thread: paho keeps what the broker has not
    acknowledged and sends it again after a reconnect, as device firmware does."""

    def __init__(self, port: int, client_id: str) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.published = 0
        self.acknowledged = 0

    def _on_publish(self, *args: Any) -> None:
        self.acknowledged += 1

    def energy(self, n: int, base_ms: int, rate: float, offset: int = 0, qos: int = 1) -> None:
        """Publish `n` energy readings with distinct timestamps `base_ms + offset + i`, spread
        over devices, at about `rate` per second."""
        started = time.monotonic()
        for i in range(offset, offset + n):
            device = ENERGY_DEVICES[i % len(ENERGY_DEVICES)]
            body = {"ts": base_ms + i, "power_w": float(i % 5000), "energy_kwh": i / 1000}
            self.client.publish(f"kera/kera/{device}/telemetry", json.dumps(body), qos=qos)
            self.published += 1
            if (i - offset) % 50 == 49:
                ahead = (i - offset + 1) / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

    def unacknowledged(self) -> int:
        """Readings the broker has not confirmed yet (QoS 0 ones count as confirmed once sent)."""
        return self.published - self.acknowledged

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


ENERGY_DEVICES = [d.id for d in Registry.load() if d.kind == "energy_meter"]


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with the reports' own flags (dashboards.report._pdf)."""
    from dashboards.report._pdf import chromium as find_chromium
    from dashboards.report._pdf import chromium_flags

    exe = find_chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI is missing Debian's chromium (scripts/setup installs it)")
        pytest.skip("apt-get install chromium")
    flags = [*chromium_flags(tmp / "chromium-profile"), "--virtual-time-budget=10000"]
    return subprocess.run(
        [exe, *flags, *args], check=False, capture_output=True, text=True, timeout=120
    )


class Acks:
    """A `Connection` (ingest.storage.ports) that records what it is asked to acknowledge."""

    def __init__(self) -> None:
        self.ids: list[list[int]] = []

    def ack(self, ids: list[int]) -> None:
        self.ids.append(list(ids))


class Collected:
    """A `BatchSink` that keeps what it is given, and settles each batch at once (as the
    writer does once a batch is stored)."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def submit(self, batch: Batch) -> None:
        self.batches.append(batch)
        batch.settle()

    @property
    def lines(self) -> list[str]:
        return [line for b in self.batches for line in b.lines]


class Published:
    """A `Publisher` that keeps what it is asked to publish: (topic, payload, qos, retain)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, int, bool]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.messages.append((topic, payload, qos, retain))
