"""The writer on its own, through its typed seams (ingest.storage.ports), with an in-memory
transport, as issue 28 asks: when batches merge, when they are acknowledged, and that spooled
ones are acknowledged and replayed. The logic only; against the real InfluxDB the same writer
runs in tests/integration/test_writer.py, and the MQTT consumer on its own against the real
Mosquitto in tests/integration/test_consumer.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ingest.observability.counters import Stats
from ingest.reading import DeadLetter, Reason
from ingest.storage.batch import Batch
from ingest.storage.deadletter import DeadLetters
from ingest.storage.spool import Spool
from ingest.storage.transports import WriteError
from ingest.storage.writer import BatchWriter
from tests.helpers import Acks, wait_until


class MemoryTransport:
    """A `Transport` in memory: keeps each write's body; can be held (a slow InfluxDB) or made
    to fail (an unreachable one)."""

    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, str | None]] = []
        self.open = asyncio.Event()
        self.open.set()
        self.down = False

    async def start(self) -> None:
        pass

    async def write(self, body: bytes, place: str | None = None) -> None:
        await self.open.wait()
        if self.down:
            raise WriteError("connection refused", retryable=True)
        self.bodies.append((body, place))

    async def create_database(self) -> None:
        pass

    async def close(self) -> None:
        pass


class Letters:
    """A `DeadLetterSink` that keeps the entries it is sent."""

    def __init__(self) -> None:
        self.entries: list[dict[str, object]] = []

    def dead_letters(self, entries: list[dict[str, object]]) -> None:
        self.entries.extend(entries)


def _writer(
    tmp_path: Path, transport: MemoryTransport, letters: Letters | None = None
) -> BatchWriter:
    spool = Spool(tmp_path / "spool").open()
    return BatchWriter(
        transport, spool, DeadLetters(tmp_path / "spool"), Stats(), on_rejected=letters,
        backoff_initial_s=0.01, backoff_max_s=0.05,
    )  # fmt: skip


async def _running(writer: BatchWriter) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(writer.run()), asyncio.create_task(writer.replay())]


async def _stop(tasks: list[asyncio.Task[None]], writer: BatchWriter) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    writer.spool.close()


async def test_batches_behind_a_slow_write_merge_and_are_acknowledged_in_order(
    tmp_path: Path,
) -> None:
    transport, acks = MemoryTransport(), Acks()
    writer = _writer(tmp_path, transport)
    tasks = await _running(writer)
    try:
        transport.open.clear()  # the first write hangs
        writer.submit(Batch(["m v=1 1"], [1], acks))
        await asyncio.sleep(0.05)
        for i in (2, 3, 4):
            writer.submit(Batch([f"m v={i} {i}"], [i], acks))
        assert acks.ids == []  # nothing is acknowledged before it is stored
        transport.open.set()
        await asyncio.wait_for(writer.drain(), 5)
    finally:
        await _stop(tasks, writer)
    assert [body for body, _ in transport.bodies] == [b"m v=1 1", b"m v=2 2\nm v=3 3\nm v=4 4"]
    assert acks.ids == [[1], [2, 3, 4]]
    assert writer.stats.points_written == 4
    assert writer.stats.batches_written == 2


async def test_batches_of_two_connections_or_places_never_merge(tmp_path: Path) -> None:
    transport, old, new = MemoryTransport(), Acks(), Acks()
    writer = _writer(tmp_path, transport)
    tasks = await _running(writer)
    try:
        transport.open.clear()
        writer.submit(Batch(["m v=0 0"]))
        await asyncio.sleep(0.05)
        writer.submit(Batch(["m v=1 1"], [1], old))
        writer.submit(Batch(["m v=2 2"], [1], new))  # a reconnect reuses packet id 1
        writer.submit(Batch(["r v=3 3"], place="rollups"))
        transport.open.set()
        await asyncio.wait_for(writer.drain(), 5)
    finally:
        await _stop(tasks, writer)
    assert [p for _, p in transport.bodies] == [None, None, None, "rollups"]
    assert (old.ids, new.ids) == ([[1]], [[1]])


async def test_an_unreachable_database_spools_acknowledges_and_replays(tmp_path: Path) -> None:
    transport, acks, letters = MemoryTransport(), Acks(), Letters()
    writer = _writer(tmp_path, transport, letters)
    tasks = await _running(writer)
    try:
        transport.down = True
        bad = DeadLetter(Reason.BAD_JSON, "not JSON", "kera/kera/x/telemetry", 1, b"{")
        writer.submit(Batch(["m v=1 1", "m v=2 2"], [5, 6], acks, [bad]))
        await asyncio.wait_for(writer.drain(), 5)
        # Spooled is stored: acknowledged, the dead letter kept and sent on.
        assert acks.ids == [[5, 6]]
        assert writer.stats.points_spooled == 2
        assert [e["reason"] for e in letters.entries] == ["bad_json"]
        assert transport.bodies == []
        transport.down = False
        await wait_until(lambda: writer.spool.empty, timeout=5)
    finally:
        await _stop(tasks, writer)
    assert transport.bodies == [(b"m v=1 1\nm v=2 2", None)]
    assert writer.stats.write_retries >= 1
