"""The ingestor's MQTT codec against paho-mqtt's, a widely used implementation of both versions:
packets paho writes (properties, QoS, unicode topics, any payload) are read back exactly
whatever way a socket cuts them, and the packets we write are paho's bytes. Its broker-facing
behaviour is tested against Mosquitto (tests/integration/test_consumer.py)."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.mqtt import _codec as codec


def _paho(version: int) -> tuple[paho.Client, list[bytes]]:
    """A paho client whose outgoing packets are captured instead of sent."""
    c = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id="codec-test",
        protocol=paho.MQTTv5 if version == codec.V5 else paho.MQTTv311,
    )
    sent: list[bytes] = []

    def queue(command: int, packet: bytes, mid: int, qos: int, info: Any = None) -> int:
        sent.append(bytes(packet))
        return 0

    # paho's encoders queue their packets here; captured instead of sent. paho writes only
    # when it has a socket, and closes it when collected.
    setattr(c, "_packet_queue", queue)  # noqa: B010 - paho's private hook, typed otherwise
    setattr(c, "_sock", SimpleNamespace(close=lambda: None))  # noqa: B010
    return c, sent


def _props(draw: st.DrawFn) -> Properties | None:
    if not draw(st.booleans()):
        return None
    p = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if draw(st.booleans()):
        p.ContentType = draw(st.text(max_size=40))
    if draw(st.booleans()):
        p.MessageExpiryInterval = draw(st.integers(0, 2**32 - 1))
    if draw(st.booleans()):
        p.PayloadFormatIndicator = 1
    for _ in range(draw(st.integers(0, 30))):  # enough to need a 2-byte properties length
        p.UserProperty = (draw(st.text(max_size=8)), draw(st.text(max_size=8)))
    return p


topics = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00+#"),
    min_size=1,
    max_size=300,
)


@st.composite
def publishes(draw: st.DrawFn, version: int) -> tuple[bytes, list[tuple[str, bytes, int]]]:
    c, sent = _paho(version)
    expected = []
    for _ in range(draw(st.integers(1, 20))):
        topic = draw(topics)
        payload = draw(st.binary(max_size=draw(st.sampled_from([0, 10, 200, 20_000]))))
        qos = draw(st.integers(0, 1))
        mid = draw(st.integers(1, 65535)) if qos else 0
        props = _props(draw) if version == codec.V5 else None
        c._send_publish(  # noqa: SLF001 - paho's encoder, without a socket
            mid, topic.encode(), payload, qos, draw(st.booleans()), draw(st.booleans()),
            properties=props,
        )  # fmt: skip
        expected.append((topic, payload, mid))
    return b"".join(sent), expected


def _split_all(s: codec.Splitter, data: bytes, cuts: list[int]) -> list[codec.Publish]:
    out: list[codec.Publish] = []
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for a, b in itertools.pairwise(bounds):
        s.feed(data[a:b])
        assert s.split(out, float("inf")) is None
    assert s.pending == 0
    return out


@pytest.mark.parametrize("version", [codec.V311, codec.V5])
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), cuts=st.lists(st.integers(0, 10**6), max_size=12))
def test_paho_publishes_split_exactly_wherever_the_socket_cuts(
    version: int, data: st.DataObject, cuts: list[int]
) -> None:
    wire, expected = data.draw(publishes(version))
    assert _split_all(codec.Splitter(version), wire, cuts) == expected
    if len(wire) <= 3000:  # one byte at a time too: every partial header and length
        assert _split_all(codec.Splitter(version), wire, list(range(len(wire)))) == expected


def test_a_slice_stops_at_its_deadline_and_the_rest_follows() -> None:
    c, sent = _paho(codec.V5)
    for i in range(1000):
        c._send_publish(i + 1, b"kera/s/em-1/telemetry", b"x" * 50, 1)  # noqa: SLF001
    s = codec.Splitter(codec.V5)
    s.feed(b"".join(sent))
    ticks = iter(range(10**6))
    out: list[codec.Publish] = []
    # A clock that passes the deadline at its second look: one CHECK_EVERY's worth per call.
    assert s.split(out, 0.5, clock=lambda: float(next(ticks))) is None
    assert len(out) == 2 * codec.Splitter.CHECK_EVERY
    assert s.pending > 0
    while s.pending:
        s.split(out, float("inf"))
    assert [m for _, _, m in out] == list(range(1, 1001))


def test_control_packets_come_back_in_their_place() -> None:
    c, sent = _paho(codec.V5)
    c._send_publish(7, b"a/b", b"1", 1)  # noqa: SLF001
    connack = bytes([0x20, 3, 1, 0, 0])
    ack = bytes([0x40, 2, 0, 9])
    s = codec.Splitter(codec.V5)
    s.feed(connack + sent[0] + ack + bytes([0xD0, 0]))
    out: list[codec.Publish] = []
    assert s.split(out, float("inf")) == codec.ConnAck(True, 0)
    assert out == []
    assert s.split(out, float("inf")) == codec.PubAck(9)
    assert out == [("a/b", b"1", 7)]
    assert s.split(out, float("inf")) == codec.PingResp()
    assert s.split(out, float("inf")) is None


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (bytes([0x34, 5, 0, 1, 0x61, 0, 1]), "QoS 2"),
        (bytes([0x30, 2, 0, 0]), "without a valid topic"),
        (bytes([0x30, 3, 0, 9, 0x61]), "without a valid topic"),
        (bytes([0x32, 4, 0, 1, 0x61, 0]), "truncated"),
        (bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), "longer than 4 bytes"),
        (bytes([0x90, 0xFF, 0xFF, 0xFF, 0x7F]), "over the maximum"),
        (bytes([0xF0, 0]), "unexpected packet type"),
    ],
)
def test_malformed_packets_are_refused_with_a_reason(wire: bytes, reason: str) -> None:
    s = codec.Splitter(codec.V5, max_packet_bytes=1_000_000)
    s.feed(wire)
    with pytest.raises(codec.ProtocolError, match=reason):
        s.split([], float("inf"))


@given(st.binary(max_size=300))
def test_any_bytes_are_packets_or_a_protocol_error(wire: bytes) -> None:
    for version in (codec.V311, codec.V5):
        s = codec.Splitter(version, max_packet_bytes=10_000)
        s.feed(wire)
        out: list[codec.Publish] = []
        try:
            while s.split(out, float("inf")) is not None:
                pass
        except codec.ProtocolError:
            continue
        assert all(isinstance(t, str) and isinstance(p, bytes) for t, p, _ in out)


def test_undecodable_topic_is_shown_not_lost() -> None:
    s = codec.Splitter(codec.V311)
    s.feed(bytes([0x30, 5, 0, 2, 0xFF, 0xFE, 0x31]))
    out: list[codec.Publish] = []
    s.split(out, float("inf"))
    assert out == [(repr(b"\xff\xfe"), b"1", 0)]


@pytest.mark.parametrize("version", [codec.V311, codec.V5])
def test_what_we_write_is_what_paho_writes(version: int) -> None:
    c, sent = _paho(version)
    c._send_publish(12, b"kera/kera/em-1/dead", b"{}", 1, True, True)  # noqa: SLF001
    assert (
        codec.publish(version, "kera/kera/em-1/dead", b"{}", 1, 12, retain=True, dup=True)
        == (sent[-1])
    )
    c._send_publish(0, "ä/ö".encode(), b"x" * 300, 0)  # noqa: SLF001 - a 2-byte length
    assert codec.publish(version, "ä/ö", b"x" * 300) == sent[-1]
    filters = ["kera/kera/+/telemetry", "$share/g/kera/kera/+/telemetry"]
    options: SubscribeOptions | int = (
        SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        if version == codec.V5
        else 1
    )
    c._send_subscribe(False, [(f.encode(), options) for f in filters])  # noqa: SLF001
    sub = bytearray(sent[-1])
    sub[2:4] = b"\x00\x01"  # paho numbers its own packet ids
    assert codec.subscribe(version, 1, filters) == bytes(sub)
    assert codec.pubacks([1, 300, 65535]) == bytes(
        [0x40, 2, 0, 1, 0x40, 2, 1, 44, 0x40, 2, 255, 255]
    )


def test_connect_as_paho_writes_it() -> None:
    c, sent = _paho(codec.V311)
    c._client_id = b"kera-ingest-1"  # noqa: SLF001
    c._clean_session = False  # noqa: SLF001
    c.username_pw_set("kera-ingest", "pä55")
    c._send_connect(30)  # noqa: SLF001
    ours = codec.connect(
        codec.ConnectOptions(
            "kera-ingest-1", codec.V311, 30, username="kera-ingest", password="pä55"
        )
    )
    assert ours == sent[-1]

    c, sent = _paho(codec.V5)
    c._client_id = b"kera-ingest-1"  # noqa: SLF001
    c._clean_start = False  # noqa: SLF001
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 100
    props.MaximumPacketSize = 2_162_688
    c._connect_properties = props  # noqa: SLF001
    c._send_connect(30)  # noqa: SLF001
    ours = codec.connect(
        codec.ConnectOptions(
            "kera-ingest-1", codec.V5, 30, session_expiry_s=3600, receive_maximum=100,
            max_packet_bytes=2_162_688,
        )
    )  # fmt: skip
    assert ours == sent[-1]


def test_connack_and_disconnect_reasons_of_both_versions() -> None:
    s = codec.Splitter(codec.V311)
    s.feed(bytes([0x20, 2, 0, 5]))
    assert s.split([], float("inf")) == codec.ConnAck(False, 0x87)  # not authorized
    s = codec.Splitter(codec.V5)
    # Mosquitto's CONNACK properties: receive maximum 20, a reason string.
    props = bytes([0x21, 0, 20, 0x1F, 0, 2]) + b"no"
    s.feed(bytes([0x20, 3 + len(props), 0, 0x86, len(props)]) + props)
    ack = s.split([], float("inf"))
    assert ack == codec.ConnAck(False, 0x86, receive_maximum=20, reason_string="no")
    assert codec.reason_text(0x86) == "bad user name or password (0x86)"
    s.feed(bytes([0xE0, 2, 0x8E, 0]))
    assert s.split([], float("inf")) == codec.Disconnect(0x8E)


@pytest.mark.parametrize("version", [codec.V311, codec.V5])
def test_an_oversized_publish_is_cut_and_the_rest_dropped_unbuffered(version: int) -> None:
    big = codec.publish(version, "kera/kera/em-1/telemetry", b"x" * 50_000, 1, 7)
    small = codec.publish(version, "kera/kera/em-1/telemetry", b"{}", 1, 8)
    s = codec.Splitter(version, max_packet_bytes=1_000)
    out: list[codec.Publish] = []
    wire = big + small
    for i in range(0, len(wire), 700):
        s.feed(wire[i : i + 700])
        s.split(out, float("inf"))
        assert s.pending < 2_000  # never the whole packet
    assert [(t, len(p), m) for t, p, m in out][1:] == [("kera/kera/em-1/telemetry", 2, 8)]
    topic, payload, mid = out[0]
    assert (topic, mid) == ("kera/kera/em-1/telemetry", 7)
    assert 900 < len(payload) < 1_000
    assert set(payload) == {ord("x")}
