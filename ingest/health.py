"""`/healthz` and `/metrics` over HTTP (aiohttp), read from the ingestor's own counters.

The hot path only bumps plain integers in `Stats`; the Prometheus collector turns them into
metric families when scraped, so a scrape costs something and a message costs nothing extra.

`/healthz` answers 200 while the ingestor keeps its promise (every accepted reading ends up in
InfluxDB or the spool) and 503 when it cannot take readings: not connected to the broker, or the
spool full. An InfluxDB outage alone is `degraded` with 200, because restarting the ingestor
would not help and the spool is doing its job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ingest.stats import COUNTERS

if TYPE_CHECKING:
    from ingest.service import Ingestor

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def health(ingestor: Ingestor) -> dict[str, Any]:
    consumer, writer = ingestor.consumer, ingestor.writer
    connected = consumer is not None and consumer.connected
    spool = writer.spool if writer is not None else None
    writer_healthy = writer is not None and writer.healthy
    spool_full = writer is not None and writer.spool_full
    if not connected or spool_full:
        status = "failing"
    elif not writer_healthy or (spool is not None and not spool.empty):
        status = "degraded"
    else:
        status = "ok"
    return {
        "status": status,
        "broker_connected": connected,
        "writer_healthy": writer_healthy,
        "writer_error": writer.last_error if writer is not None else None,
        "spool": {
            "records": spool.pending_records if spool else 0,
            "bytes": spool.pending_bytes if spool else 0,
            "max_bytes": spool.max_bytes if spool else 0,
            "full": spool_full,
        },
    }


class _StatsCollector(Collector):
    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor

    def collect(self) -> Iterator[Metric]:
        ing = self._ingestor
        s = ing.stats
        consumer, writer = ing.consumer, ing.writer

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
        yield gauge(
            "mqtt_connected",
            "1 while connected to the broker",
            bool(consumer and consumer.connected),
        )
        yield counter(
            "mqtt_reconnects", "Reconnections to the broker", consumer.reconnects if consumer else 0
        )
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
        if writer is not None:
            spool = writer.spool
            yield gauge(
                "writer_healthy", "1 while the last InfluxDB write succeeded", writer.healthy
            )
            yield gauge("queue_batches", "Batches waiting for the writer", writer.queue.qsize())
            yield gauge("spool_records", "Batches in the spool", spool.pending_records)
            yield gauge("spool_bytes", "Bytes waiting in the spool", spool.pending_bytes)
            yield gauge("spool_max_bytes", "The spool's size bound", spool.max_bytes)
            yield gauge(
                "spool_full",
                "1 while the spool is full and nothing is acknowledged",
                writer.spool_full,
            )


class HealthServer:
    def __init__(self, ingestor: Ingestor, host: str, port: int) -> None:
        self._ingestor = ingestor
        self._host = host
        self._port = port
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_StatsCollector(ingestor))
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
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        body = health(self._ingestor)
        return web.Response(
            text=json.dumps(body),
            status=503 if body["status"] == "failing" else 200,
            content_type="application/json",
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE}
        )
