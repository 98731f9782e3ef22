"""The lean v5 properties the ingestor gives paho's packet decoder decode exactly what paho's own
do, on PUBLISH packets with and without properties (ingest/_paho.py)."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt import _packet as _packet_module
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as _Properties

from ingest._paho import lean_properties

# paho's properties and packet modules are untyped.
Properties: Any = _Properties
_packet: Any = _packet_module

_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
# Properties a broker may forward with a PUBLISH (MQTT 5 §3.3.2.3).
_publish_properties = st.fixed_dictionaries(
    {},
    optional={
        "PayloadFormatIndicator": st.integers(0, 1),
        "MessageExpiryInterval": st.integers(0, 2**32 - 1),
        "ContentType": _text,
        "ResponseTopic": _text.filter(bool),
        "CorrelationData": st.binary(max_size=16),
        "SubscriptionIdentifier": st.integers(1, 2**28 - 1),
        "TopicAlias": st.integers(1, 2**16 - 1),
        "UserProperty": st.lists(st.tuples(_text, _text), min_size=1, max_size=3),
    },
)


def _packet_bytes(props: Any, payload: bytes) -> bytes:
    topic = b"kera/kera/em-1/telemetry"
    packed: bytes = props.pack()
    return struct.pack("!H", len(topic)) + topic + struct.pack("!H", 7) + packed + payload


@given(values=_publish_properties, payload=st.binary(max_size=64))
def test_lean_properties_decode_what_paho_decodes(
    values: dict[str, object], payload: bytes
) -> None:
    assert lean_properties()
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    packet = _packet_bytes(props, payload)
    lean = _packet.decode_publish(0x32, packet, MQTTProtocolVersion.MQTTv5)
    assert lean.properties is not None
    assert isinstance(lean.properties, Properties)
    assert type(lean.properties) is not Properties  # the lean one decoded it
    reference = Properties(PacketTypes.PUBLISH)
    reference.unpack(packet[len(packet) - len(payload) - len(props.pack()) :])
    assert lean.properties.json() == reference.json()
    assert lean.payload == payload
    assert lean.mid == 7


def test_lean_properties_install_once() -> None:
    assert lean_properties()
    installed = _packet.Properties
    assert lean_properties()
    assert _packet.Properties is installed
