"""Batches for the writer: a message's lines and its id to acknowledge, collected in arrival
order and handed over once per batch, so the event loop pays its per-item cost per batch, not
per message (ingest.pipeline runs per message)."""

from __future__ import annotations

import asyncio
from collections import deque

from ingest.reading import DeadLetter, Verdict
from ingest.storage.batch import Batch
from ingest.storage.ports import BatchSink, Connection


class Batcher:
    """Collects lines until `max_lines` or `max_delay_s` after the first one, then hands the batch
    to `sink`.

    A message whose verdict comes later (`Deferred`) holds its place: `hold` takes its packet
    id now, `complete` adds its lines to the same batch, and a batch with a verdict still out
    waits, with every batch after it, until the verdict is in. So the writer gets lines and
    PUBACKs in arrival order, as MQTT asks."""

    __slots__ = (
        "_batch",
        "_held",
        "_loop",
        "_max_delay",
        "_max_lines",
        "_sealed",
        "_sink",
        "_timer",
    )

    def __init__(
        self,
        sink: BatchSink,
        max_lines: int = 5000,
        max_delay_s: float = 0.2,
    ) -> None:
        self._sink = sink.submit
        self._max_lines = max_lines
        self._max_delay = max_delay_s
        self._batch = Batch()
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        # Verdicts still out, by batch (id); flushed batches waiting for them, in order.
        self._held: dict[int, int] = {}
        self._sealed: deque[Batch] = deque()

    def add(self, result: Verdict, mid: int, connection: Connection | None) -> None:
        """A message's verdict (Pipeline.take), its id to acknowledge (0: none, QoS 0) and the
        connection that delivered it."""
        batch = self._current(connection)
        self._put(batch, result)
        if mid:
            batch.ids.append(mid)
        self._added(batch)

    def hold(self, mid: int, connection: Connection | None) -> Batch:
        """A place for a verdict that comes later; give it to `complete`."""
        batch = self._current(connection)
        self._held[id(batch)] = self._held.get(id(batch), 0) + 1
        if mid:
            batch.ids.append(mid)
        self._added(batch)
        return batch

    def complete(self, batch: Batch, result: Verdict) -> None:
        self._put(batch, result)
        left = self._held[id(batch)] - 1
        if left:
            self._held[id(batch)] = left
            return
        del self._held[id(batch)]
        if batch is self._batch:
            if len(batch.lines) + len(batch.rejects) >= self._max_lines:
                self.flush()
        else:
            self._release()

    @property
    def held(self) -> int:
        """Verdicts still out."""
        return sum(self._held.values())

    def _current(self, connection: Connection | None) -> Batch:
        # A batch's ids belong to one connection: a reconnect starts a new batch.
        batch = self._batch
        if connection is not batch.connection:
            self.flush()
            batch = self._batch
            batch.connection = connection
        return batch

    @staticmethod
    def _put(batch: Batch, result: Verdict) -> None:
        if type(result) is list:
            batch.lines.extend(result)
        else:
            assert isinstance(result, DeadLetter)
            batch.rejects.append(result)
            if result.kept:
                batch.lines.extend(result.kept)

    def _added(self, batch: Batch) -> None:
        if self._timer is None:
            self._timer = self._loop.call_later(self._max_delay, self.flush)
        if len(batch.lines) + len(batch.rejects) >= self._max_lines:
            self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._batch
        if batch.lines or batch.ids or batch.rejects or id(batch) in self._held:
            self._batch = Batch(connection=batch.connection)
            if self._sealed or id(batch) in self._held:
                self._sealed.append(batch)
                self._release()
            else:
                self._sink(batch)

    def _release(self) -> None:
        sealed = self._sealed
        while sealed and id(sealed[0]) not in self._held:
            self._sink(sealed.popleft())
