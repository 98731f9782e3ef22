"""MQTT transport: paho-mqtt driven by the asyncio event loop.

Why paho on asyncio rather than a thread or aiomqtt: on a 2-core box the per-message Python cost
is the bottleneck. paho's parser with our own read loop costs one callback per message and no
cross-thread hand-off; aiomqtt's iterator adds a future and a queue per message (about 8k msg/s
against a bare paho subscriber's 30k, both draining a queued backlog; docs/performance.md
names the method beside each figure). paho also gives manual acknowledgement, which lets us
send PUBACK only after InfluxDB has stored a reading.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest._paho import lean_properties, queue_pubacks
from ingest.backoff import Backoff
from ingest.storage.ports import Connection

log = logging.getLogger(__name__)


class Receiver(Protocol):
    """What the consumer hands every message to, on the event loop's thread, in arrival order
    (ingest.intake.Intake stores them; the evaluator's observer judges them)."""

    def receive(
        self, topic: str, payload: bytes, mid: int, received_ms: int, connection: Connection
    ) -> None:
        """`mid`: the packet id to acknowledge through `connection` once the message is dealt
        with (0 for QoS 0, nothing to acknowledge); `received_ms`: epoch ms at receipt."""


# How long one readiness event may read messages before the event loop gets a turn.
READ_SLICE_S = 0.003


@dataclass(frozen=True, slots=True)
class MqttTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def __str__(self) -> str:
        # Never the password: this string goes to logs.
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> MqttTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(
            f"MQTT URL {url.rsplit('@', maxsplit=1)[-1]!r}: scheme must be mqtt:// or mqtts://"
        )
    tls = parts.scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise ValueError("MQTT URL has no host")
    return MqttTarget(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


class MqttConnectError(Exception):
    pass


class _Connection:
    """One connection of a consumer (`Connection`): acknowledges packet ids only while it is
    the consumer's live one."""

    __slots__ = ("_client", "_consumer")

    def __init__(self, consumer: MqttConsumer, client: paho.Client) -> None:
        self._consumer = consumer
        self._client = client

    def ack(self, ids: list[int]) -> None:
        c = self._consumer
        if ids and c.connection is self and c.connected:
            queue_pubacks(self._client, ids)


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
        read_burst: int = 256,
        on_connected: Callable[[], None] | None = None,
        max_packet_bytes: int | None = None,
    ) -> None:
        self._target = target
        self._client_id = client_id
        self._topics = topics
        self._receive = receiver.receive
        self._session_expiry = session_expiry_s
        self._receive_maximum = receive_maximum
        self._keepalive = keepalive_s
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self._read_burst = read_burst
        self._on_connected = on_connected
        # Announced in CONNECT (MQTT 5 Maximum Packet Size): the broker does not send larger
        # packets, so a 200 MB payload never reaches this process's memory.
        self._max_packet = max_packet_bytes

        self.connected = False
        self.reconnects = 0
        self._received = 0
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._connack: asyncio.Future[None] | None = None
        self._disconnected = asyncio.Event()
        self._misc: asyncio.TimerHandle | None = None
        self._sock: Any = None
        self._client = self._make_client()
        # Replaced at every connect: packet ids are only meaningful on the connection that
        # delivered them (the broker resends unacknowledged ones and may reuse their ids).
        self.connection: Connection = _Connection(self, self._client)

    def _make_client(self) -> paho.Client:
        lean_properties()
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        if self._target.username is not None:
            c.username_pw_set(self._target.username, self._target.password)
        if self._target.tls:
            c.tls_set()  # system CAs, hostname verified
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        return c

    # -- socket plumbing ------------------------------------------------------------------------
    # paho calls these from whichever thread called it: connect() runs in an executor so a slow
    # TCP or TLS handshake never blocks the loop, so they hop to the loop thread when needed.

    def _in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._add_reader, sock)

    def _add_reader(self, sock: Any) -> None:
        assert self._loop is not None
        self._sock = sock
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._loop.add_reader(sock, self._on_readable)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._remove_socket, sock)

    def _remove_socket(self, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        if self._sock is sock:
            self._sock = None

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._add_writer, sock)

    def _add_writer(self, sock: Any) -> None:
        assert self._loop is not None
        if sock.fileno() >= 0:
            self._loop.add_writer(sock, self._client.loop_write)

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._remove_writer, sock)

    def _remove_writer(self, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_writer(sock)

    def _on_readable(self) -> None:
        # paho's loop_read() handles one packet per call; a bounded burst per readiness event
        # saves an event-loop round trip per message while still letting the writer run. The
        # burst is bounded in time too: every loop turn waits for the bursts of both
        # subscriptions (writing and evaluating), and /healthz needs a few turns to answer.
        client = self._client
        deadline = time.perf_counter() + READ_SLICE_S
        for _ in range(self._read_burst):
            before = self._received
            rc = client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._received == before:
                break
            if time.perf_counter() >= deadline:
                self._again_if_pending()
                break
        else:
            self._again_if_pending()

    def _again_if_pending(self) -> None:
        pending = getattr(self._sock, "pending", None)
        if pending is not None and pending() and self._loop is not None:
            # TLS may hold decrypted bytes the selector cannot see.
            self._loop.call_soon(self._on_readable)

    def _misc_tick(self) -> None:
        self._misc = None
        if self._sock is None or self._loop is None:
            return
        self._client.loop_misc()
        self._misc = self._loop.call_later(1.0, self._misc_tick)

    # -- MQTT callbacks -------------------------------------------------------------------------

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        self._received += 1
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = repr(msg._topic)  # noqa: SLF001 - paho keeps the undecodable bytes only here
        self._receive(
            topic,
            bytes(msg.payload),
            msg.mid if msg.qos else 0,
            time.time_ns() // 1_000_000,
            self.connection,
        )

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        fut = self._connack
        if reason.is_failure:
            if fut is not None and not fut.done():
                fut.set_exception(MqttConnectError(f"broker refused the connection: {reason}"))
            return
        self.connection = _Connection(self, client)
        self.connected = True
        # Retained messages only for a subscription the session did not have: a retained
        # message on a reading topic is taken once, not again at every reconnect and restart.
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe([(t, options) for t in self._topics])
        log.info(
            "connected to %s as %r (session %s)",
            self._target,
            self._client_id,
            "resumed" if flags.session_present else "new",
        )
        if fut is not None and not fut.done():
            fut.set_result(None)
        if self._on_connected is not None:
            self._on_connected()

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        for topic, rc in zip(self._topics, reasons, strict=False):
            if rc.is_failure:
                log.error("subscription to %r refused: %s", topic, rc)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self.connected
        self.connected = False
        if was and not self._stopping:
            log.warning("disconnected from %s: %s", self._target, reason)
        self._disconnected.set()

    # -- lifecycle ------------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Publish on the consumer's own connection: QoS 0 fire-and-forget (dead letters) is
        skipped while disconnected; QoS 1 (republished serial readings) waits in paho's queue
        and goes out after the reconnect."""
        if self.connected or qos:
            self._client.publish(topic, payload, qos=qos, retain=retain)

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._session_expiry
        props.ReceiveMaximum = self._receive_maximum
        if self._max_packet is not None:
            props.MaximumPacketSize = self._max_packet
        self._disconnected.clear()
        self._connack = loop.create_future()
        await loop.run_in_executor(
            None,
            lambda: self._client.connect(
                self._target.host,
                self._target.port,
                keepalive=self._keepalive,
                clean_start=False,
                properties=props,
            ),
        )
        self._misc = loop.call_later(1.0, self._misc_tick)
        try:
            await asyncio.wait_for(asyncio.shield(self._connack), timeout=10)
        except TimeoutError:
            self._client.disconnect()
            raise MqttConnectError("no CONNACK within 10 s") from None

    async def run(self) -> None:
        """Connect, stay connected, and reconnect with capped exponential backoff and jitter
        until `stop()`."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        backoff = self._backoff
        while not self._stopping:
            try:
                await self._connect_once()
                backoff.reset()
                await self._disconnected.wait()
            except (OSError, MqttConnectError) as exc:
                log.warning("cannot connect to %s: %s", self._target, exc)
            if self._stopping:
                break
            self.reconnects += 1
            await asyncio.sleep(backoff.next())

    def pause(self) -> None:
        """Stop reading new messages (used at shutdown, before the last flush)."""
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock)

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        if self._misc is not None:
            self._misc.cancel()
        if self._sock is not None:
            self._client.disconnect()
            try:
                await asyncio.wait_for(self._disconnected.wait(), timeout=timeout_s)
            except TimeoutError:
                log.warning("broker did not confirm disconnect")
        self._disconnected.set()
