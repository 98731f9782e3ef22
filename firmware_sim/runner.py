"""Simulated time and publishing: readings in time order, paced against the wall clock."""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from devices import Registry
from devices.contract import status_topic
from firmware_sim.fleet import SimDevice, SimReading, build_fleet
from ingest.mqtt import parse_mqtt_url


def schedule(fleet: list[SimDevice], start_ms: int, end_ms: int) -> Iterator[SimReading]:
    """Every device's readings between start and end, in time order; each device first reports
    at a random offset within its interval, as a real fleet switched on at different times."""
    heap: list[tuple[int, int]] = []
    for i, dev in enumerate(fleet):
        first = start_ms + round(dev.rng.uniform(0, dev.interval_s * 1000))
        heap.append((first, i))
    heapq.heapify(heap)
    while heap:
        due, i = heap[0]
        if due >= end_ms:
            return
        dev = fleet[i]
        yield dev.read(due)
        heapq.heapreplace(heap, (dev.next_due(due), i))


@dataclass(slots=True)
class Summary:
    published: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    devices: int = 0
    sim_start_ms: int = 0
    sim_end_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "by_kind": dict(self.by_kind),
            "devices": self.devices,
            "sim_start_ms": self.sim_start_ms,
            "sim_end_ms": self.sim_end_ms,
        }


class Publisher:
    """One MQTT connection publishing for the whole fleet, QoS 1, with a bounded in-flight
    window."""

    def __init__(self, mqtt_url: str, client_id: str = "kera-sim") -> None:
        target = parse_mqtt_url(mqtt_url)
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311
        )
        if target.username is not None:
            self._client.username_pw_set(target.username, target.password)
        if target.tls:
            self._client.tls_set()
        self._client.max_inflight_messages_set(1000)
        self._pending = 0
        self._lock = threading.Condition()
        self._client.on_publish = self._on_publish
        self._client.connect(target.host, target.port, keepalive=30)
        self._client.loop_start()

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, rc: Any, props: Any
    ) -> None:
        with self._lock:
            self._pending -= 1
            self._lock.notify_all()

    def publish(self, topic: str, payload: bytes, retain: bool = False, qos: int = 1) -> None:
        with self._lock:
            # Bounded: a device buffers only so much while the broker is slow.
            self._lock.wait_for(lambda: self._pending < 10_000)
            self._pending += 1
        self._client.publish(topic, payload, qos=qos, retain=retain)

    def flush(self, timeout: float = 60.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._pending <= 0, timeout)

    def close(self) -> None:
        self.flush()
        self._client.disconnect()
        self._client.loop_stop()


def run(
    registry: Registry,
    publish: Callable[[str, bytes, bool], None],
    *,
    seed: int,
    start_ms: int,
    duration_s: float,
    speed: float,
    record: IO[str] | None = None,
    on_progress: Callable[[Summary], None] | None = None,
    announce_status: bool = True,
) -> Summary:
    """Publish the fleet's readings for `duration_s` wall-clock seconds covering
    `duration_s * speed` simulated seconds. With speed <= 0 there is no pacing: `duration_s`
    simulated seconds are published as fast as the broker takes them."""
    fleet = build_fleet(registry, seed)
    sim_span_s = duration_s * speed if speed > 0 else duration_s
    end_ms = start_ms + round(sim_span_s * 1000)
    summary = Summary(devices=len(fleet), sim_start_ms=start_ms, sim_end_ms=end_ms)
    site = registry.site_id

    def emit(topic: str, payload: bytes, retain: bool) -> None:
        publish(topic, payload, retain)
        if record is not None:
            record.write(json.dumps({"topic": topic, "payload": payload.decode()}) + "\n")

    if announce_status:
        for d in fleet:
            emit(status_topic(site, d.device.id), b"online", True)
    t0 = time.monotonic()
    last_progress = 0.0
    for reading in schedule(fleet, start_ms, end_ms):
        if speed > 0:
            wait = t0 + (reading.time_ms - start_ms) / 1000 / speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        emit(reading.topic, reading.payload(), False)
        summary.published += 1
        summary.by_kind[reading.kind] += 1
        if on_progress is not None and time.monotonic() - last_progress > 0.25:
            last_progress = time.monotonic()
            on_progress(summary)
    if speed > 0:
        rest = t0 + duration_s - time.monotonic()
        if rest > 0:
            time.sleep(rest)
    if announce_status:
        for d in fleet:
            emit(status_topic(site, d.device.id), b"offline", True)
    if on_progress is not None:
        on_progress(summary)
    return summary
