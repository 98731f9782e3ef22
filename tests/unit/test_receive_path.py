"""The receive path's parts on their own, through their typed seams (ingest.storage.ports):
the writer with an in-memory transport, and the MQTT consumer against a scripted broker that
speaks just enough MQTT 5 over loopback to deliver and count acknowledgements. The same parts
run against real Mosquitto and InfluxDB in tests/integration (test_writer, test_reliability).
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from ingest.mqtt import MqttConsumer, MqttTarget
from ingest.observability.counters import Stats
from ingest.reading import DeadLetter, Reason
from ingest.storage.batch import Batch
from ingest.storage.deadletter import DeadLetters
from ingest.storage.ports import Connection
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


# -- the consumer against a scripted broker -------------------------------------------------------


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


async def _packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    kind = (await reader.readexactly(1))[0]
    n, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        n += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return kind, await reader.readexactly(n)


def _publish(topic: str, payload: bytes, mid: int) -> bytes:
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + struct.pack("!H", mid) + b"\x00" + payload
    return bytes([0x32]) + _length(len(body)) + body


class ScriptedBroker:
    """Accepts a client, answers CONNECT and SUBSCRIBE, sends what `deliver` is given as QoS 1
    PUBLISHes and records the PUBACKs' packet ids, per connection."""

    def __init__(self) -> None:
        self.pubacks: list[list[int]] = []
        self.sessions: list[asyncio.StreamWriter] = []
        self.subscribed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        acks: list[int] = []
        self.pubacks.append(acks)
        self.sessions.append(writer)
        try:
            while True:
                kind, body = await _packet(reader)
                if kind == 0x10:  # CONNECT: accepted, no session present
                    writer.write(b"\x20\x03\x00\x00\x00")
                elif kind == 0x82:  # SUBSCRIBE: QoS 1 granted for each filter
                    mid = body[:2]
                    props, at = body[2], 3
                    at += props
                    n = 0
                    while at < len(body):
                        (size,) = struct.unpack_from("!H", body, at)
                        at += 2 + size + 1
                        n += 1
                    reply = mid + b"\x00" + b"\x01" * n
                    writer.write(b"\x90" + _length(len(reply)) + reply)
                    self.subscribed.set()
                elif kind == 0x40:  # PUBACK
                    acks.append(struct.unpack_from("!H", body)[0])
                elif kind == 0xC0:  # PINGREQ
                    writer.write(b"\xd0\x00")
                elif kind == 0xE0:  # DISCONNECT
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def deliver(self, topic: str, payload: bytes, mid: int) -> None:
        w = self.sessions[-1]
        w.write(_publish(topic, payload, mid))
        await w.drain()

    async def close(self) -> None:
        for w in self.sessions:
            w.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class Received:
    """A `Receiver` that keeps each message and the connection it came on."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, int, Connection]] = []

    def receive(
        self, topic: str, payload: bytes, mid: int, received_ms: int, connection: Connection
    ) -> None:
        assert received_ms > 0
        self.messages.append((topic, payload, mid, connection))


async def test_the_consumer_acknowledges_only_when_told_and_only_on_its_live_connection() -> None:
    broker = ScriptedBroker()
    port = await broker.start()
    received = Received()
    consumer = MqttConsumer(
        MqttTarget("127.0.0.1", port), "unit", ["kera/kera/+/telemetry"], received,
        backoff_initial_s=0.01, backoff_max_s=0.05,
    )  # fmt: skip
    task = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(broker.subscribed.wait(), 5)
        for mid in (1, 2, 3):
            await broker.deliver("kera/kera/em-1/telemetry", b'{"power_w": %d}' % mid, mid)
        await wait_until(lambda: len(received.messages) == 3, timeout=5)
        assert [(t, m) for t, _, m, _ in received.messages] == [
            ("kera/kera/em-1/telemetry", 1),
            ("kera/kera/em-1/telemetry", 2),
            ("kera/kera/em-1/telemetry", 3),
        ]
        first = received.messages[0][3]
        assert all(c is first for *_, c in received.messages)
        await asyncio.sleep(0.1)
        assert broker.pubacks == [[]]  # nothing acknowledged by itself
        first.ack([1, 2])
        await wait_until(lambda: broker.pubacks[0] == [1, 2], timeout=5)

        # The broker drops the connection; the consumer reconnects. Ids of the old connection
        # are never acknowledged on the new one (the broker resends those and may reuse ids).
        broker.subscribed.clear()
        broker.sessions[-1].close()
        await asyncio.wait_for(broker.subscribed.wait(), 5)
        first.ack([3])
        await broker.deliver("kera/kera/em-1/telemetry", b'{"power_w": 3}', 3)
        await wait_until(lambda: len(received.messages) == 4, timeout=5)
        second = received.messages[3][3]
        assert second is not first
        assert second is consumer.connection
        await asyncio.sleep(0.1)
        assert broker.pubacks[1] == []
        second.ack([3])
        await wait_until(lambda: broker.pubacks[1] == [3], timeout=5)
        assert broker.pubacks[0] == [1, 2]
        assert consumer.reconnects == 1
    finally:
        await consumer.stop(timeout_s=1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await broker.close()
