"""One MQTT connection per simulated device, as real firmware has, all driven from one thread.

Each device connects with a last will (`offline`, retained, on its status topic) and announces
`online` (retained) once connected. When the broker goes away, a device reconnects with capped
exponential backoff and jitter. Its QoS 1 readings wait in a bounded buffer meanwhile and are sent
when the broker is back; beyond the bound, readings are dropped and counted, as firmware with a
small flash would.

The simulator's schedule loop calls `service()` instead of sleeping, so paho's sockets are read
and written from the same thread that publishes: no locks, no thread per device, and a thousand
devices cost a thousand sockets in one selector.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from devices.contract import status_topic
from ingest.backoff import Backoff
from ingest.mqtt import MqttTarget

log = logging.getLogger(__name__)

# MQTT v5 reason code 0x04: the broker publishes the will, as if the connection had been lost.
_WITH_WILL = 4


@dataclass(slots=True)
class Link:
    device_id: str
    client: paho.Client
    status_topic: str
    connected: bool = False
    wanted: bool = True  # False once the device is switched off or has gone silent
    inflight: int = 0
    reconnect_at: float = 0.0
    attempt: int = 0
    sock: Any = None
    counts: dict[str, int] = field(default_factory=dict)


class Links:
    """The fleet's connections. `counts` tallies what the network side did: reconnects,
    readings dropped because a device's buffer was full."""

    def __init__(
        self,
        target: MqttTarget,
        site: str,
        client_prefix: str = "kera-sim",
        buffer: int = 1000,
        window: int = 100,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
    ) -> None:
        self._target = target
        self._site = site
        self._prefix = client_prefix
        self._buffer = buffer
        self._window = window
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self._links: dict[str, Link] = {}
        self._selector = selectors.DefaultSelector()
        self._last_misc = 0.0
        self.counts: dict[str, int] = {"reconnects": 0, "buffer_overflow": 0}

    # -- per device -----------------------------------------------------------------------------

    def connect(self, device_id: str) -> None:
        """Switch the device on: connect with its last will; it says `online` once connected."""
        link = self._links.get(device_id)
        if link is None:
            link = self._links[device_id] = self._new_link(device_id)
        link.wanted = True
        if not link.connected and link.sock is None:
            self._try_connect(link)
        # A device is online before it publishes: wait for the CONNACK (and so for its
        # `online`), unless the broker is unreachable and a reconnect is already scheduled.
        deadline = time.monotonic() + 5
        while link.sock is not None and not link.connected and time.monotonic() < deadline:
            self.service(0.01)

    def _new_link(self, device_id: str) -> Link:
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{self._prefix}-{device_id}",
            protocol=paho.MQTTv5,
        )
        if self._target.username is not None:
            c.username_pw_set(self._target.username, self._target.password)
        if self._target.tls:
            c.tls_set(ca_certs=self._target.ca_file)
        topic = status_topic(self._site, device_id)
        c.will_set(topic, b"offline", qos=1, retain=True)
        c.max_queued_messages_set(self._buffer)
        c.max_inflight_messages_set(self._window)
        link = Link(device_id, c, topic)
        c.user_data_set(link)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        return link

    def publish(self, device_id: str, topic: str, payload: bytes) -> bool:
        """Queue a QoS 1 reading; False if it was dropped because the buffer is full. While
        connected, a full window makes this wait (back-pressure), never drop."""
        link = self._links[device_id]
        while link.connected and link.inflight >= self._window:
            self.service(0.05)
        info = link.client.publish(topic, payload, qos=1)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self.counts["buffer_overflow"] += 1
            return False
        link.inflight += 1
        return True

    def drop_off(self, device_id: str) -> None:
        """The device vanishes from the network: the broker publishes its last will."""
        link = self._links[device_id]
        # What it sent before vanishing has been acknowledged, so the counts of what was
        # published and what the broker delivered agree (paho would resend it after coming
        # back otherwise, a duplicate).
        deadline = time.monotonic() + 5
        while link.connected and link.inflight and time.monotonic() < deadline:
            self.service(0.01)
        link.wanted = False
        if link.connected:
            rc = ReasonCode(PacketTypes.DISCONNECT, identifier=_WITH_WILL)
            link.client.disconnect(reasoncode=rc)
            self.service(0)

    def switch_off(self, device_id: str) -> None:
        """Switched off on purpose: once what it sent is acknowledged, a normal DISCONNECT, so
        the broker discards the last will. Only an outage (drop_off) fires the will."""
        link = self._links.get(device_id)
        if link is None or not link.connected:
            return
        link.wanted = False
        if link.inflight == 0:
            link.client.disconnect()
        # else _on_publish disconnects when the last acknowledgement arrives

    @property
    def online(self) -> int:
        return sum(1 for link in self._links.values() if link.connected)

    # -- I/O ------------------------------------------------------------------------------------

    def _try_connect(self, link: Link) -> None:
        try:
            if link.attempt == 0 and link.reconnect_at == 0.0:
                link.client.connect(self._target.host, self._target.port, keepalive=30)
            else:
                link.client.reconnect()
        except OSError as exc:
            self._schedule_reconnect(link, str(exc))
            return
        sock = link.client.socket()
        link.sock = sock
        if isinstance(sock, socket.socket):
            self._selector.register(sock, selectors.EVENT_READ, link)

    def _schedule_reconnect(self, link: Link, why: str) -> None:
        delay = self._backoff.delay(link.attempt)
        link.attempt += 1
        link.reconnect_at = time.monotonic() + delay
        log.debug("%s: reconnect in %.1fs (%s)", link.device_id, delay, why)

    def _on_connect(self, client: paho.Client, link: Link, *args: Any) -> None:
        reason = args[1]
        if reason.is_failure:
            log.warning("%s: broker refused the connection: %s", link.device_id, reason)
            return
        if link.attempt or link.reconnect_at:
            self.counts["reconnects"] += 1
        link.connected = True
        link.attempt = 0
        link.reconnect_at = 0.0
        # Readings buffered while away are already counted in `inflight`; paho sends them now.
        client.publish(link.status_topic, b"online", qos=1, retain=True)
        link.inflight += 1

    def _on_disconnect(self, client: paho.Client, link: Link, *args: Any) -> None:
        link.connected = False
        if link.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(link.sock)
            link.sock = None
        if link.wanted:
            self._schedule_reconnect(link, "connection lost")

    def _on_publish(self, client: paho.Client, link: Link, *args: Any) -> None:
        link.inflight = max(0, link.inflight - 1)
        if not link.wanted and link.inflight == 0 and link.connected:
            client.disconnect()

    def service(self, timeout: float) -> None:
        """Run the network for up to `timeout` seconds (at least one pass)."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            for link in self._links.values():
                if link.sock is not None and link.client.want_write():
                    link.client.loop_write()
                elif link.sock is None and link.wanted and 0 < link.reconnect_at <= now:
                    self._try_connect(link)
            if now - self._last_misc >= 1.0:
                self._last_misc = now
                for link in self._links.values():
                    if link.sock is not None:
                        link.client.loop_misc()
            wait = max(0.0, min(deadline - time.monotonic(), 0.05))
            if self._selector.get_map():
                for key, _ in self._selector.select(wait):
                    key.data.client.loop_read()
            elif wait:
                time.sleep(wait)
            if time.monotonic() >= deadline:
                return

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every connected device's messages are acknowledged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(link.inflight == 0 or not link.connected for link in self._links.values()):
                return True
            self.service(0.05)
        return False

    def close(self, timeout: float = 30.0) -> None:
        """Switch every device off cleanly: what it sent acknowledged, then a normal DISCONNECT
        (no last will, so a finished run raises no offline alert)."""
        for device_id in list(self._links):
            self.switch_off(device_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            link.sock is not None for link in self._links.values()
        ):
            self.service(0.05)
        for link in self._links.values():
            if link.sock is not None:
                link.client.disconnect()
        self._selector.close()
