"""The evaluating ingestor's own work (`KERA_EVALUATE=true`).

The alert engine, its delivery and the impact rollups need every reading of the devices they
judge, so exactly one ingestor runs them for the whole site, or for each share of it
(`KERA_EVALUATION_SHARD=k/n`, one evaluator per k). Here they are built, fed, run periodically
and stopped, apart from the service that stores readings. On a shared subscription, where this
replica only receives its share, the evaluator subscribes to the readings it judges on a
connection of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Generator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from devices import Registry
from ingest.codecs import CodecSandbox
from ingest.evaluation.alerts.delivery import AlertDelivery
from ingest.evaluation.alerts.engine import AlertEngine, steady_ms
from ingest.evaluation.rollups import (
    EmissionFactors,
    InfluxReadings,
    Repair,
    Rollups,
    load_readings,
    repair_late,
)
from ingest.mqtt import MqttConsumer, MqttTarget, Publish
from ingest.observability.counters import Stats
from ingest.pipeline import Deferred, Pipeline
from ingest.reading import Reading
from ingest.storage.batch import Batch
from ingest.storage.ports import BatchSink, Connection, Publisher

if TYPE_CHECKING:  # settings names the shard type from here: a type-only import, no cycle
    from ingest.settings import IngestSettings

log = logging.getLogger(__name__)

# How often open alerts are re-judged without new readings (offline devices, durations), and how
# often the rollups recompute what new, late or replayed readings touched.
TICK_S = 5.0
ROLLUP_FLUSH_S = 30.0
# A rollup flush runs on the event loop in slices this long, so that /healthz, the MQTT
# keep-alive and the receive window are served between them (a flush after a burst of readings
# can take seconds at district scale: docs/performance.md).
FLUSH_SLICE_S = 0.005
# The start-up reload asks InfluxDB for an hour of this many devices at a time: one answer of
# 500 energy meters read every 10 s is 180,000 rows (about 10 MB of JSON); a day of 5,000 would
# be 17 million.
SEED_CHUNK_MS = 3_600_000
# The rollups' history loads after the ingestor subscribed, in the background, bounded: each
# query by SEED_QUERY_S, the whole by SEED_LIMIT_S, and the live readings held for the rollups
# meanwhile by SEED_HELD_MAX. Past any bound the rollups start from live readings alone, as when
# InfluxDB is down (a frozen InfluxDB once kept the ingestor unsubscribed for 322 s).
SEED_QUERY_S = 30.0
SEED_LIMIT_S = 300.0
SEED_HELD_MAX = 200_000
SEED_DEVICES_PER_QUERY = 500


class Evaluator:
    def __init__(
        self,
        registry: Registry,
        settings: IngestSettings,
        factors: EmissionFactors,
        sink: BatchSink,
        publisher: Publisher,
    ) -> None:
        """`sink`: where alert and rollup points go (the writer); `publisher`: the broker
        connection alert transitions are published on."""
        self._registry = registry
        self._settings = settings
        site = registry.site
        self.delivery = AlertDelivery(site.site, site.alerts, publisher, sink)
        self.alerts = AlertEngine(
            registry, site.alerts.rules, self.delivery.notify, settings.spool_path() / "alerts.json"
        )
        shard = self.shard = settings.shard()
        self.rollups = Rollups(
            registry,
            lambda lines: sink.submit(Batch(lines, place=settings.rollups_rp)),
            factors,
            window_h=settings.rollups_window_h,
            shard=shard,
        )
        self.observer: MqttConsumer | None = None
        # Called once the history is loaded (or given up): the service freezes the GC again.
        self.on_seeded: Callable[[], None] | None = None
        self._seeding: asyncio.Task[None] | None = None
        # Cleared while the rollups' history loads: the periodic flush waits for it.
        self._flush_gate = asyncio.Event()
        self._flush_gate.set()
        # Verdicts of the observer's uplinks whose device codec runs in the sandbox.
        self._codec_tasks: set[asyncio.Task[object]] = set()
        # What the evaluator's own subscription (on shared groups) judged: with a share group
        # the stored readings are counted elsewhere, and these say when it has seen them too.
        self.judged = Stats()
        self._flushing: Generator[None, None, int] | None = None
        # Late readings taken at the last flush, repaired before the next one (_flush_rollups),
        # and the repair under way.
        self._due: list[Repair] = []
        self._repairing: tuple[list[Repair], Generator[None, None, int]] | None = None
        alerts_observe, rollups_observe = self.alerts.observe, self.rollups.observe
        # While the history loads (seed), live readings wait here for the rollups, so that they
        # see every device's readings in time order; None once loaded.
        holding: list[list[Reading] | None] = [None]
        self._holding = holding
        # What is held, by (device, time): a held reading may be stored and so also come back
        # in the history's load; the load skips it, and it is rolled up once, when released.
        held_keys: set[tuple[str, int]] = set()
        self._held_keys = held_keys
        self._seed_overflow = asyncio.Event()
        overflow = self._seed_overflow

        # Called for every accepted reading: two calls and a look into a list.
        def observe(reading: Reading) -> None:
            alerts_observe(reading)
            held = holding[0]
            if held is None:
                rollups_observe(reading)
                return
            held.append(reading)
            held_keys.add((reading.device.id, reading.time_ms))
            if len(held) > SEED_HELD_MAX:
                overflow.set()

        self.observe = observe
        self._seed_observe = rollups_observe
        if shard is not None:
            mine = shard.devices(registry)

            def seed_shard(reading: Reading) -> None:
                if reading.device.id in mine:
                    rollups_observe(reading)

            self._seed_observe = seed_shard

            def observe_shard(reading: Reading) -> None:
                if reading.device.id in mine:
                    observe(reading)

            self.observe = observe_shard
            log.info(
                "evaluating shard %s: %d of %d devices, %d of %d spaces",
                shard, len(mine), len(registry),
                len({d.space for d in registry if d.id in mine}),
                len({d.space for d in registry}),
            )  # fmt: skip

    def subscribe_all(
        self, mqtt: MqttTarget, filters: list[str], sandbox: CodecSandbox | None = None
    ) -> None:
        """Every reading, validated like the writing path but only shown to the evaluator;
        acknowledged at once, because nothing is stored from here. Device codecs run in
        `sandbox`, the writing path's, never on the event loop."""
        s = self._settings
        judge = Pipeline(
            self._registry, self.judged, s.max_payload_bytes, s.max_future_s, s.max_age_s,
            observe=self.observe, judge_only=True, sandbox=sandbox,
        )  # fmt: skip
        if self.shard is not None:
            filters = self.shard.filters(self._registry)
        observer = MqttConsumer(
            mqtt,
            f"{s.mqtt_client_id}-alerts",
            filters,
            _Observer(judge, self._codec_tasks),
            session_expiry_s=0,
            receive_maximum=s.mqtt_receive_maximum,
            max_packet_bytes=s.max_packet_bytes(),
            protocol_version=s.protocol_version(),
        )
        self.observer = observer

    def _token(self) -> str | None:
        s = self._settings
        return s.influx_token.get_secret_value() if s.influx_token else None

    async def seed(self) -> None:
        """Compute the hours of the days a late reading may still reach (`Rollups.seed_from`)
        from the readings in InfluxDB, so the hours and days around a restart are computed from
        all their readings, not only from those that arrive after it. An hour at a time, each
        flushed without writing, so the raw window stays short while loading, and in groups
        of devices, so no answer of InfluxDB is larger than a few MB.

        Runs beside the live ingestor (a job), within the SEED_ bounds; live readings wait for
        the rollups meanwhile and are handed over, in arrival order, when it ends, whichever
        way it ends."""
        s, rollups = self._settings, self.rollups
        now = int(time.time() * 1000)
        since = rollups.seed_from(now)
        self._hold_live()
        load = asyncio.ensure_future(
            load_readings(
                self._registry, s.influx_url, s.influx_db, since, now, self._load_observe,
                self._token(), after_chunk=lambda: run_in_slices(rollups.flush_steps(False)),
                chunk_ms=SEED_CHUNK_MS, per_query=SEED_DEVICES_PER_QUERY,
                timeout_s=max(SEED_QUERY_S, s.influx_timeout_s),
            )
        )  # fmt: skip
        overflow = asyncio.ensure_future(self._seed_overflow.wait())
        try:
            done, _ = await asyncio.wait(
                {load, overflow}, timeout=SEED_LIMIT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:  # stopped meanwhile: `stop` hands the held readings over
            for task in (load, overflow):
                task.cancel()
        failed: BaseException | str | None
        if load in done:
            failed = load.exception()
        elif overflow in done:
            failed = f"{SEED_HELD_MAX} live readings arrived meanwhile"
        else:
            failed = f"it took over {SEED_LIMIT_S:.0f} s"
        if failed is None:
            log.info(
                "rollups: loaded %d readings since %s from InfluxDB", load.result(), _utc(since)
            )
        else:  # InfluxDB down or slow: rollups start from live readings alone
            rollups.reset()
            log.warning(
                "could not load the last %.0f h of readings for the rollups (%s); the hours "
                "around this start may be partial until `kera-ingest rollups` recomputes them",
                (now - since) / 3_600_000,
                failed,
            )
        self._release_held()
        if self.on_seeded is not None:
            self.on_seeded()

    @property
    def loading(self) -> bool:
        """Whether the rollups' history is still loading (`seed`); live readings wait meanwhile."""
        return self._holding[0] is not None

    def _load_observe(self, reading: Reading) -> None:
        if (reading.device.id, reading.time_ms) not in self._held_keys:
            self._seed_observe(reading)

    def _hold_live(self) -> None:
        if self._holding[0] is None:
            self._holding[0] = []
        self._flush_gate.clear()

    def _release_held(self) -> None:
        """Hand the readings held while loading to the rollups, and let them through again."""
        held, self._holding[0] = self._holding[0], None
        self._held_keys.clear()
        for reading in held or ():
            self._seed_observe(reading)
        self._flush_gate.set()

    def jobs(self) -> list[Coroutine[Any, Any, None]]:
        alerts = self.alerts
        # The history's load is the evaluator's own task, not a job: `stop` lets it finish. Live
        # readings are held from now, before the consumer (started beside it) takes any.
        self._hold_live()
        self._seeding = asyncio.create_task(self.seed(), name="rollups-seed")
        jobs = [
            self.delivery.run(),
            every(TICK_S, lambda: alerts.tick(steady_ms())),
            self._flush_rollups(),
        ]
        if self.observer is not None:
            jobs.append(self.observer.run())
        return jobs

    async def _flush_rollups(self) -> None:
        rollups = self.rollups
        while True:
            await asyncio.sleep(ROLLUP_FLUSH_S)
            await self._flush_gate.wait()  # never beside the history's own flushes
            if self._due:
                await self._repair()
            self._flushing = steps = rollups.flush_steps()
            try:
                await run_in_slices(steps)
            finally:
                self._flushing = None
            # Repaired after the next sleep: by then everything the repair reads back (accepted
            # before this flush) has been stored.
            self._due = rollups.take_late()

    async def _repair(self) -> None:
        s, rollups = self._settings, self.rollups
        due, self._due = self._due, []

        async def run(steps: Generator[None, None, int]) -> int:
            self._repairing = (due, steps)
            try:
                return await run_in_slices(steps)
            finally:
                self._repairing = None

        try:
            async with InfluxReadings(
                self._registry.site_id, s.influx_url, s.influx_db, self._token()
            ) as source:
                await repair_late(rollups, due, source, run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # InfluxDB unreachable: held again, tried after the next flush
            log.warning(
                "rollups: could not read back the neighbours of %d late readings (%s); "
                "trying again in %.0f s",
                rollups.late,
                exc,
                ROLLUP_FLUSH_S,
            )

    async def stop(self) -> None:
        """Close the own subscription, then write the rollups of what arrived since the last
        flush (the writer is still running and stores them before the service stops)."""
        if self.observer is not None:
            await self.observer.stop(timeout_s=1.0)
        seeding = self._seeding
        if seeding is not None and not seeding.done():
            # Stopped while the history loads: let it finish (bounded), so the last flush
            # computes whole hours; past the bound the live readings count alone.
            await asyncio.wait({seeding}, timeout=self._settings.shutdown_timeout_s / 2)
            seeding.cancel()
        if self._holding[0] is not None:
            self.rollups.reset()
            self._release_held()
        if self._flushing is not None:
            # A sliced flush under way hands its work back before the last flush does it all:
            # two flushes must never interleave.
            self._flushing.close()
        due = self._due
        if self._repairing is not None:
            # Likewise a repair (its readings are stored; `kera-ingest rollups` rolls them up).
            due = due + self._repairing[0]
            self._repairing[1].close()
        self.rollups.flush()
        waiting = self.rollups.late + sum(r.readings for r in due)
        if waiting:
            log.warning(
                "rollups: %d late readings were not rolled up before stopping; they are stored, "
                "and `kera-ingest rollups` for their days rolls them up",
                waiting,
            )


async def run_in_slices(steps: Generator[None, None, int], budget_s: float | None = None) -> int:
    """Runs `steps` to the end in slices of `budget_s` (default FLUSH_SLICE_S), each followed by
    a rest as long as the slice took: the rest of the event loop (MQTT, /healthz, the writer)
    keeps at least half of it, however long the work is. Returns what the generator returns."""
    budget_s = FLUSH_SLICE_S if budget_s is None else budget_s
    try:
        began = time.perf_counter()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return int(done.value or 0)  # None: closed by stop()
            used = time.perf_counter() - began
            if used >= budget_s:
                await asyncio.sleep(used)
                began = time.perf_counter()
    finally:
        steps.close()


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def every(seconds: float, job: Callable[[], object]) -> None:
    while True:
        await asyncio.sleep(seconds)
        job()


class _Observer:
    """The evaluator's own subscription's `Receiver`: judges each message and shows its
    readings to the evaluator (`observe`), and acknowledges it at once, since nothing is
    stored from here."""

    __slots__ = ("_take", "_waiting")

    def __init__(self, judge: Pipeline, waiting: set[asyncio.Task[object]]) -> None:
        self._take = judge.take
        self._waiting = waiting

    def receive(self, messages: list[Publish], received_ms: int, connection: Connection) -> None:
        take = self._take
        for topic, payload, _ in messages:
            verdict = take(topic, payload, received_ms)
            if type(verdict) is Deferred:
                # Shown to the alert engine when its codec has run (observe is in the verdict).
                task = asyncio.create_task(verdict.verdict())
                self._waiting.add(task)
                task.add_done_callback(self._waiting.discard)
        # The read's acknowledgements as one write.
        connection.ack([mid for _, _, mid in messages if mid])
