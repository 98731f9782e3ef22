"""Simulated time: readings in time order, paced against the wall clock, through the fault
injector and the chosen format, to a sink (MQTT links, or memory)."""

from __future__ import annotations

import heapq
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from devices import Registry
from devices.contract import status_topic
from firmware_sim.faults import Faults, FaultState
from firmware_sim.fleet import SimDevice, SimReading, SimWasteBin, Values, build_fleet
from firmware_sim.formats import Encoder, Format
from firmware_sim.pilots import InjectedEffect
from firmware_sim.pilots import apply as apply_pilots


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
    # Faults injected, by name (see firmware_sim.faults), and what the network side did.
    faults: Counter[str] = field(default_factory=Counter)
    status: Counter[str] = field(default_factory=Counter)
    network: dict[str, int] = field(default_factory=dict)
    online: int = 0
    # The bins' emptyings: device, fraction, time_ms, fill_before_pct, volume_l.
    emptyings: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "by_kind": dict(self.by_kind),
            "devices": self.devices,
            "sim_start_ms": self.sim_start_ms,
            "sim_end_ms": self.sim_end_ms,
            "faults": dict(self.faults),
            "status": dict(self.status),
            "network": dict(self.network),
            "emptyings": self.emptyings,
        }


class Sink(Protocol):
    """Where a fleet's messages go: `links.Links` (MQTT, one connection per device) or
    `MemorySink` (in memory, for tests and dry runs)."""

    counts: dict[str, int]

    def connect(self, device_id: str) -> None: ...
    def publish(self, device_id: str, topic: str, payload: bytes) -> bool: ...
    def drop_off(self, device_id: str) -> None: ...
    def service(self, timeout: float) -> None: ...
    def close(self, timeout: float = 30.0) -> None: ...

    @property
    def online(self) -> int: ...


@dataclass(slots=True)
class MemorySink:
    """Keeps (event, device, topic, payload) in a list instead of sending it."""

    events: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    _online: set[str] = field(default_factory=set)

    def connect(self, device_id: str) -> None:
        self._online.add(device_id)
        self.events.append(("online", device_id, "", b""))

    def publish(self, device_id: str, topic: str, payload: bytes) -> bool:
        self.events.append(("publish", device_id, topic, payload))
        return True

    def drop_off(self, device_id: str) -> None:
        self._online.discard(device_id)
        self.events.append(("will", device_id, "", b""))

    def service(self, timeout: float) -> None:
        if timeout > 0:
            time.sleep(timeout)

    def close(self, timeout: float = 30.0) -> None:
        for device_id in sorted(self._online):
            self.events.append(("offline", device_id, "", b""))
        self._online.clear()

    @property
    def online(self) -> int:
        return len(self._online)


class _Recorder:
    def __init__(self, out: IO[str] | None, site: str) -> None:
        self._out = out
        self._site = site

    def message(self, topic: str, payload: bytes, **extra: object) -> None:
        if self._out is not None:
            self._out.write(json.dumps({"topic": topic, "payload": _text(payload), **extra}) + "\n")

    def status(self, device_id: str, payload: bytes, will: bool = False) -> None:
        extra: dict[str, object] = {"retain": True}
        if will:
            extra["will"] = True
        self.message(status_topic(self._site, device_id), payload, **extra)


def _text(payload: bytes) -> str:
    return payload.decode("utf-8", "replace")


def _faulted(
    state: FaultState,
    device_id: str,
    time_ms: int,
    values: Values,
    summary: Summary,
    online: Callable[[str], None],
    gone: Callable[[str], None],
) -> tuple[int, Values, int, bool] | None:
    """What a faulty device sends instead of `values` (time, values, copies, cut in half), or
    None when it sends nothing: dead, offline, or going offline now (its last will)."""
    if state.dead:
        return None
    if state.offline_until:
        if time_ms < state.offline_until:
            summary.faults["missed_offline"] += 1
            return None
        state.offline_until = 0
        online(device_id)
    verdict = state.apply(time_ms, values)
    if state.dead or verdict.outage_ms:
        state.offline_until = time_ms + verdict.outage_ms if verdict.outage_ms else 0
        gone(device_id)
        return None
    if verdict.values is None:
        return None
    return time_ms + state.skew_ms, verdict.values, verdict.copies, verdict.break_json


def _emptyings(fleet: list[SimDevice]) -> list[dict[str, Any]]:
    """The bins' ledger of emptyings, in time order."""
    return sorted(
        (
            {"device": d.device.id, "fraction": d.device.fraction.value, "time_ms": t,
             "fill_before_pct": round(fill, 2),
             "volume_l": round(fill / 100 * (d.device.volume_l or 0.0), 3)}
            for d in fleet if isinstance(d, SimWasteBin)
            for t, fill in d.ledger
        ),
        key=lambda e: (e["time_ms"], e["device"]),
    )  # fmt: skip


def run(
    registry: Registry,
    sink: Sink,
    *,
    seed: int,
    start_ms: int,
    duration_s: float,
    speed: float,
    faults: Faults | None = None,
    fmt: Format = Format.NATIVE,
    record: IO[str] | None = None,
    on_progress: Callable[[Summary], None] | None = None,
    pilots: Sequence[InjectedEffect] = (),
    busy_weeks: float = 0.0,
) -> Summary:
    """Publish the fleet's readings for `duration_s` wall-clock seconds covering
    `duration_s * speed` simulated seconds. With speed <= 0 there is no pacing: `duration_s`
    simulated seconds are published as fast as the broker takes them. Every device connects
    first (its `online`), and disconnects cleanly at the end (its `offline`). `busy_weeks` > 0
    makes some weeks busier than others (fleet.build_fleet)."""
    faults = faults or Faults()
    fleet = build_fleet(registry, seed, busy_weeks)
    apply_pilots(pilots, fleet)
    site = registry.site_id
    sim_span_s = duration_s * speed if speed > 0 else duration_s
    end_ms = start_ms + round(sim_span_s * 1000)
    summary = Summary(devices=len(fleet), sim_start_ms=start_ms, sim_end_ms=end_ms)
    encoders = {d.device.id: Encoder(fmt, site, d.device, seed) for d in fleet}
    states = {
        d.device.id: FaultState(d, faults, summary.faults)
        for d in fleet
        if faults.any and faults.applies_to(d.device.id)
    }
    unknown = faults.only - {d.device.id for d in fleet}
    if unknown:
        raise ValueError(f"--faulty names devices the site does not have: {sorted(unknown)}")
    out = _Publishing(sink, summary, _Recorder(record, site), encoders, states)
    for d in fleet:
        out.online(d.device.id)
    t0 = time.monotonic()
    last_progress = 0.0
    for n, reading in enumerate(schedule(fleet, start_ms, end_ms)):
        if speed > 0:
            due = t0 + (reading.time_ms - start_ms) / 1000 / speed
            while (wait := due - time.monotonic()) > 0:
                sink.service(wait)
        elif n % 100 == 0:
            sink.service(0)
        out.send(reading)
        if on_progress is not None and time.monotonic() - last_progress > 0.25:
            last_progress = time.monotonic()
            summary.online = sink.online
            on_progress(summary)
    if speed > 0:
        while (rest := t0 + duration_s - time.monotonic()) > 0:
            sink.service(rest)
    # Switched off on purpose: a normal disconnect, no `offline` and no last will.
    summary.status["disconnected"] += len(out.connected)
    sink.close()
    summary.network = dict(sink.counts)
    summary.online = 0
    summary.emptyings = _emptyings(fleet)
    if on_progress is not None:
        on_progress(summary)
    return summary


class _Publishing:
    """What `run` sends for each reading: its faults applied, encoded in the format, published
    and recorded; and each device's status as it comes and goes."""

    def __init__(
        self,
        sink: Sink,
        summary: Summary,
        rec: _Recorder,
        encoders: dict[str, Encoder],
        states: dict[str, FaultState],
    ) -> None:
        self._sink = sink
        self._summary = summary
        self._rec = rec
        self._encoders = encoders
        self._states = states
        self.connected: set[str] = set()

    def online(self, device_id: str) -> None:
        self._sink.connect(device_id)
        self.connected.add(device_id)
        self._summary.status["online"] += 1
        self._rec.status(device_id, b"online")

    def gone(self, device_id: str) -> None:
        self._sink.drop_off(device_id)
        self.connected.discard(device_id)
        self._summary.status["will"] += 1
        self._rec.status(device_id, b"offline", will=True)

    def send(self, reading: SimReading) -> None:
        device_id, summary = reading.device_id, self._summary
        time_ms, values, copies, broken = reading.time_ms, reading.values, 1, False
        state = self._states.get(device_id)
        if state is not None:
            faulted = _faulted(state, device_id, time_ms, values, summary, self.online, self.gone)
            if faulted is None:
                return
            time_ms, values, copies, broken = faulted
        topic, body = self._encoders[device_id].encode(time_ms, values)
        payload = Encoder.dumps(body)
        if broken:
            payload = payload[: len(payload) // 2]
        for _ in range(copies):
            if self._sink.publish(device_id, topic, payload):
                summary.published += 1
                summary.by_kind[reading.kind] += 1
                self._rec.message(topic, payload)
