"""The ingestor's MQTT client: a persistent-session QoS 1 subscriber on asyncio.

Why a client of our own rather than paho-mqtt or aiomqtt: on a 2-core box the per-message
Python cost is the bottleneck, and paho's reader (one `recv` and a dozen calls per packet) cost
more than everything the ingestor did with a reading (docs/performance.md, issue 29). Here a
socket read of hundreds of packets is split in one call and PUBACKs go out as one write per
stored batch. Only what this subscriber needs is implemented (ingest/mqtt/_codec.py); paho
stays the client of the simulator and the tools, and the tests' publisher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ingest.backoff import Backoff
from ingest.mqtt import _codec as codec
from ingest.mqtt._link import Link
from ingest.mqtt._target import MqttTarget
from ingest.storage.ports import Connection

log = logging.getLogger("ingest.mqtt")


class Receiver(Protocol):
    """What the consumer hands the messages of a read to, on the event loop's thread, in
    arrival order (ingest.intake.Intake stores them; the evaluator's observer judges them)."""

    def receive(
        self, messages: list[codec.Publish], received_ms: int, connection: Connection
    ) -> None:
        """`messages`: (topic, payload, packet id) each; the id is acknowledged through
        `connection` once the message is dealt with (0 for QoS 0: nothing to acknowledge).
        `received_ms`: epoch ms at receipt, one for the whole read."""


class MqttConnectError(Exception):
    pass


class _Connection:
    """One connection of a consumer (`Connection`): acknowledges packet ids only while it is
    the consumer's live one."""

    __slots__ = ("_consumer", "_link")

    def __init__(self, consumer: MqttConsumer, link: Link | None) -> None:
        self._consumer = consumer
        self._link = link

    def ack(self, ids: list[int]) -> None:
        link = self._link
        if ids and link is not None and self._consumer.connection is self and link.open:
            link.write(codec.pubacks(ids))


class _Outbox:
    """QoS 1 messages we publish (republished serial readings): kept until the broker's PUBACK,
    sent again after a reconnect, at most the broker's Receive Maximum in flight."""

    def __init__(self, version: int) -> None:
        self._version = version
        self._queued: deque[tuple[str, bytes, bool]] = deque()
        self._flight: dict[int, tuple[str, bytes, bool]] = {}
        self._next_id = 0
        self.limit = 65535

    def add(self, topic: str, payload: bytes, retain: bool) -> None:
        self._queued.append((topic, payload, retain))

    def _new_id(self) -> int:
        # 2-65535: id 1 is the consumer's SUBSCRIBE (ids are shared by both, MQTT 5 §2.2.1).
        while True:
            self._next_id = self._next_id % 65534 + 2
            if self._next_id not in self._flight:
                return self._next_id

    def resend(self) -> list[bytes]:
        """After a (re)connect: what was in flight, marked duplicate, then what waits."""
        v = self._version
        out = [
            codec.publish(v, t, p, 1, mid, retain=r, dup=True)
            for mid, (t, p, r) in self._flight.items()
        ]
        return out + self.pump()

    def pump(self) -> list[bytes]:
        out = []
        while self._queued and len(self._flight) < self.limit:
            t, p, r = message = self._queued.popleft()
            mid = self._new_id()
            self._flight[mid] = message
            out.append(codec.publish(self._version, t, p, 1, mid, retain=r))
        return out

    def acked(self, mid: int) -> None:
        self._flight.pop(mid, None)


class MqttConsumer:
    """A persistent-session QoS 1 subscriber that reconnects by itself.

    The session (fixed client id, clean start off, session expiry) makes the broker keep readings
    published while we are away; acknowledging manually means a reading the broker sent but we
    never stored is sent again after a crash.
    """

    def __init__(
        self,
        target: MqttTarget,
        client_id: str,
        topics: list[str],
        receiver: Receiver,
        *,
        session_expiry_s: int = 3600,
        receive_maximum: int = 65535,
        keepalive_s: int = 30,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        on_connected: Callable[[], None] | None = None,
        max_packet_bytes: int | None = None,
        protocol_version: int = codec.V5,
        backlog: Callable[[], int] | None = None,
        max_backlog: int = 10_000,
    ) -> None:
        """`backlog`: how many readings are read and not yet stored; above `max_backlog` the
        consumer stops reading until it is down to half (the broker keeps the rest, within
        the session's receive maximum), so memory does not follow a burst."""
        if protocol_version not in (codec.V311, codec.V5):
            raise ValueError("MQTT protocol version must be 4 (3.1.1) or 5")
        self._target = target
        self._topics = topics
        self._receive = receiver.receive
        self._options = codec.ConnectOptions(
            client_id,
            protocol_version,
            keepalive_s,
            clean_start=False,
            username=target.username,
            password=target.password,
            session_expiry_s=session_expiry_s,
            receive_maximum=receive_maximum,
            # Announced in CONNECT (MQTT 5 Maximum Packet Size): the broker does not send
            # larger packets, so a 200 MB payload never reaches this process's memory.
            max_packet_bytes=max_packet_bytes,
        )
        self._version = protocol_version
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self._on_connected = on_connected
        self._outbox = _Outbox(protocol_version)
        self._backlog = backlog
        self._max_backlog = max_backlog
        self._release: asyncio.TimerHandle | None = None

        self.connected = False
        self.reconnects = 0
        self._stopping = False
        self._link: Link | None = None
        self._connack: asyncio.Future[None] | None = None
        self._disconnected = asyncio.Event()
        self._tick: asyncio.TimerHandle | None = None
        self._keepalive = keepalive_s
        self._last_out = 0.0
        self._max_out = codec.MAX_REMAINING
        # Replaced at every connect: packet ids are only meaningful on the connection that
        # delivered them (the broker resends unacknowledged ones and may reuse their ids).
        self.connection: Connection = _Connection(self, None)

    # -- what the link reports ------------------------------------------------------------------

    def on_publishes(self, link: Link, publishes: list[codec.Publish]) -> None:
        if link is not self._link:
            return
        self._receive(publishes, time.time_ns() // 1_000_000, self.connection)
        if self._backlog is not None and self._backlog() > self._max_backlog:
            link.hold()
            if self._release is None:
                self._release = asyncio.get_running_loop().call_later(0.005, self._try_release)

    def _try_release(self) -> None:
        self._release = None
        link = self._link
        if link is None or not link.held or self._backlog is None:
            return
        if self._backlog() <= self._max_backlog // 2:
            link.release()
        else:
            self._release = asyncio.get_running_loop().call_later(0.005, self._try_release)

    def on_control(self, link: Link, packet: codec.Control) -> None:
        if type(packet) is codec.PubAck:
            self._outbox.acked(packet.packet_id)
            self._send(self._outbox.pump())
        elif type(packet) is codec.ConnAck:
            self._connected(link, packet)
        elif type(packet) is codec.SubAck:
            for topic, rc in zip(self._topics, packet.reasons, strict=False):
                if rc >= 0x80:
                    log.error("subscription to %r refused: %s", topic, codec.reason_text(rc))
        elif type(packet) is codec.Disconnect:
            why = codec.reason_text(packet.reason)
            if packet.reason_string:
                why += f": {packet.reason_string}"
            log.warning("%s disconnects us: %s", self._target, why)
            link.close()

    def on_lost(self, link: Link, reason: str | None) -> None:
        if link is not self._link:
            return
        self._link = None
        was = self.connected
        self.connected = False
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        fut = self._connack
        if fut is not None and not fut.done():
            fut.set_exception(
                MqttConnectError(f"connection closed before CONNACK ({reason or 'by the broker'})")
            )
        elif was and not self._stopping:
            log.warning("disconnected from %s: %s", self._target, reason or "closed by the broker")
        self._disconnected.set()

    def _connected(self, link: Link, ack: codec.ConnAck) -> None:
        fut = self._connack
        if ack.reason >= 0x80:
            why = codec.reason_text(ack.reason)
            if ack.reason_string:
                why += f": {ack.reason_string}"
            if fut is not None and not fut.done():
                fut.set_exception(MqttConnectError(f"broker refused the connection: {why}"))
            link.close()
            return
        self.connection = _Connection(self, link)
        self.connected = True
        if ack.server_keepalive_s is not None:
            self._keepalive = ack.server_keepalive_s
        self._outbox.limit = ack.receive_maximum
        self._max_out = ack.max_packet_bytes or codec.MAX_REMAINING
        self._send([codec.subscribe(self._version, 1, self._topics)])
        self._send(self._outbox.resend())
        log.info(
            "connected to %s as %r (MQTT %s, session %s)",
            self._target,
            self._options.client_id,
            "5" if self._version == codec.V5 else "3.1.1",
            "resumed" if ack.session_present else "new",
        )
        if fut is not None and not fut.done():
            fut.set_result(None)
        if self._on_connected is not None:
            self._on_connected()

    # -- sending --------------------------------------------------------------------------------

    def _send(self, packets: list[bytes]) -> None:
        link = self._link
        if packets and link is not None:
            link.write(b"".join(packets))
            self._last_out = time.monotonic()

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Publish on the consumer's own connection: QoS 0 fire-and-forget (dead letters) is
        skipped while disconnected; QoS 1 (republished serial readings) waits in the outbox
        and goes out after the reconnect."""
        packet = codec.publish(self._version, topic, payload, 0, 0, retain=retain)
        if len(packet) > self._max_out:
            size = len(packet)
            log.error("not published to %r: %d bytes, over the broker's maximum", topic, size)
            return
        if qos:
            self._outbox.add(topic, payload, retain)
            if self.connected:
                self._send(self._outbox.pump())
        elif self.connected:
            self._send([packet])

    def _keep_alive(self) -> None:
        """Every second: a PINGREQ when nothing was sent for most of the keep-alive, and the
        link closed when the broker said nothing for one and a half of it (a dead peer)."""
        self._tick = None
        link = self._link
        if link is None or not link.open:
            return
        now = time.monotonic()
        ka = self._keepalive
        if ka:
            # While reading is held, the broker's answers wait unread: not a silent broker.
            if now - link.last_in > 1.5 * ka and not link.held:
                log.warning("%s silent for %.0f s: reconnecting", self._target, now - link.last_in)
                link.abort()
                return
            if now - self._last_out >= 0.75 * ka:
                self._send([codec.PINGREQ])
        self._tick = asyncio.get_running_loop().call_later(1.0, self._keep_alive)

    # -- lifecycle ------------------------------------------------------------------------------

    def _new_link(self, splitter: codec.Splitter) -> Link:
        # Set here, not after the connect returns, so a link lost at once is reported.
        link = self._link = Link(self, splitter)
        return link

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        t = self._target
        self._disconnected.clear()
        self._connack = loop.create_future()
        splitter = codec.Splitter(self._version, self._options.max_packet_bytes)
        _, link = await asyncio.wait_for(
            loop.create_connection(
                lambda: self._new_link(splitter),
                t.host,
                t.port,
                ssl=t.ssl_context(),
                server_hostname=t.host if t.tls else None,
            ),
            timeout=10,
        )
        self._send([codec.connect(self._options)])
        self._tick = loop.call_later(1.0, self._keep_alive)
        try:
            await asyncio.wait_for(asyncio.shield(self._connack), timeout=10)
        except TimeoutError:
            self._connack.cancel()  # nobody waits for it any more
            link.abort()
            raise MqttConnectError("no CONNACK within 10 s") from None
        except MqttConnectError:
            link.abort()
            raise

    async def run(self) -> None:
        """Connect, stay connected, and reconnect with capped exponential backoff and jitter
        until `stop()`."""
        backoff = self._backoff
        while not self._stopping:
            try:
                await self._connect_once()
                backoff.reset()
                await self._disconnected.wait()
            except (OSError, TimeoutError, MqttConnectError) as exc:
                log.warning("cannot connect to %s: %s", self._target, exc or type(exc).__name__)
            if self._stopping:
                break
            self.reconnects += 1
            await asyncio.sleep(backoff.next())

    def pause(self) -> None:
        """Stop reading new messages (used at shutdown, before the last flush)."""
        if self._link is not None:
            self._link.pause()

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        link = self._link
        if link is not None and link.open:
            self._send([codec.DISCONNECT])
            link.close()
            try:
                await asyncio.wait_for(self._disconnected.wait(), timeout=timeout_s)
            except TimeoutError:
                log.warning("broker did not confirm disconnect")
                link.abort()
        if self._tick is not None:
            self._tick.cancel()
        self._disconnected.set()
