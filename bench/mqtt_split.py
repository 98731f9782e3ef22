"""What reading one PUBLISH costs, in-process, by three ways of splitting the same bytes: the
ingestor's `Splitter` (ingest/mqtt/_codec.py), paho-mqtt's reader (a `recv` per header part
and one per packet body, as the bare subscriber reads), and, when installed, the `mqtt5`
package (a Rust codec for MQTT 5 only: `pip install mqtt5` to include it). The figures behind
docs/performance.md's choice of receive path.

    .venv/bin/python bench/mqtt_split.py [--packets 50000]

50,000 QoS 1 readings of 1,000 meters, as bench/live.py publishes them; CPU time (process
time), best of 5 rounds.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.table import Table

from ingest.mqtt import V5, V311, Publish
from ingest.mqtt._codec import Splitter, publish

console = Console(stderr=True)
BODY = (
    b'{"ts":1764000000000,"power_w":1234.5,"energy_kwh":12.345,"voltage_v":230.1,"current_a":4.35}'
)


def wire(version: int, n: int) -> bytes:
    return b"".join(
        publish(version, f"kera/bench/em-{i % 1000:05d}/telemetry", BODY, 1, i % 65535 + 1)
        for i in range(n)
    )


def ours(data: bytes, version: int, n: int) -> int:
    s, out = Splitter(version), list[Publish]()
    for i in range(0, len(data), 262_144):  # asyncio's largest read
        s.feed(data[i : i + 262_144])
        while s.split(out, float("inf")) is not None:
            pass
    return len(out)


class _Socket:
    """What paho reads from: the bytes, as a socket would give them (`recv(n)`)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 0

    def recv(self, n: int) -> bytes:
        chunk = self._data[self._at : self._at + n]
        self._at += len(chunk)
        return bytes(chunk)

    def close(self) -> None:
        pass


def paho_reader(data: bytes, version: int, n: int) -> int:
    protocol = paho.MQTTv5 if version == V5 else paho.MQTTv311
    c = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol, manual_ack=True)
    count = [0]

    def on_message(client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        count[0] += 1

    c.on_message = on_message
    setattr(c, "_sock", _Socket(data))  # noqa: B010 - paho's reader, without a network
    while count[0] < n:
        c.loop_read()
    return count[0]


def rust(data: bytes, version: int, n: int) -> int:
    mqtt5 = importlib.import_module("mqtt5")  # optional, not a dependency
    view, at, count = memoryview(data), 0, 0
    while at < len(data):
        packet, size = mqtt5.read(view[at:])
        _ = (packet.topic, packet.payload, packet.packet_id)
        at += size
        count += 1
    return count


def best(fn: Callable[[bytes, int, int], int], data: bytes, version: int, n: int) -> float:
    times = []
    for _ in range(5):
        t0 = time.process_time()
        assert fn(data, version, n) == n
        times.append(time.process_time() - t0)
    return min(times) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=50_000)
    n = ap.parse_args().packets
    contestants: list[tuple[str, Callable[[bytes, int, int], int], int]] = [
        ("ingest Splitter, MQTT 3.1.1", ours, V311),
        ("ingest Splitter, MQTT 5", ours, V5),
        ("paho-mqtt reader, MQTT 3.1.1", paho_reader, V311),
        ("paho-mqtt reader, MQTT 5", paho_reader, V5),
    ]
    try:
        importlib.import_module("mqtt5")
        contestants.append(("mqtt5 (Rust), MQTT 5", rust, V5))
    except ImportError:
        console.print("mqtt5 not installed: left out")
    table = Table(title=f"reading {n:,} PUBLISH packets (QoS 1, 1,000 meters' topics)")
    table.add_column("reader")
    table.add_column("µs CPU per packet", justify="right")
    for name, fn, version in contestants:
        table.add_row(name, f"{best(fn, wire(version, n), version, n):.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
