"""The writing subscription's receiver: each message's verdict from the pipeline goes to the
batcher, in arrival order, with its packet id and the connection that acknowledges it.

The step between the MQTT consumer and storage (docs/architecture.md, "One reading's path"):

    MqttConsumer.on_publishes -> Intake.receive -> Pipeline.take -> Batcher.add
"""

from __future__ import annotations

import asyncio

from ingest.mqtt import Publish
from ingest.observability.counters import Stats
from ingest.pipeline import Deferred, Pipeline
from ingest.storage.batch import Batch
from ingest.storage.batcher import Batcher
from ingest.storage.ports import Connection
from ingest.storage.writer import BatchWriter


class Intake:
    """A `Receiver` (ingest.mqtt) that stores what it receives."""

    __slots__ = ("_add", "_batcher", "_stats", "_take", "_waiting", "_writer")

    def __init__(
        self, pipeline: Pipeline, batcher: Batcher, writer: BatchWriter, stats: Stats
    ) -> None:
        # Bound once: this runs for every message.
        self._take = pipeline.take
        self._add = batcher.add
        self._batcher = batcher
        self._writer = writer
        self._stats = stats
        # Messages waiting for their device codec's verdict; their batch holds their place.
        self._waiting: set[asyncio.Task[None]] = set()

    def receive(self, messages: list[Publish], received_ms: int, connection: Connection) -> None:
        take, add, writer = self._take, self._add, self._writer
        for topic, payload, mid in messages:
            result = take(topic, payload, received_ms)
            if type(result) is Deferred:
                self._defer(result, mid, connection)
            elif not mid and (writer.spool_full or writer.disk_error) and type(result) is list:
                # QoS 0: nothing to withhold an acknowledgement from, and holding it in memory
                # would grow with the outage. Counted, exported, alerting via spool_full.
                self._stats.dropped_qos0 += 1
            else:
                add(result, mid, connection)

    def _defer(self, deferred: Deferred, mid: int, connection: Connection) -> None:
        place = self._batcher.hold(mid, connection)
        task = asyncio.create_task(self._settle(deferred, place))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _settle(self, deferred: Deferred, place: Batch) -> None:
        self._batcher.complete(place, await deferred.verdict())

    async def verdicts(self, timeout_s: float) -> None:
        """Wait (bounded) for the verdicts still out: at shutdown, before the last flush."""
        if self._waiting:
            await asyncio.wait(self._waiting, timeout=timeout_s)
