"""The ingestor's own health as data: one `pipeline` point per interval, written through the same
writer (and spool) as the readings, so dashboards and alert rules can use it with InfluxQL.

Counts are deltas over the interval, not running totals, so `sum()` over any time range is right
across restarts. Every reason code is always present (0 when none), which keeps the field set
stable for queries. docs/data-model.md lists the fields.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from devices.contract import (
    DEVICE_TAG,
    FIELD_TAG,
    INSTANCE_TAG,
    PIPELINE_MEASUREMENT,
    REJECTIONS_MEASUREMENT,
    SITE_TAG,
    UNKNOWN_FIELDS_MEASUREMENT,
)
from ingest.observability.clock import ClockWatch
from ingest.observability.counters import COUNTERS, Stats
from ingest.reading import FieldValue, Reason
from ingest.storage.lineproto import format_line, series_key

# The interval deltas this measurement carries: the counters table's own choice.
_COUNTERS = tuple(c.name for c in COUNTERS if c.in_pipeline)


class PipelineMeasurement:
    def __init__(
        self,
        stats: Stats,
        site: str,
        instance: str,
        spool_bytes: Callable[[], int] | None = None,
        devices: frozenset[str] = frozenset(),
        clock: ClockWatch | None = None,
    ) -> None:
        self._stats = stats
        self._clock = clock
        # What the spool holds now (Spool.pending_bytes): the one thing this needs of storage.
        self._spool_bytes = spool_bytes
        self._site = site
        self._key = series_key(PIPELINE_MEASUREMENT, {SITE_TAG: site, INSTANCE_TAG: instance})
        self._last: dict[str, float] = self._totals()
        self._last_at = time.monotonic()
        # Registered device ids: rejections of anything else are counted as "unknown", so a
        # hostile stream of made-up ids cannot create series.
        self._devices = devices
        self._last_by_device: dict[str, int] = {}
        self._last_unknown: dict[tuple[str, str], int] = {}

    def _totals(self) -> dict[str, float]:
        s = self._stats
        totals: dict[str, float] = {name: s.counter(name) for name in _COUNTERS}
        totals["write_seconds"] = s.write_seconds
        for reason in Reason:
            totals[f"rejected_{reason.value}"] = s.rejected.get(reason.value, 0)
        return totals

    def fields(self) -> dict[str, FieldValue]:
        """The interval's fields, and start the next interval."""
        s = self._stats
        now = time.monotonic()
        totals = self._totals()
        delta = {k: v - self._last[k] for k, v in totals.items()}
        interval = now - self._last_at
        self._last, self._last_at = totals, now

        batches = int(delta["batches_written"])
        fields: dict[str, FieldValue] = {"interval_s": round(interval, 3)}
        for name in _COUNTERS:
            fields[name] = int(delta[name])
        rejected = 0
        for reason in Reason:
            n = int(delta[f"rejected_{reason.value}"])
            fields[f"rejected_{reason.value}"] = n
            rejected += n
        fields["rejected"] = rejected
        fields["write_latency_ms_mean"] = (
            1000.0 * delta["write_seconds"] / batches if batches else 0.0
        )
        fields["write_latency_ms_max"] = 1000.0 * s.write_seconds_max
        fields["batch_points_mean"] = delta["points_written"] / batches if batches else 0.0
        fields["batch_points_max"] = s.batch_points_max
        fields["spool_bytes"] = self._spool_bytes() if self._spool_bytes is not None else 0
        skew = self._clock.skew(time.time_ns() // 1_000_000) if self._clock is not None else None
        # An alert rule follows this (dashboards.provisioning): the host's clock needs setting.
        # 0 or 1, not a boolean: Grafana's alert threshold needs a number.
        fields["clock_suspect"] = int(skew is not None and skew.suspect)
        if skew is not None:
            fields["clock_skew_s"] = round(skew.seconds, 1)
        s.write_seconds_max = 0.0
        s.batch_points_max = 0
        return fields

    def lines(self) -> list[str]:
        """The `pipeline` point, and a `rejections` point per device rejected in the interval."""
        now = time.time_ns() // 1_000_000
        out = [format_line(self._key, self.fields(), now)]
        per_device: dict[str, int] = {}
        for device, n in self._stats.rejected_by_device.items():
            name = device if device in self._devices else "unknown"
            per_device[name] = per_device.get(name, 0) + n
        for device, total in sorted(per_device.items()):
            delta = total - self._last_by_device.get(device, 0)
            if delta > 0:
                tags = {SITE_TAG: self._site, DEVICE_TAG: device}
                key = series_key(REJECTIONS_MEASUREMENT, tags)
                out.append(format_line(key, {"rejected": delta}, now))
        self._last_by_device = per_device
        unknown = self._stats.unknown_fields
        for (device, name), total in sorted(unknown.items()):
            delta = total - self._last_unknown.get((device, name), 0)
            if delta > 0:
                tags = {SITE_TAG: self._site, DEVICE_TAG: device, FIELD_TAG: name}
                out.append(
                    format_line(series_key(UNKNOWN_FIELDS_MEASUREMENT, tags), {"count": delta}, now)
                )
        self._last_unknown = dict(unknown)
        return out
