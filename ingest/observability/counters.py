"""Counters the ingestor keeps about itself. Plain integers on the hot path; exported by the
progress display and the final summary and /metrics."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ingest.reading import Reason, Rejected

log = logging.getLogger("ingest.rejected")

_PLAIN = re.compile(r"^[\w.\-]{1,64}$", re.ASCII)
_UNPLAIN = re.compile(r"[^\w.\-]", re.ASCII)


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """One of the ingestor's counters: how /metrics names and explains it, and whether the
    `pipeline` measurement carries its per-interval delta."""

    name: str
    help: str
    in_pipeline: bool = True


# The one table of counters: /metrics (`kera_ingest_<name>_total`), the stats log line and the
# `pipeline` measurement all follow it, so a counter cannot be kept and exported nowhere.
# Rejections per reason, serial events and the gauges have shapes of their own
# (ingest.observability.health).
COUNTERS: tuple[CounterSpec, ...] = (
    CounterSpec("messages", "MQTT messages received"),
    CounterSpec("accepted", "Readings that passed decoding and validation"),
    CounterSpec("no_reading", "Messages that carried no reading (MAC-only, device information)"),
    CounterSpec("fields_ignored", "Vendor fields ignored by the unknown-field policy"),
    CounterSpec("points_written", "Points InfluxDB accepted"),
    CounterSpec("points_spooled", "Points written to the disk spool"),
    CounterSpec(
        "points_dead_lettered", "Points InfluxDB refused as bad, kept in the dead-letter file"
    ),
    CounterSpec("dropped_qos0", "QoS 0 readings dropped because the spool was full"),
    CounterSpec("batches_written", "Batches InfluxDB accepted"),
    CounterSpec("write_retries", "Failed InfluxDB writes that were retried", False),
    CounterSpec("write_seconds", "Time spent in successful writes", False),
    CounterSpec("spool_full_events", "Times the spool filled up", False),
    CounterSpec(
        "spool_disk_full_events", "Times the spool's disk refused a batch (no space, I/O)", False
    ),
    CounterSpec(
        "dead_letter_errors", "Rejected messages whose dead-letter copy could not be written"
    ),
)


@dataclass(slots=True)
class Stats:
    messages: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    # Rejections by registered device; unregistered ids all count as "unknown" (RejectionLog).
    rejected_by_device: Counter[str] = field(default_factory=Counter)
    points_written: int = 0
    # Refused by InfluxDB as bad and kept in the dead-letter file.
    points_dead_lettered: int = 0
    # Gone to the disk spool because InfluxDB could not take them at the time.
    points_spooled: int = 0
    # How often the spool filled up (each one is also logged as an error).
    spool_full_events: int = 0
    # How often the spool's disk refused a batch (each episode is also logged as an error).
    spool_disk_full_events: int = 0
    # QoS 0 readings that arrived while the spool was full; the broker would not have kept them.
    dropped_qos0: int = 0
    batches_written: int = 0
    write_retries: int = 0
    write_seconds: float = 0.0
    # Largest write time and batch since the last `pipeline` point (reset when it is written).
    write_seconds_max: float = 0.0
    batch_points_max: int = 0
    # Rejected messages whose dead-letter copy could not be written (disk full, ...).
    dead_letter_errors: int = 0
    reconnects: int = 0
    # Messages that carried no reading (a LoRaWAN MAC-only or device-information frame).
    no_reading: int = 0
    # Payload fields the unknown-field policy ignored: (device, field) -> count. Bounded: past
    # MAX_UNKNOWN_KEYS pairs, a device's further field names count under "(other)".
    unknown_fields: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Serial links: link name -> event or error -> count (ingest.serial).
    serial: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    MAX_UNKNOWN_KEYS = 10_000

    def ignore(self, device_id: str | None, names: tuple[str, ...]) -> None:
        counts = self.unknown_fields
        device = device_id or "unknown"
        for name in names:
            key = (device, name)
            if key in counts:  # the usual case: a field this device sent before, already clean
                counts[key] += 1
                continue
            # A vendor's name becomes a tag value: kept to word characters, so no payload can
            # put a control character or a quote into line protocol.
            if not _PLAIN.match(name):
                key = (device, _UNPLAIN.sub("_", name)[:64] or "_")
            if key not in counts and len(counts) >= self.MAX_UNKNOWN_KEYS:
                key = (device, "(other)")
            counts[key] += 1

    @property
    def fields_ignored(self) -> int:
        return sum(self.unknown_fields.values())

    def counter(self, name: str) -> float:
        value: float = getattr(self, name)
        return value

    def serial_error(self, link: str, reason: str) -> None:
        self.serial[link][reason] += 1

    def snapshot(self) -> dict[str, object]:
        out: dict[str, object] = {c.name: self.counter(c.name) for c in COUNTERS}
        out["rejected"] = dict(self.rejected)
        out["reconnects"] = self.reconnects
        if self.serial:
            out["serial"] = {k: dict(v) for k, v in self.serial.items()}
        return out


class RejectionLog:
    """Logs each rejection reason with its detail, but at most once per reason per `every_s`,
    with how many similar ones were not logged: a firmware bug sending thousands of broken
    messages a second must not turn the log into the bottleneck."""

    __slots__ = ("_every", "_known", "_last", "_quiet", "_stats", "_suppressed")

    def __init__(
        self,
        stats: Stats,
        every_s: float = 10.0,
        quiet: bool = False,
        known: frozenset[str] | None = None,
    ) -> None:
        self._quiet = quiet
        # Registered device ids: rejections of any other id count under "unknown", so 50,000
        # made-up ids of 2,000 characters cost one counter, not 325 MB (None: every id counts).
        self._known = known
        self._stats = stats
        self._every = every_s
        self._last: dict[Reason, float] = {}
        self._suppressed: Counter[Reason] = Counter()

    def record(self, exc: Rejected, topic: str) -> None:
        self._stats.rejected[exc.reason.value] += 1
        if exc.device_id is not None:
            known = self._known
            device = exc.device_id if known is None or exc.device_id in known else "unknown"
            self._stats.rejected_by_device[device] += 1
        if self._quiet:
            return
        now = time.monotonic()
        last = self._last.get(exc.reason)
        if last is not None and now - last < self._every:
            self._suppressed[exc.reason] += 1
            return
        self._last[exc.reason] = now
        more = self._suppressed.pop(exc.reason, 0)
        suffix = f" (+{more} more {exc.reason.value} since last logged)" if more else ""
        log.warning("rejected %s on %r: %s%s", exc.reason.value, topic[:200], exc.detail, suffix)
