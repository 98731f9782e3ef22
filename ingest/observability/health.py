"""`/healthz` and `/metrics` over HTTP (aiohttp), read from the ingestor's own counters.

The hot path only bumps plain integers in `Stats`; the Prometheus collector turns them into
metric families when scraped, so a scrape costs something and a message costs nothing extra.

`/healthz` answers 200 while the ingestor keeps its promise (every accepted reading ends up in
InfluxDB or the spool) and 503 when it cannot take readings: not connected to the broker, the
spool full, or its disk refusing writes. An InfluxDB outage alone is `degraded` with 200, because
restarting the ingestor would not help and the spool is doing its job; so is a spool disk running
low. `problems` says in words what is wrong, one sentence per problem, for a person reading it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ingest.observability.clock import Skew
from ingest.observability.counters import COUNTERS, Stats

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# A write slower than this, or more than BACKLOG_WRITES full writes waiting in memory, is
# `degraded`: InfluxDB is not keeping up (the writer merges what queues meanwhile).
SLOW_WRITE_S = 2.0
BACKLOG_WRITES = 4


@dataclass(frozen=True, slots=True)
class HealthView:
    """What the endpoints may know of the ingestor, copied when asked: the server reads this and
    the counters, never the consumer, writer or spool themselves."""

    broker_connected: bool = False
    reconnects: int = 0
    # None until the writer exists (the ingestor is still starting).
    writer_healthy: bool | None = None
    writer_error: str | None = None
    queue_batches: int = 0
    spool_records: int = 0
    spool_bytes: int = 0
    spool_max_bytes: int = 0
    spool_full: bool = False
    # Why the spool's disk refuses records (no space, I/O error), None while it takes them.
    spool_disk_error: str | None = None
    # The spool filesystem's free and total bytes; None when unknown.
    disk_free_bytes: int | None = None
    disk_total_bytes: int | None = None
    # Lines waiting in memory for the writer, the batch size, the last write's duration and
    # how long the write under way has waited.
    # Devices' time minus this ingestor's (median of those heard lately), None until known.
    clock_skew: Skew | None = None
    backlog_lines: int = 0
    batch_lines: int = 5000
    # The evaluating ingestor's rollups still load their history (live readings wait in memory
    # meanwhile); None when this ingestor does not evaluate.
    rollups_loading: bool | None = None
    last_write_s: float = 0.0
    write_age_s: float = 0.0

    @property
    def slow_writes(self) -> bool:
        return max(self.last_write_s, self.write_age_s) > SLOW_WRITE_S

    @property
    def backlog_high(self) -> bool:
        return self.backlog_lines > BACKLOG_WRITES * self.batch_lines

    @property
    def disk_low(self) -> bool:
        """Less free disk than the spool may still take, and under a tenth of the filesystem:
        an outage would fill the disk before the spool's bound (warned before it happens)."""
        if self.disk_free_bytes is None or self.disk_total_bytes is None:
            return False
        room = max(0, self.spool_max_bytes - self.spool_bytes)
        return self.disk_free_bytes < min(room, self.disk_total_bytes // 10)


def problems(view: HealthView) -> list[str]:
    """What is wrong, in words, most severe first."""
    out = []
    if not view.broker_connected:
        out.append("not connected to the MQTT broker: no readings arrive")
    if view.spool_disk_error is not None:
        out.append(
            f"the spool's disk refuses writes ({view.spool_disk_error}): nothing is acknowledged "
            "until InfluxDB takes the backlog or space is freed; the broker holds new readings"
        )
    if view.spool_full:
        out.append(
            f"the spool is full ({view.spool_bytes} of {view.spool_max_bytes} bytes): nothing is "
            "acknowledged until InfluxDB takes the backlog"
        )
    if view.writer_healthy is False:
        out.append(
            f"InfluxDB writes fail ({view.writer_error}); readings go to the spool"
            if view.writer_error
            else "InfluxDB writes fail; readings go to the spool"
        )
    elif view.spool_records:
        out.append(f"{view.spool_records} spooled batches wait for replay into InfluxDB")
    skew = view.clock_skew
    if skew is not None and skew.suspect:
        if skew.seconds > 0:
            out.append(
                f"this ingestor's clock is {skew.seconds:.0f} s behind its devices' (the median "
                f"of {skew.devices} devices): readings over KERA_MAX_FUTURE_S ahead are "
                "rejected ts_in_future and kept as dead letters; set the host's clock (NTP)"
            )
        else:
            out.append(
                f"this ingestor's clock is {-skew.seconds:.0f} s ahead of its devices' (the "
                f"median of {skew.devices} devices): readings without a time of their own are "
                "stamped with it; set the host's clock (NTP)"
            )
    if view.slow_writes:
        out.append(
            f"InfluxDB answers slowly: the last write took {view.last_write_s:.1f} s, the one "
            f"under way has waited {view.write_age_s:.1f} s; queued batches are merged into "
            "fewer writes"
        )
    if view.backlog_high:
        out.append(
            f"{view.backlog_lines} readings wait in memory for InfluxDB (more than "
            f"{BACKLOG_WRITES} writes' worth); the broker keeps what comes after the receive "
            "window"
        )
    if view.disk_low and view.spool_disk_error is None:
        out.append(
            f"the spool's disk is low: {view.disk_free_bytes} bytes free, less than the "
            f"{max(0, view.spool_max_bytes - view.spool_bytes)} bytes the spool may still take; "
            "free space or lower KERA_SPOOL_MAX_BYTES"
        )
    return out


def health(view: HealthView) -> dict[str, Any]:
    skew = view.clock_skew
    if not view.broker_connected or view.spool_full or view.spool_disk_error is not None:
        status = "failing"
    elif (
        not view.writer_healthy
        or view.spool_records
        or view.disk_low
        or view.slow_writes
        or view.backlog_high
        or (view.clock_skew is not None and view.clock_skew.suspect)
    ):
        status = "degraded"
    else:
        status = "ok"
    return {
        "status": status,
        "problems": problems(view),
        "broker_connected": view.broker_connected,
        "writer_healthy": bool(view.writer_healthy),
        "writer_error": view.writer_error,
        "rollups_loading": view.rollups_loading,
        "clock": {
            "skew_s": None if skew is None else round(skew.seconds, 1),
            "devices": 0 if skew is None else skew.devices,
            "suspect": skew is not None and skew.suspect,
        },
        "writer": {
            "backlog_lines": view.backlog_lines,
            "last_write_s": round(view.last_write_s, 3),
            "write_age_s": round(view.write_age_s, 3),
            "slow": view.slow_writes,
        },
        "spool": {
            "records": view.spool_records,
            "bytes": view.spool_bytes,
            "max_bytes": view.spool_max_bytes,
            "full": view.spool_full,
            "disk_full": view.spool_disk_error is not None,
            "disk_error": view.spool_disk_error,
            "disk_free_bytes": view.disk_free_bytes,
            "disk_low": view.disk_low,
        },
    }


class _StatsCollector(Collector):
    def __init__(self, stats: Stats, view: Callable[[], HealthView]) -> None:
        self._stats = stats
        self._view = view

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        v = self._view()

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"kera_ingest_{name}", doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"kera_ingest_{name}", doc, value=value)

        for spec in COUNTERS:
            yield counter(spec.name, spec.help, s.counter(spec.name))
        rejected = CounterMetricFamily(
            "kera_ingest_rejected", "Messages rejected, by reason code", labels=["reason"]
        )
        for reason, n in sorted(s.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        yield gauge("mqtt_connected", "1 while connected to the broker", v.broker_connected)
        skew = v.clock_skew
        yield gauge(
            "clock_suspect",
            "1 while most devices' clocks disagree with this ingestor's by over a minute",
            skew is not None and skew.suspect,
        )
        if skew is not None:
            yield gauge(
                "clock_skew_seconds",
                "Devices' time minus this ingestor's, the median of the devices heard lately",
                skew.seconds,
            )
        yield counter("mqtt_reconnects", "Reconnections to the broker", v.reconnects)
        serial = CounterMetricFamily(
            "kera_ingest_serial_events",
            "Serial link events and errors (telegrams, polls, lines, garbage, cut_frame, "
            "bad_crc, bad_checksum, timeout, disconnects, ...)",
            labels=["link", "event"],
        )
        for link, events in sorted(s.serial.items()):
            for event, n in sorted(events.items()):
                serial.add_metric([link, event], n)
        yield serial
        if v.writer_healthy is not None:
            yield gauge(
                "writer_healthy", "1 while the last InfluxDB write succeeded", v.writer_healthy
            )
            yield gauge("queue_batches", "Batches waiting for the writer", v.queue_batches)
            yield gauge("backlog_lines", "Lines waiting in memory for the writer", v.backlog_lines)
            yield gauge("last_write_seconds", "Duration of the last InfluxDB write", v.last_write_s)
            yield gauge(
                "write_age_seconds",
                "How long the InfluxDB write under way has waited",
                v.write_age_s,
            )
            yield gauge("spool_records", "Batches in the spool", v.spool_records)
            yield gauge("spool_bytes", "Bytes waiting in the spool", v.spool_bytes)
            yield gauge("spool_max_bytes", "The spool's size bound", v.spool_max_bytes)
            yield gauge(
                "spool_full", "1 while the spool is full and nothing is acknowledged", v.spool_full
            )
            yield gauge(
                "spool_disk_full",
                "1 while the spool's disk refuses writes and nothing is acknowledged",
                v.spool_disk_error is not None,
            )
            yield gauge(
                "spool_disk_low",
                "1 while the spool's disk has less free space than the spool may still take",
                v.disk_low,
            )
            if v.disk_free_bytes is not None:
                free = v.disk_free_bytes
                yield gauge("spool_disk_free_bytes", "Free bytes on the spool's filesystem", free)


class HealthServer:
    """Serves `/healthz` and `/metrics` from the counters and a `HealthView` taken per request."""

    def __init__(self, stats: Stats, view: Callable[[], HealthView], host: str, port: int) -> None:
        self._view = view
        self._host = host
        self._port = port
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_StatsCollector(stats, view))
        self._runner: web.AppRunner | None = None
        self.port = port

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:  # the port the system chose when asked for port 0
            self.port = addresses[0][1]
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        body = health(self._view())
        return web.Response(
            text=json.dumps(body),
            status=503 if body["status"] == "failing" else 200,
            content_type="application/json",
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE}
        )
