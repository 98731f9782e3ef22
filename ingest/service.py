"""The ingestor service: wires registry, MQTT consumer, pipeline, batcher, writer, spool and the
health endpoint together, and shuts them down in the order that loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from devices import Registry
from devices.contract import deadletter_topic
from ingest.codecs import CodecSandbox
from ingest.evaluation.alerts.engine import AlertEngine
from ingest.evaluation.evaluator import Evaluator, every
from ingest.evaluation.rollups import EmissionFactors, Rollups
from ingest.intake import Intake
from ingest.mqtt import MqttConsumer, parse_mqtt_url
from ingest.observability.clock import ClockWatch
from ingest.observability.counters import Stats
from ingest.observability.health import HealthServer, HealthView
from ingest.observability.pipeline_measurement import PipelineMeasurement
from ingest.pipeline import Pipeline
from ingest.serial import SerialSources
from ingest.settings import IngestSettings
from ingest.storage.batch import Batch
from ingest.storage.batcher import Batcher
from ingest.storage.deadletter import DeadLetters, DeadLetterTopic
from ingest.storage.ports import Transport
from ingest.storage.spool import Spool
from ingest.storage.transports import make_transport
from ingest.storage.writer import BatchWriter

log = logging.getLogger(__name__)

# How long the start waits for InfluxDB to create the database before subscribing anyway.
START_DB_S = 2.0


@dataclass(slots=True)
class _Run:
    """What one run built, taken apart by `_shutdown`."""

    transport: Transport
    spool: Spool
    writer: BatchWriter
    batcher: Batcher
    intake: Intake
    consumer: MqttConsumer
    own: PipelineMeasurement
    # The writer, the replay and the consumer: they only end by failing, which ends the run.
    core: list[asyncio.Task[None]] = field(default_factory=list)
    # Periodic and optional work, cancelled first at shutdown.
    side: list[asyncio.Task[None]] = field(default_factory=list)

    def write_own(self) -> None:
        self.writer.submit(Batch(self.own.lines()))


class Ingestor:
    def __init__(self, settings: IngestSettings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or Registry.load(settings.site_config)
        self.stats = Stats()
        self._target = settings.influx_target()
        self._deadletter_topic = deadletter_topic(self.registry.site_id)
        self._mqtt = parse_mqtt_url(
            settings.mqtt_url, str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
        )
        if self._mqtt.username is None and not settings.dev_mode:
            raise ValueError(
                f"refusing an anonymous connection to {self._mqtt}: put the ingestor's user "
                "in KERA_MQTT_URL (mqtt://kera-ingest:$PASSWORD@host), or set KERA_DEV_MODE=true "
                "for local development"
            )
        self.consumer: MqttConsumer | None = None
        self.writer: BatchWriter | None = None
        self.health: HealthServer | None = None
        self.serial: SerialSources | None = None
        self.evaluator: Evaluator | None = None
        # Read now, so a bad factor file stops the start before anything is opened.
        self._factors = EmissionFactors.from_impact(self.registry.site.impact)
        # Set once subscribed to the broker for the first time.
        self.ready = asyncio.Event()
        # What the devices' clocks say of this one's (observability.clock).
        self.clock = ClockWatch()
        # Device codecs run in a worker process, never on the event loop (ingest.codecs).
        self.codecs = CodecSandbox(settings.codec_deadline_s)

    async def start(self, stop: asyncio.Event, ready_within_s: float = 15.0) -> asyncio.Task[Stats]:
        """Run in a task and return it once the ingestor is subscribed; raise what stopped it
        if it failed first."""
        task = asyncio.create_task(self.run(stop), name="ingestor")
        ready = asyncio.create_task(self.ready.wait())
        done, _ = await asyncio.wait(
            {task, ready}, timeout=ready_within_s, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if task in done:
                task.result()
            task.cancel()
            raise TimeoutError(f"ingestor not subscribed within {ready_within_s} s")
        return task

    @property
    def alerts(self) -> AlertEngine | None:
        return self.evaluator.alerts if self.evaluator is not None else None

    @property
    def rollups(self) -> Rollups | None:
        return self.evaluator.rollups if self.evaluator is not None else None

    async def run(self, stop: asyncio.Event | None = None, freeze_gc: bool = False) -> Stats:
        """Run until `stop` is set (or SIGTERM/SIGINT when run from the command line).
        `freeze_gc`: the process is this ingestor's alone (`run_forever`)."""
        stop = stop or asyncio.Event()
        run = await self._build()
        if freeze_gc and self.evaluator is not None:
            self.evaluator.on_seeded = _freeze_gc
        if freeze_gc:
            # What exists now (modules, the registry) lives as long as the process; so do the
            # rollups once their history is loaded (frozen again then: `on_seeded`, `_freeze_gc`).
            # Frozen, the cyclic collector's full collections no longer walk it: they took
            # 34-90 ms on the event loop every 20 s at 500 devices (docs/performance.md).
            gc.collect()
            gc.freeze()
        self._start_tasks(run)
        try:
            await self._until_stopped(stop, run.core)
        finally:
            await self._shutdown(run)
        return self.stats

    def health_view(self) -> HealthView:
        """The read-only state `/healthz` and `/metrics` report, taken now."""
        consumer, writer = self.consumer, self.writer
        view = HealthView(
            broker_connected=consumer is not None and consumer.connected,
            reconnects=consumer.reconnects if consumer is not None else 0,
        )
        if writer is None:
            return view
        spool = writer.spool
        space = spool.disk_space()
        skew = self.clock.skew(time.time_ns() // 1_000_000)
        return replace(
            view,
            clock_skew=skew,
            spool_disk_error=writer.disk_error,
            backlog_lines=writer.backlog_lines,
            batch_lines=writer.max_lines,
            last_write_s=writer.last_write_s,
            write_age_s=writer.write_age_s,
            disk_free_bytes=space.free_bytes if space is not None else None,
            disk_total_bytes=space.total_bytes if space is not None else None,
            writer_healthy=writer.healthy,
            writer_error=writer.last_error,
            queue_batches=writer.queue.qsize(),
            spool_records=spool.pending_records,
            spool_bytes=spool.pending_bytes,
            spool_max_bytes=spool.max_bytes,
            spool_full=writer.spool_full,
            rollups_loading=None if self.evaluator is None else self.evaluator.loading,
        )

    # -- build: open storage, wire the hot path, the evaluator and the consumer ------------------

    async def _open_storage(self) -> tuple[Transport, Spool]:
        transport = make_transport(self._target)
        await transport.start()
        try:
            # Bounded: a frozen InfluxDB must not keep the ingestor from subscribing. (A v2
            # bucket is an operator's to make: a no-op there.)
            await asyncio.wait_for(transport.create_database(), START_DB_S)
        except Exception as exc:  # the writer creates it later on "database not found"
            log.warning(
                "InfluxDB not reachable at start (%s); will retry on write",
                str(exc) or f"no answer within {START_DB_S:g} s",
            )
        spool = Spool(self.settings.spool_path(), max_bytes=self.settings.spool_max_bytes)
        try:
            await asyncio.to_thread(spool.open)
        except BaseException:
            await transport.close()
            raise
        return transport, spool

    async def _build(self) -> _Run:
        s = self.settings
        site = self.registry.site
        transport, spool = await self._open_storage()
        dead_letters = DeadLetters(
            spool.directory,
            max_bytes=s.dead_letter_max_bytes,
            quarantine=site.unknown_devices == "quarantine" or site.discovery.enabled,
        )
        pipeline = Pipeline(
            self.registry, self.stats, s.max_payload_bytes, s.max_future_s, s.max_age_s,
            sandbox=self.codecs, clock=self.clock,
        )  # fmt: skip
        # Dead letters go out on the consumer's connection, built after the writer (it feeds
        # the writer): the topic finds it when it publishes. Batches acknowledge themselves,
        # on the connection that delivered their messages (Batch.settle).
        writer = BatchWriter(
            transport, spool, dead_letters, self.stats,
            on_rejected=DeadLetterTopic(self._deadletter_topic, self),
            max_lines=s.batch_size,
        )  # fmt: skip
        self.writer = writer
        if s.evaluate:
            self.evaluator = Evaluator(self.registry, s, self._factors, writer, self)
            if s.mqtt_share_group:
                # A shared subscription gives this replica only its share of the readings; the
                # evaluator needs every device's, so it gets a subscription of its own.
                self.evaluator.subscribe_all(self._mqtt, pipeline.filters, self.codecs)
            else:
                pipeline.observe = self.evaluator.observe
        batcher = Batcher(writer, s.batch_size, s.flush_interval_s)
        intake = Intake(pipeline, batcher, writer, self.stats)
        consumer = self._consumer(pipeline, intake, writer)
        self.serial = SerialSources(
            site,
            pipeline,
            self.stats,
            lambda result: batcher.add(result, 0, consumer.connection),
            lambda topic, payload: consumer.publish(topic, payload, qos=1),
        )
        if s.health_port:
            self.health = HealthServer(self.stats, self.health_view, s.health_host, s.health_port)
            try:
                await self.health.start()
            except OSError as exc:
                spool.close()
                await transport.close()
                raise OSError(
                    f"cannot serve /healthz on {s.health_host}:{s.health_port}: {exc}"
                ) from exc
        log.info(
            "ingesting site %r (%d devices) from %s into %s %s/%s; spool %s",
            self.registry.site_id,
            len(self.registry),
            self._mqtt,
            s.influx_api,
            self._target.url.split("@")[-1],
            s.influx_db,
            spool.directory,
        )
        own = PipelineMeasurement(
            self.stats, site.site, s.mqtt_client_id, lambda: spool.pending_bytes,
            frozenset(d.id for d in self.registry), self.clock,
        )  # fmt: skip
        return _Run(transport, spool, writer, batcher, intake, consumer, own)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """A `Publisher` for what is built before the consumer: on the consumer's connection."""
        assert self.consumer is not None
        self.consumer.publish(topic, payload, qos=qos, retain=retain)

    def _consumer(self, pipeline: Pipeline, intake: Intake, writer: BatchWriter) -> MqttConsumer:
        s = self.settings
        filters = pipeline.filters
        if s.mqtt_share_group:
            filters = [f"$share/{s.mqtt_share_group}/{f}" for f in filters]
        consumer = MqttConsumer(
            self._mqtt,
            s.mqtt_client_id,
            filters,
            intake,
            session_expiry_s=s.mqtt_session_expiry_s,
            receive_maximum=s.mqtt_receive_maximum,
            on_connected=self.ready.set,
            max_packet_bytes=s.max_packet_bytes(),
            protocol_version=s.protocol_version(),
            backlog=partial(_read_backlog, writer),
            max_backlog=2 * s.batch_size,
        )
        self.consumer = consumer
        return consumer

    # -- run ------------------------------------------------------------------------------------

    def _start_tasks(self, run: _Run) -> None:
        def task(job: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
            return asyncio.create_task(job, name=name)

        writer = run.writer
        run.core = [
            task(writer.run(), "influx-writer"),
            task(writer.replay(), "spool-replay"),
            task(run.consumer.run(), "mqtt-consumer"),
        ]
        run.side = [
            task(self._log_stats(), "stats"),
            task(every(self.settings.pipeline_interval_s, run.write_own), "pipeline-stats"),
        ]
        assert self.serial is not None
        run.side += [task(job, "serial") for job in self.serial.jobs()]
        if self.evaluator is not None:
            run.side += [task(job, "evaluator") for job in self.evaluator.jobs()]

    @staticmethod
    async def _until_stopped(stop: asyncio.Event, core: list[asyncio.Task[None]]) -> None:
        """Wait for the stop signal; a core task that ends first (it only ends by failing) ends
        the run with its error."""
        stop_task = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait({stop_task, *core}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_task.cancel()
        for task in done:
            if task is not stop_task and (exc := task.exception()) is not None:
                raise exc

    # -- shutdown ---------------------------------------------------------------------------------

    async def _shutdown(self, run: _Run) -> None:
        """Stop taking messages, store what was taken (InfluxDB or spool), acknowledge it, then
        leave. Whatever misses the deadline stays unacknowledged: the broker redelivers it to the
        next run."""
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.shutdown_timeout_s
        for task in run.side:
            task.cancel()
        run.consumer.pause()
        # Verdicts still out hold their batches back.
        await run.intake.verdicts(timeout_s=self.codecs.deadline_s * 2)
        run.batcher.flush()
        if self.evaluator is not None:
            await self.evaluator.stop()
        run.write_own()  # the last interval's counts too
        writer = run.writer
        try:
            await asyncio.wait_for(writer.drain(), timeout=s.shutdown_timeout_s)
        except TimeoutError:
            log.error(
                "shutdown deadline passed with %d batches unstored; the broker will redeliver them",
                writer.queue.qsize(),
            )
        await run.consumer.stop(timeout_s=max(0.5, deadline - loop.time()))
        self.stats.reconnects = run.consumer.reconnects
        for task in run.core:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.health is not None:
            await self.health.stop()
        spool = run.spool
        spool.close()
        await self.codecs.close()
        await run.transport.close()
        if not spool.empty:
            log.warning(
                "%d spooled batches (%d bytes) wait in %s for the next run",
                spool.pending_records,
                spool.pending_bytes,
                spool.directory,
            )
        log.info("stopped: %s", self.stats.snapshot())

    async def _log_stats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            if self.consumer is not None:  # the consumer counts them; the line shows them now
                self.stats.reconnects = self.consumer.reconnects
            log.info("stats: %s", self.stats.snapshot())


def _read_backlog(writer: BatchWriter) -> int:
    """What the consumer's backpressure counts (two full batches waiting for InfluxDB: read no
    more until one is stored). Nothing while the spool refuses records: then the receive window
    bounds what waits unacknowledged, and QoS 0 readings, which nothing can hold back, are read
    and dropped (counted) rather than left to pile up in the socket and the broker."""
    if writer.spool_full or writer.disk_error is not None:
        return 0
    return writer.backlog_lines


def _freeze_gc() -> None:
    gc.collect()
    gc.freeze()


def run_forever(settings: IngestSettings) -> Stats:
    """Run with SIGTERM/SIGINT wired to a graceful stop."""

    async def main() -> Stats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await Ingestor(settings).run(stop, freeze_gc=True)

    return asyncio.run(main())
