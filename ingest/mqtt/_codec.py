"""The MQTT packets the ingestor exchanges, MQTT 3.1.1 and 5, without I/O.

Only what a QoS 1 subscriber with a persistent session needs: CONNECT, SUBSCRIBE, PUBLISH (out:
dead letters and republished serial readings), PUBACK, PINGREQ and DISCONNECT are written;
CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP and DISCONNECT are read. The reading side splits a
whole socket read into its PUBLISH packets in one call (`Splitter.split`): per packet a few
slices of one bytes object, no object per packet but the tuple handed on (docs/performance.md:
paho-mqtt's reader, one `recv` and a dozen calls per packet, was most of a subscriber's cost).

References are to the OASIS standards: MQTT 3.1.1 (2014) and MQTT 5.0 (2019), section numbers
as in their text. tests/unit/test_mqtt_codec.py checks the reader against paho-mqtt's encoder
and the writer against paho-mqtt's decoder; tests/integration against Mosquitto.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, NoReturn

V311: Final = 4  # the protocol level byte of CONNECT (§3.1.2.2 in both)
V5: Final = 5

# The largest Remaining Length a varint can say (§2.2.3 / §1.5.5): 268,435,455.
MAX_REMAINING: Final = 0x0FFFFFFF

_CONNECT, _CONNACK, _PUBLISH, _PUBACK = 0x10, 0x20, 0x30, 0x40
_SUBSCRIBE, _SUBACK, _PINGREQ, _PINGRESP, _DISCONNECT = 0x82, 0x90, 0xC0, 0xD0, 0xE0

PINGREQ: Final = bytes((_PINGREQ, 0))
# Normal disconnection in both versions (MQTT 5 §3.14.2.1: no reason code means 0x00).
DISCONNECT: Final = bytes((_DISCONNECT, 0))

_u16 = struct.Struct("!H")
_puback = struct.Struct("!BBH")


class ProtocolError(Exception):
    """The broker sent something this client cannot take; the connection is closed."""


# -- writing --------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(b: bytes) -> bytes:
    if len(b) > 0xFFFF:
        raise ValueError("MQTT strings are at most 65,535 bytes")
    return _u16.pack(len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + _varint(len(body)) + body


def _properties(props: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(bytes((pid,)) + value for pid, value in props)
    return _varint(len(body)) + body


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """What CONNECT says: who we are and what the broker keeps for us."""

    client_id: str
    version: int = V5
    keepalive_s: int = 30
    # False: resume the session (MQTT 5 Clean Start, MQTT 3.1.1 Clean Session).
    clean_start: bool = False
    username: str | None = None
    password: str | None = None
    # MQTT 5 only; MQTT 3.1.1 sessions last as long as the broker's configuration says.
    session_expiry_s: int = 0
    receive_maximum: int = 65535
    max_packet_bytes: int | None = None


def connect(o: ConnectOptions) -> bytes:
    """CONNECT (§3.1). No will, no topic aliases (their maximum stays 0, so every PUBLISH the
    broker sends names its topic)."""
    flags = 0x02 if o.clean_start else 0
    payload = _string(o.client_id.encode())
    if o.username is not None:
        flags |= 0x80
        payload += _string(o.username.encode())
    if o.password is not None:
        flags |= 0x40
        payload += _string(o.password.encode())
    head = _string(b"MQTT") + bytes((o.version, flags)) + _u16.pack(o.keepalive_s)
    if o.version == V5:
        props = [(0x11, struct.pack("!I", o.session_expiry_s))] if o.session_expiry_s else []
        if o.receive_maximum != 65535:
            props.append((0x21, _u16.pack(o.receive_maximum)))
        if o.max_packet_bytes is not None:
            props.append((0x27, struct.pack("!I", o.max_packet_bytes)))
        head += _properties(props)
    return _packet(_CONNECT, head + payload)


def subscribe(version: int, packet_id: int, filters: list[str], qos: int = 1) -> bytes:
    """SUBSCRIBE (§3.8). MQTT 5: retained messages only for a subscription the session did not
    have (Retain Handling 1), so a retained reading is taken once, not at every reconnect."""
    options = qos | (0x10 if version == V5 else 0)
    body = _u16.pack(packet_id) + (_properties([]) if version == V5 else b"")
    body += b"".join(_string(f.encode()) + bytes((options,)) for f in filters)
    return _packet(_SUBSCRIBE, body)


def publish(
    version: int,
    topic: str,
    payload: bytes,
    qos: int = 0,
    packet_id: int = 0,
    *,
    retain: bool = False,
    dup: bool = False,
) -> bytes:
    """PUBLISH (§3.3), QoS 0 or 1, no properties."""
    first = _PUBLISH | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    body = _string(topic.encode()) + (_u16.pack(packet_id) if qos else b"")
    body += (b"\x00" if version == V5 else b"") + payload
    return _packet(first, body)


def pubacks(ids: list[int]) -> bytes:
    """One PUBACK per packet id, in the order given, as one write. The 2-byte form is valid in
    both versions (MQTT 5 §3.4.2.1: success and no properties may omit both)."""
    pack = _puback.pack
    return b"".join([pack(_PUBACK, 2, i) for i in ids])


# -- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    # MQTT 5 reason code; MQTT 3.1.1 return codes 1-5 are given as their MQTT 5 equivalents.
    reason: int
    # MQTT 5: what the broker limits (absent: no limit beyond the protocol's).
    receive_maximum: int = 65535
    max_packet_bytes: int | None = None
    server_keepalive_s: int | None = None
    reason_string: str | None = None


@dataclass(frozen=True, slots=True)
class SubAck:
    packet_id: int
    reasons: tuple[int, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class PubAck:
    packet_id: int
    reason: int = 0


@dataclass(frozen=True, slots=True)
class PingResp:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason: int = 0
    reason_string: str | None = None


Control = ConnAck | SubAck | PubAck | PingResp | Disconnect

# MQTT 3.1.1 CONNACK return codes (§3.2.2.3) as MQTT 5 reason codes (§3.2.2.2).
_V311_CONNACK = {0: 0, 1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87}

REASONS: Final = {
    0x00: "success",
    0x04: "disconnect with will message",
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x8F: "topic filter invalid",
    0x91: "packet identifier in use",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x9D: "server moved",
    0x9E: "shared subscriptions not supported",
    0x9F: "connection rate exceeded",
    0xA2: "wildcard subscriptions not supported",
}


def reason_text(code: int) -> str:
    return f"{REASONS.get(code, 'reason')} (0x{code:02X})"


def _read_varint(buf: bytes, p: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if p >= end:
            raise ProtocolError("variable byte integer runs past its packet")
        b = buf[p]
        p += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, p
        shift += 7
        if shift > 21:
            raise ProtocolError("variable byte integer longer than 4 bytes")


def _read_props(buf: bytes, p: int, end: int) -> tuple[dict[int, int | str], int]:
    """MQTT 5 properties (§2.2.2), of the packets read here; the values wanted are kept."""
    length, p = _read_varint(buf, p, end)
    stop = p + length
    if stop > end:
        raise ProtocolError("properties run past their packet")
    out: dict[int, int | str] = {}
    while p < stop:
        pid = buf[p]
        p += 1
        if pid in (0x24, 0x25, 0x28, 0x29, 0x2A, 0x01, 0x17, 0x19):  # byte
            out[pid] = buf[p]
            p += 1
        elif pid in (0x13, 0x21, 0x22, 0x23):  # two-byte integer
            out[pid] = _u16.unpack_from(buf, p)[0]
            p += 2
        elif pid in (0x02, 0x11, 0x18, 0x27):  # four-byte integer
            out[pid] = struct.unpack_from("!I", buf, p)[0]
            p += 4
        elif pid == 0x0B:  # subscription identifier
            out[pid], p = _read_varint(buf, p, stop)
        elif pid in (0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F, 0x09, 0x16):  # string or binary
            n = _u16.unpack_from(buf, p)[0]
            out[pid] = bytes(buf[p + 2 : p + 2 + n]).decode(errors="replace")
            p += 2 + n
        elif pid == 0x26:  # user property: a string pair
            n = _u16.unpack_from(buf, p)[0]
            p += 2 + n
            n = _u16.unpack_from(buf, p)[0]
            p += 2 + n
        else:
            raise ProtocolError(f"unknown property 0x{pid:02X}")
    if p != stop:
        raise ProtocolError("properties overrun their length")
    return out, p


def _control(version: int, first: int, buf: bytes, p: int, end: int) -> Control:
    kind = first & 0xF0
    v5 = version == V5
    try:
        if kind == _PUBACK:
            reason = buf[p + 2] if v5 and end - p > 2 else 0
            return PubAck(_u16.unpack_from(buf, p)[0], reason)
        if kind == _CONNACK:
            present, code = bool(buf[p] & 1), buf[p + 1]
            if not v5:
                return ConnAck(present, _V311_CONNACK.get(code, 0x80))
            props = _read_props(buf, p + 2, end)[0] if end - p > 2 else {}
            rs = props.get(0x1F)
            return ConnAck(
                present,
                code,
                receive_maximum=int(props.get(0x21, 65535)),
                max_packet_bytes=int(props[0x27]) if 0x27 in props else None,
                server_keepalive_s=int(props[0x13]) if 0x13 in props else None,
                reason_string=str(rs) if rs is not None else None,
            )
        if kind == _SUBACK:
            pid = _u16.unpack_from(buf, p)[0]
            q = _read_props(buf, p + 2, end)[1] if v5 else p + 2
            return SubAck(pid, tuple(buf[q:end]))
        if kind == _PINGRESP:
            return PingResp()
        if kind == _DISCONNECT and v5:
            if end == p:
                return Disconnect()
            props = _read_props(buf, p + 1, end)[0] if end - p > 1 else {}
            rs = props.get(0x1F)
            return Disconnect(buf[p], str(rs) if rs is not None else None)
    except (IndexError, struct.error) as exc:
        raise ProtocolError(f"truncated packet 0x{first:02X}") from exc
    raise ProtocolError(f"unexpected packet type 0x{first:02X} from the broker")


def _undecodable(raw: bytes) -> str:
    # Brokers check topics are UTF-8 (§1.5.4); should one not, the message is still judged
    # (and refused with its topic shown), never lost.
    return repr(raw)


# One PUBLISH as handed on: topic, payload, packet id (0 for QoS 0).
Publish = tuple[str, bytes, int]


class Splitter:
    """Splits the bytes the broker sends into packets: PUBLISHes collected in a list, any
    other packet returned to the caller, which handles it before the packets after it.

    The buffer is a `bytes` object (a read's own, when no partial packet was left over), so
    every topic and payload is one slice of it, no copy of a copy."""

    __slots__ = ("_buf", "_off", "_skip", "max_packet_bytes", "version")

    # How many packets between two looks at the clock (a clock read per packet costs more).
    CHECK_EVERY: Final = 64

    def __init__(self, version: int, max_packet_bytes: int | None = None) -> None:
        self.version = version
        self.max_packet_bytes = max_packet_bytes or MAX_REMAINING
        self._buf = b""
        self._off = 0
        self._skip = 0

    @property
    def pending(self) -> int:
        """Bytes read but not yet split into packets."""
        return len(self._buf) - self._off

    def feed(self, data: bytes) -> None:
        if self._skip:  # the rest of an oversized PUBLISH
            drop = min(self._skip, len(data))
            self._skip -= drop
            data = data[drop:]
        if self._off >= len(self._buf):
            self._buf, self._off = data, 0
        else:
            self._buf = self._buf[self._off :] + data
            self._off = 0

    def split(
        self, out: list[Publish], deadline: float, clock: Callable[[], float] = time.perf_counter
    ) -> Control | None:
        """Append the buffered PUBLISHes to `out` until a packet that is not one (returned,
        consumed), the end of the complete packets, or `deadline` (by `clock`) has passed
        (None: `pending` tells whether bytes remain)."""
        buf, p, n = self._buf, self._off, len(self._buf)
        v5 = self.version == V5
        append = out.append
        count = 0
        try:
            while n - p >= 2:
                first, rl = buf[p], buf[p + 1]
                body = p + 2
                if rl >= 0x80:
                    if n - p < 5:
                        break  # a packet this long cannot be complete yet
                    rl, body = _read_varint(buf, p + 1, min(n, p + 5))
                    if rl > self.max_packet_bytes:
                        q = self._oversized(first, buf, body, body + rl, out)
                        if q is None:
                            break
                        p = q
                        continue
                end = body + rl
                if end > n:
                    break
                if first & 0xF0 != _PUBLISH:
                    self._off = end
                    return _control(self.version, first, buf, body, end)
                append(_publish(first, buf, body, end, v5))
                p = end
                count += 1
                if count % self.CHECK_EVERY == 0 and clock() >= deadline:
                    break
        except ProtocolError:
            self._off = n  # the rest of the buffer is garbage: the connection ends
            raise
        self._off = p
        return None

    def _oversized(
        self, first: int, buf: bytes, body: int, end: int, out: list[Publish]
    ) -> int | None:
        """A PUBLISH over the maximum: its first `max_packet_bytes` are handed on (the pipeline
        refuses the payload as too large, and its packet id is acknowledged, so the broker does
        not send it again and again), the rest is dropped as it arrives, never buffered. MQTT 5
        brokers do not send one (the maximum is in CONNECT); MQTT 3.1.1 has no way to say it.
        Returns where the next packet starts in `buf`, or None to wait for the part kept."""
        if first & 0xF0 != _PUBLISH:
            raise ProtocolError(
                f"packet of {end - body:,} bytes, over the maximum of {self.max_packet_bytes:,}"
            )
        cut, n = body + self.max_packet_bytes, len(buf)
        if cut > n:
            return None
        out.append(_publish(first, buf, body, cut, self.version == V5))
        if end <= n:
            return end
        self._skip = end - n
        return n


def _publish(first: int, buf: bytes, p: int, end: int, v5: bool) -> Publish:
    """One PUBLISH's topic, payload and packet id (§3.3); its MQTT 5 properties are skipped
    (no topic aliases were allowed, nothing else in them changes what a reading is)."""
    try:
        t = p + 2 + ((buf[p] << 8) | buf[p + 1])
        if t == p + 2 or t > end:
            _fail("PUBLISH without a valid topic")
        raw = buf[p + 2 : t]
        try:
            topic = raw.decode()
        except UnicodeDecodeError:
            topic = _undecodable(raw)
        qos = first & 0x06
        mid = 0
        if qos:
            if qos != 0x02:
                _fail("PUBLISH with QoS 2 on a QoS 1 subscription")
            mid = (buf[t] << 8) | buf[t + 1]
            t += 2
        if v5:
            pl = buf[t]
            t = t + 1 + pl if pl < 0x80 else _skip_props(buf, t, end)
    except IndexError:
        _fail("truncated PUBLISH")
    if t > end:
        _fail("PUBLISH shorter than its header")
    return topic, buf[t:end], mid


def _fail(reason: str) -> NoReturn:
    raise ProtocolError(reason)


def _skip_props(buf: bytes, t: int, end: int) -> int:
    length, t = _read_varint(buf, t, end)
    return t + length
