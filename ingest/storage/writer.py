"""The one writer: every batch goes to InfluxDB or to the disk spool, and only then is acknowledged.

Two tasks share it:
- `run` takes batches in arrival order, merging those that queued behind a slow write into one
  write of up to `max_lines` (a database answering in 3 s took 22 points/s one batch at a
  time). While the spool is empty it writes straight to InfluxDB;
  when that fails for a reason that can pass (connection refused, timeout, 5xx, 429, 401/403/404)
  the batch goes to the spool instead. Once anything is spooled, every later batch is spooled
  too, so InfluxDB receives batches in the order they arrived.
- `replay` writes spooled records to InfluxDB in order, with capped exponential backoff and
  jitter (ingest.backoff; honouring Retry-After), and removes each once it is stored. When the
  spool is empty the writer goes back to writing directly.

When the spool is full (its bound) or its disk is (no space, or any write error), `run` waits for
replay to free space, or for space to appear (checked every DISK_RETRY_S), and acknowledges
nothing meanwhile:
the broker holds the backlog, and the MQTT receive maximum stops it sending more than a window of
QoS 1 readings. QoS 0 readings, which the broker would not keep anyway, are counted and dropped
by the message callback in `ingest.service` while the spool is full (`spool_full` below), so
memory does not grow with the length of an outage. A full disk never ends either task: it is a
state on /healthz and in the metrics, and it passes by itself once InfluxDB takes the backlog
(replay needs no free space) or someone frees space.

A batch InfluxDB refuses as bad (400, 413, 422) is bisected: halves are written again until the
single refused lines are found, which go to the dead letters; the rest is stored. Writing a point
twice is harmless (same series and time overwrite), so halves that InfluxDB 1.x already stored in
its partial write cost a request, not a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ingest.backoff import Backoff
from ingest.storage.batch import Batch, pack_place, unpack_place
from ingest.storage.deadletter import DeadLetters
from ingest.storage.lineproto import split_lines
from ingest.storage.ports import DeadLetterSink, Transport, WriteCounts
from ingest.storage.spool import Spool, SpoolFull, SpoolUnwritable
from ingest.storage.transports import WriteError

log = logging.getLogger(__name__)

# How often a writer refused by the disk tries again when nothing wakes it earlier (replay
# freeing a segment does): space can also come from outside (a person, log rotation).
DISK_RETRY_S = 1.0


class BatchWriter:
    def __init__(
        self,
        transport: Transport,
        spool: Spool,
        dead_letters: DeadLetters,
        stats: WriteCounts,
        on_rejected: DeadLetterSink | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_lines: int = 5000,
    ) -> None:
        self.transport = transport
        self.spool = spool
        self.dead_letters = dead_letters
        self.stats = stats
        self._on_rejected = on_rejected
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        # Batches merged behind a slow write stop at this many lines (KERA_BATCH_SIZE).
        self.max_lines = max_lines
        # Lines submitted and not yet stored: the backlog in memory.
        self.backlog_lines = 0
        # The last write's duration, and when the write under way started (None: none is).
        self.last_write_s = 0.0
        self.write_started: float | None = None
        # Unbounded in count, bounded in practice: every batch holds unacknowledged QoS 1
        # messages, of which the broker sends at most the receive maximum.
        self.queue: asyncio.Queue[Batch] = asyncio.Queue()
        # False from a failed write until a write succeeds again.
        self.healthy = True
        self.last_error: str | None = None
        self.spool_full = False
        # Set while the spool's disk refuses records: the reason, in words, for /healthz.
        self.disk_error: str | None = None
        self._disk_since = 0.0
        # The size of the batch waiting for room while the spool is full.
        self._waiting = 0
        # An overflow episode: from the first refusal until the backlog has drained below half
        # the bound, so the refusals while it drains count (and log) once, not once each.
        self._episode = False
        self._spooled = asyncio.Event()
        self._space = asyncio.Event()

    def submit(self, batch: Batch) -> None:
        self.backlog_lines += len(batch.lines)
        self.queue.put_nowait(batch)

    @property
    def write_age_s(self) -> float:
        """How long the write under way has been waiting (0 when none is)."""
        started = self.write_started
        return 0.0 if started is None else time.perf_counter() - started

    async def drain(self) -> None:
        """Wait until every submitted batch is stored (in InfluxDB or the spool) and acked."""
        await self.queue.join()

    # -- the arrival-order side -----------------------------------------------------------------

    async def run(self) -> None:
        carry: Batch | None = None
        while True:
            batch = carry if carry is not None else await self.queue.get()
            batch, taken, carry = self._merge(batch)
            try:
                if batch.lines:
                    await self._store(batch.lines, batch.place)
                if batch.rejects:
                    await self._keep(batch)
                batch.settle()
            finally:
                self.backlog_lines -= len(batch.lines)
                for _ in range(taken):
                    self.queue.task_done()

    def _merge(self, batch: Batch) -> tuple[Batch, int, Batch | None]:
        """`batch` and the batches queued behind it, as one, up to `max_lines`: (the batch, how
        many it took from the queue, the first one that did not fit, to go next). Only batches
        for the same place, acknowledged on the same connection, merge, in arrival order."""
        queue = self.queue
        if queue.empty() or len(batch.lines) >= self.max_lines:
            return batch, 1, None
        merged = Batch(
            list(batch.lines), list(batch.ids), batch.connection, list(batch.rejects), batch.place
        )
        taken = 1
        while not queue.empty():
            nxt = queue.get_nowait()
            fits = len(merged.lines) + len(nxt.lines) <= self.max_lines
            if not fits or nxt.place != merged.place or nxt.connection is not merged.connection:
                return merged, taken, nxt
            merged.lines += nxt.lines
            merged.ids += nxt.ids
            merged.rejects += nxt.rejects
            taken += 1
        return merged, taken, None

    async def _store(self, lines: list[str], place: str | None = None) -> None:
        body = "\n".join(lines).encode()
        record = pack_place(place, body) if place is not None else body
        while True:
            if self.spool.empty:
                try:
                    await self._write(lines, body, place)
                except WriteError as exc:
                    self._failed(exc)
                    self.stats.write_retries += 1
                    log.warning("write of %d points failed (%s); spooling to disk", len(lines), exc)
                else:
                    self._room_again()
                    return
            try:
                await asyncio.to_thread(self.spool.append, record)
            except SpoolFull as exc:
                self._refused_by_bound(exc, record)
                await self._space.wait()
                continue
            except SpoolUnwritable as exc:
                self._refused_by_disk(exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._space.wait(), DISK_RETRY_S)
                continue
            self._room_again()
            self.stats.points_spooled += len(lines)
            self._spooled.set()
            return

    def _refused_by_bound(self, exc: SpoolFull, record: bytes) -> None:
        self.spool_full = True
        if not self._episode:
            # One episode per overflow: refusals while the backlog drains belong to it.
            self._episode = True
            self.stats.spool_full_events += 1
            log.error(
                "spool full (%s): acknowledging nothing until InfluxDB takes the backlog; the "
                "broker queues new readings",
                exc,
            )
        self._space.clear()
        self._waiting = self.spool.record_size(record)

    def _refused_by_disk(self, exc: SpoolUnwritable) -> None:
        if self.disk_error is None:
            self.stats.spool_disk_full_events += 1
            self._disk_since = time.monotonic()
            log.error(
                "spool disk refused a batch: %s. Acknowledging nothing, the broker queues new "
                "readings; this passes once InfluxDB takes the backlog or space is freed",
                exc,
            )
        self.disk_error = str(exc)
        self._space.clear()

    def _room_again(self) -> None:
        if self.disk_error is not None:
            log.warning(
                "spool disk takes batches again after %.0f s; acknowledging again",
                time.monotonic() - self._disk_since,
            )
            self.disk_error = None
        self.spool_full = False
        self._end_episode()

    async def _keep(self, batch: Batch) -> None:
        entries = self.dead_letters.entries(batch.rejects)
        try:
            await asyncio.to_thread(self.dead_letters.keep, entries, batch.rejects)
        except OSError as exc:
            # The messages were rejected either way; losing the file's copy must not stop the
            # flow, nor the topic's copy, which is then the only one.
            self.stats.dead_letter_errors += len(batch.rejects)
            log.error("cannot keep %d dead letters in the file: %s", len(batch.rejects), exc)
        if self._on_rejected is not None:
            self._on_rejected.dead_letters(entries)

    # -- the replay side ------------------------------------------------------------------------

    async def replay(self) -> None:
        spool = self.spool
        while True:
            try:
                record = await asyncio.to_thread(spool.peek)
            except OSError as exc:
                # A read error must not end replay (and with it the ingestor): say so and retry.
                log.error("cannot read the spool (%s); retrying in %.0f s", exc, DISK_RETRY_S * 5)
                await asyncio.sleep(DISK_RETRY_S * 5)
                continue
            if record is None:
                self._spooled.clear()
                if spool.empty:
                    await self._spooled.wait()
                continue
            backoff = self._backoff
            backoff.reset()
            place, body = unpack_place(record.body)
            while True:
                try:
                    await self._write(None, body, place)
                    break
                except WriteError as exc:
                    self._failed(exc)
                    delay = backoff.next()
                    if exc.retry_after is not None:
                        delay = max(delay, min(exc.retry_after, backoff.max_s))
                    self.stats.write_retries += 1
                    log.warning(
                        "replay of a spooled batch failed (%s); retry %d in %.2fs "
                        "(%d batches spooled)",
                        exc,
                        backoff.attempt,
                        delay,
                        spool.pending_records,
                    )
                    await asyncio.sleep(delay)
            await asyncio.to_thread(spool.commit, record)
            if backoff.attempt:
                log.info(
                    "InfluxDB is back: replayed a spooled record after %d retries",
                    backoff.attempt,
                )
            # Wake the refused writer only when its batch fits, by the spool's own test; a writer
            # refused by the disk at every commit, since a finished segment frees disk space.
            if (self.spool_full and spool.has_room(self._waiting)) or self.disk_error:
                self._space.set()
            self._end_episode()
            if spool.empty:
                log.info("spool drained; writing directly again")

    def _end_episode(self) -> None:
        spool = self.spool
        if self._episode and not self.spool_full and spool.pending_bytes <= spool.max_bytes // 2:
            self._episode = False
            log.warning("spool has room again (%d bytes)", spool.pending_bytes)

    # -- one write ------------------------------------------------------------------------------

    def _failed(self, exc: WriteError) -> None:
        self.healthy = False
        self.last_error = str(exc)

    async def _write(self, lines: list[str] | None, body: bytes, place: str | None) -> None:
        """Store a batch (`body`, and its `lines` when at hand) in InfluxDB, dead-lettering lines
        it refuses as bad. Raises WriteError only for failures worth retrying; then nothing can
        be assumed stored."""
        started = self.write_started = time.perf_counter()
        try:
            points = await self._post(body, place)
        except WriteError as exc:
            if exc.retryable:
                raise
            await self._bisect(lines or split_lines(body.decode()), exc, place)
            points = len(lines) if lines is not None else body.count(b"\n") + 1
        finally:
            self.write_started = None
        stats = self.stats
        elapsed = self.last_write_s = time.perf_counter() - started
        stats.write_seconds += elapsed
        stats.write_seconds_max = max(stats.write_seconds_max, elapsed)
        stats.batch_points_max = max(stats.batch_points_max, points)
        stats.batches_written += 1
        self.healthy = True
        self.last_error = None

    async def _post(self, body: bytes, place: str | None) -> int:
        """Write one body; returns its points (counted once, here, for every caller)."""
        try:
            await self.transport.write(body, place)
        except WriteError as exc:
            if not exc.missing_database:
                raise
            log.warning("database missing; creating it")
            await self.transport.create_database()
            await self.transport.write(body, place)
        # Exact unless a string field holds a raw newline; no field in the contract does.
        points = body.count(b"\n") + 1
        self.stats.points_written += points
        return points

    async def _bisect(self, lines: list[str], exc: WriteError, place: str | None) -> None:
        if len(lines) == 1:
            self.stats.points_dead_lettered += 1
            try:
                await asyncio.to_thread(self.dead_letters.add, lines, str(exc))
            except OSError as e:
                self.stats.dead_letter_errors += 1
                log.error("InfluxDB refused a point; cannot keep it as a dead letter (%s)", e)
            log.error("InfluxDB refused a point, kept as a dead letter: %s: %s", exc, lines[0])
            return
        mid = len(lines) // 2
        for half in (lines[:mid], lines[mid:]):
            try:
                await self._post("\n".join(half).encode(), place)
            except WriteError as e:
                if e.retryable:
                    raise
                await self._bisect(half, e, place)
