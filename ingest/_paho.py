"""Two per-packet costs of paho-mqtt 2.x that the ingestor avoids, measured on the reference
machine with the live-publish benchmark (docs/performance.md):

- **Properties of every v5 PUBLISH.** paho's `Properties.__init__` rebuilds three lookup tables
  and then calls `clear()`, which tries `hasattr`/`delattr` for all 27 property names on an
  object that cannot have any yet: 5.9 µs of the 11 µs `decode_publish` takes for a reading
  without properties. `lean_properties()` gives paho's packet decoder a subclass that shares one
  copy of the tables and skips the no-op clear; decoding is otherwise paho's own, and the result
  is still a `Properties` (tests/unit/test_paho.py compares both on packets with properties).
- **One send() per PUBACK.** paho queues each acknowledgement as its own packet and writes each
  with its own system call. `queue_pubacks()` queues a batch's PUBACKs, the same bytes paho would
  build (MQTT 5 §3.4.2.1: success and no properties is the 2-byte form), as one write.

Both use paho internals (`paho.mqtt._packet.Properties`, `Client._packet_queue`), checked when
used: with a paho that lacks them, paho's public path is taken and only the saving is lost.
"""

from __future__ import annotations

import struct
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_PUBACK = 0x40
_puback = struct.Struct("!BBH")


def lean_properties() -> bool:
    """Install the lean `Properties` in paho's packet decoder, once. True when it is in use."""
    try:
        from paho.mqtt import _packet
    except ImportError:
        return False
    current = getattr(_packet, "Properties", None)
    if current is None or not isinstance(current, type) or not issubclass(current, Properties):
        return False
    if getattr(current, "kera_lean", False):
        return True
    template = current(PacketTypes.PUBLISH)
    tables = {name: getattr(template, name) for name in ("types", "names", "properties")}

    class LeanProperties(current):  # type: ignore[misc,valid-type]
        kera_lean = True

        def __init__(self, packetType: int) -> None:
            # Properties.__setattr__ only lets these four through object.__setattr__; a fresh
            # object has no property attributes, so paho's clear() has nothing to remove.
            object.__setattr__(self, "packetType", packetType)
            for name, table in tables.items():
                object.__setattr__(self, name, table)

    setattr(_packet, "Properties", LeanProperties)  # noqa: B010 - a module of paho's, not ours
    return True


def queue_pubacks(client: paho.Client, mids: list[int]) -> None:
    """Acknowledge QoS 1 packet ids in one write (paho's `ack` per id otherwise)."""
    queue: Any = getattr(client, "_packet_queue", None)
    if queue is None or len(mids) == 1:
        for mid in mids:
            client.ack(mid, 1)
        return
    pack = _puback.pack
    queue(_PUBACK, b"".join([pack(_PUBACK, 2, mid) for mid in mids]), 0, 1)
