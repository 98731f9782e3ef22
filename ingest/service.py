"""The ingestor service: wires registry, MQTT consumer, pipeline, batcher, writer, spool and the
health endpoint together, and shuts them down in the order that loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from devices import Registry
from devices.contract import deadletter_topic
from ingest.alert_delivery import AlertDelivery
from ingest.alerts import AlertEngine
from ingest.deadletter import DeadLetters
from ingest.health import HealthServer
from ingest.influx import InfluxTarget, V1Transport, make_transport
from ingest.mqtt import MqttConsumer, parse_mqtt_url
from ingest.pipeline import Batch, Batcher, Pipeline
from ingest.pipeline_stats import PipelineStats
from ingest.reading import Reading
from ingest.rollups import EmissionFactors, Rollups, load_readings
from ingest.serial import SerialSources
from ingest.settings import IngestSettings
from ingest.spool import Spool
from ingest.stats import Stats
from ingest.writer import BatchWriter

log = logging.getLogger(__name__)


class Ingestor:
    def __init__(self, settings: IngestSettings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry or Registry.load(settings.site_config)
        self.stats = Stats()
        token = settings.influx_token.get_secret_value() if settings.influx_token else None
        self._target = InfluxTarget(
            url=settings.influx_url,
            database=settings.influx_db,
            api=settings.influx_api,
            token=token,
            org=settings.influx_org,
            timeout_s=settings.influx_timeout_s,
        )
        self._mqtt = parse_mqtt_url(settings.mqtt_url)
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
        self.alerts: AlertEngine | None = None
        self.rollups: Rollups | None = None
        # Read now, so a bad factor file stops the start before anything is opened.
        self._factors = EmissionFactors.from_impact(self.registry.site.impact)
        # Set once subscribed to the broker for the first time.
        self.ready = asyncio.Event()

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

    async def run(self, stop: asyncio.Event | None = None) -> Stats:
        """Run until `stop` is set (or SIGTERM/SIGINT when run from the command line)."""
        stop = stop or asyncio.Event()
        s = self.settings
        transport = make_transport(self._target)
        await transport.start()
        if isinstance(transport, V1Transport):
            try:
                await transport.create_database()
            except Exception as exc:  # the writer creates it later on "database not found"
                log.warning("InfluxDB not reachable at start (%s); will retry on write", exc)

        spool_dir = s.spool_path()
        spool = Spool(spool_dir, max_bytes=s.spool_max_bytes)
        try:
            await asyncio.to_thread(spool.open)
        except BaseException:
            await transport.close()
            raise
        site = self.registry.site
        dead_letters = DeadLetters(
            spool_dir,
            max_bytes=s.dead_letter_max_bytes,
            quarantine=site.unknown_devices == "quarantine",
        )
        pipeline = Pipeline(
            self.registry, self.stats, s.max_payload_bytes, s.max_future_s, s.max_age_s
        )
        delivery: AlertDelivery | None = None
        if s.alerts:
            delivery = AlertDelivery(
                site.site,
                site.alerts,
                lambda topic, body: consumer.publish(topic, body, qos=1, retain=True),
                lambda line: writer.submit(Batch([line])),
            )
            self.alerts = AlertEngine(
                self.registry, site.alerts.rules, delivery.notify, spool_dir / "alerts.json"
            )
            # The evaluator also keeps the rollups: both need every reading of a device.
            self.rollups = Rollups(
                self.registry,
                lambda lines: writer.submit(Batch(lines, place=s.rollups_rp)),
                self._factors,
            )
            alerts_observe, rollups_observe = self.alerts.observe, self.rollups.observe

            def evaluate(reading: Reading) -> None:
                alerts_observe(reading)
                rollups_observe(reading)

            if not s.mqtt_share_group:
                pipeline.observe = evaluate

        def ack(batch: Batch) -> None:
            consumer.ack(batch.acks, batch.generation)

        topic = deadletter_topic(site.site)

        def publish_rejected(entries: list[dict[str, Any]]) -> None:
            for e in entries:
                consumer.publish(topic, json.dumps(e, ensure_ascii=False).encode())

        writer = BatchWriter(
            transport, spool, dead_letters, self.stats, ack, on_rejected=publish_rejected
        )
        self.writer = writer
        batcher = Batcher(writer.submit, s.batch_size, s.flush_interval_s)
        handle = pipeline.handle
        add = batcher.add
        stats = self.stats

        def on_message(topic: str, payload: bytes, mid: int, received_ms: int) -> None:
            result = handle(topic, payload, received_ms)
            if not mid and writer.spool_full and type(result) is list:
                # QoS 0: nothing to withhold an acknowledgement from, and holding it in memory
                # would grow with the outage. Counted, exported, alerting via spool_full.
                stats.dropped_qos0 += 1
                return
            add(result, mid, consumer.generation)

        filters = pipeline.filters
        if s.mqtt_share_group:
            filters = [f"$share/{s.mqtt_share_group}/{f}" for f in filters]
        consumer = MqttConsumer(
            self._mqtt,
            s.mqtt_client_id,
            filters,
            on_message,
            session_expiry_s=s.mqtt_session_expiry_s,
            receive_maximum=s.mqtt_receive_maximum,
            on_connected=self.ready.set,
        )
        self.consumer = consumer
        serial = self.serial = SerialSources(
            site,
            pipeline,
            stats,
            lambda result: add(result, 0, consumer.generation),
            lambda topic, payload: consumer.publish(topic, payload, qos=1),
        )
        if s.health_port:
            self.health = HealthServer(self, s.health_host, s.health_port)
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
            spool_dir,
        )
        if self.rollups is not None:
            await self._seed_rollups(self.rollups)
        loop = asyncio.get_running_loop()
        writer_task = asyncio.create_task(writer.run(), name="influx-writer")
        replay_task = asyncio.create_task(writer.replay(), name="spool-replay")
        mqtt_task = asyncio.create_task(consumer.run(), name="mqtt-consumer")
        stats_task = asyncio.create_task(self._log_stats(), name="stats")
        own_stats = PipelineStats(
            self.stats, site.site, s.mqtt_client_id, spool, frozenset(d.id for d in self.registry)
        )
        own_task = asyncio.create_task(
            self._write_own_stats(own_stats, writer, s.pipeline_interval_s), name="pipeline-stats"
        )
        serial_tasks = [asyncio.create_task(job, name="serial") for job in serial.jobs()]
        alert_tasks = []
        observer: MqttConsumer | None = None
        if self.alerts is not None and delivery is not None:
            alert_tasks = [
                asyncio.create_task(delivery.run(), name="alert-webhooks"),
                asyncio.create_task(self._alert_ticks(self.alerts), name="alert-ticks"),
            ]
            if self.rollups is not None:
                alert_tasks.append(
                    asyncio.create_task(self._rollup_flushes(self.rollups), name="rollups")
                )
            if s.mqtt_share_group:
                # A shared subscription gives this replica only its share of the readings; the
                # alert engine needs every device's, so it gets a subscription of its own.
                observer = self._alert_observer(pipeline.filters, evaluate)
                alert_tasks.append(asyncio.create_task(observer.run(), name="alert-observer"))
        stop_task = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {stop_task, writer_task, replay_task, mqtt_task},
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                if task is not stop_task and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            deadline = loop.time() + s.shutdown_timeout_s
            stop_task.cancel()
            stats_task.cancel()
            own_task.cancel()
            for task in serial_tasks + alert_tasks:
                task.cancel()
            # Stop taking messages, store what was taken (InfluxDB or spool), acknowledge it,
            # then leave. Whatever misses the deadline stays unacknowledged: the broker
            # redelivers it to the next run.
            consumer.pause()
            batcher.flush()
            if self.rollups is not None:
                self.rollups.flush()
            writer.submit(Batch(own_stats.lines()))  # the last interval's counts too
            try:
                await asyncio.wait_for(writer.drain(), timeout=s.shutdown_timeout_s)
            except TimeoutError:
                log.error(
                    "shutdown deadline passed with %d batches unstored; the broker will "
                    "redeliver them",
                    writer.queue.qsize(),
                )
            await consumer.stop(timeout_s=max(0.5, deadline - loop.time()))
            if observer is not None:
                await observer.stop(timeout_s=1.0)
            self.stats.reconnects = consumer.reconnects
            for task in (writer_task, replay_task, mqtt_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self.health is not None:
                await self.health.stop()
            spool.close()
            await transport.close()
            if not spool.empty:
                log.warning(
                    "%d spooled batches (%d bytes) wait in %s for the next run",
                    spool.pending_records,
                    spool.pending_bytes,
                    spool_dir,
                )
            log.info("stopped: %s", self.stats.snapshot())
        return self.stats

    def _alert_observer(
        self, filters: list[str], evaluate: Callable[[Reading], None]
    ) -> MqttConsumer:
        """Every reading, validated like the writing path but only shown to the alert engine;
        acknowledged at once, because nothing is stored from here."""
        s = self.settings
        judge = Pipeline(
            self.registry, Stats(), s.max_payload_bytes, s.max_future_s, s.max_age_s,
            observe=evaluate, judge_only=True,
        )  # fmt: skip

        def on_message(topic: str, payload: bytes, mid: int, received_ms: int) -> None:
            judge.handle(topic, payload, received_ms)
            if mid:
                observer.ack([mid], observer.generation)

        observer = MqttConsumer(
            self._mqtt,
            f"{s.mqtt_client_id}-alerts",
            filters,
            on_message,
            session_expiry_s=0,
            receive_maximum=s.mqtt_receive_maximum,
        )
        return observer

    async def _seed_rollups(self, rollups: Rollups) -> None:
        """Load the live window's readings back from InfluxDB, so the hours around a restart are
        computed from all their readings, not only from those that arrive after it."""
        s = self.settings
        now = int(time.time() * 1000)
        token = s.influx_token.get_secret_value() if s.influx_token else None
        try:
            n = await load_readings(
                self.registry, s.influx_url, s.influx_db, now - rollups.window_ms, now,
                rollups.observe, token,
            )  # fmt: skip
        except Exception as exc:  # InfluxDB down: rollups start from live readings alone
            rollups.reset()
            log.warning(
                "could not load the last %.0f h of readings for the rollups (%s); the hours "
                "around this start may be partial until `kera-ingest rollups` recomputes them",
                rollups.window_ms / 3_600_000,
                exc,
            )
            return
        rollups.flush(write=False)
        log.info("rollups: loaded %d readings of the last window from InfluxDB", n)

    @staticmethod
    async def _rollup_flushes(rollups: Rollups, every_s: float = 30.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            rollups.flush()

    @staticmethod
    async def _alert_ticks(engine: AlertEngine, every_s: float = 5.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            engine.tick(time.time_ns() // 1_000_000)

    @staticmethod
    async def _write_own_stats(own: PipelineStats, writer: BatchWriter, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            writer.submit(Batch(own.lines()))

    async def _log_stats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            if self.consumer is not None:  # the consumer counts them; the line shows them now
                self.stats.reconnects = self.consumer.reconnects
            log.info("stats: %s", self.stats.snapshot())


def run_forever(settings: IngestSettings) -> Stats:
    """Run with SIGTERM/SIGINT wired to a graceful stop."""

    async def main() -> Stats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await Ingestor(settings).run(stop)

    return asyncio.run(main())
