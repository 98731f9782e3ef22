"""Hourly energy from cumulative meter counters (the first part of issue 10's rollups).

A meter reports `energy_kwh`, a cumulative counter, at irregular times. The energy of an hour is
the counter's increase inside it, so each interval between two consecutive readings is split
over the hours it spans in proportion to time (linear interpolation). The rules:

- a counter that goes down was reset (meter swap, firmware): the interval's energy is the new
  reading itself, counted from zero, never a negative delta;
- a gap (readings further apart than `max_gap_s`) is still spread evenly over its hours, and
  the hours it covers are reported as interpolated, so data completeness can say so;
- a late or replayed reading is inserted in time order and the hours it touches are computed
  again; a duplicate (same time) replaces the earlier value, as InfluxDB does.

`hourly_kwh` is pure: the service can recompute any window from stored readings, so late data
gives the same result as data that came in order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from devices import Registry
from devices.contract import DEVICE_TAG, SITE_TAG, SPACE_TAG
from ingest.lineproto import format_line, series_key
from ingest.reading import FieldValue, Reading

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class HourEnergy:
    hour_ms: int  # start of the hour, epoch ms (UTC)
    kwh: float
    interpolated: bool  # part of the hour lay in a gap between readings
    resets: int  # counter resets whose energy falls in this hour


def hourly_kwh(
    readings: Iterable[tuple[int, float]], max_gap_s: float = 3600.0
) -> list[HourEnergy]:
    """(time ms, cumulative kWh) readings, in any order, to energy per clock hour."""
    by_time: dict[int, float] = {}
    for t, kwh in readings:
        by_time[t] = kwh  # a later duplicate wins, as a point overwrite does
    points = sorted(by_time.items())
    kwh_by_hour: dict[int, float] = {}
    gap_hours: set[int] = set()
    resets: dict[int, int] = {}
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        delta = v1 - v0
        if delta < 0:  # the counter was reset: it counted up from zero to v1
            delta = v1
            hour = t1 - t1 % HOUR_MS
            resets[hour] = resets.get(hour, 0) + 1
        gap = (t1 - t0) / 1000 > max_gap_s
        start = t0
        while start < t1:
            hour = start - start % HOUR_MS
            end = min(t1, hour + HOUR_MS)
            share = (end - start) / (t1 - t0)
            kwh_by_hour[hour] = kwh_by_hour.get(hour, 0.0) + delta * share
            if gap:
                gap_hours.add(hour)
            start = end
    return [
        HourEnergy(h, kwh_by_hour[h], h in gap_hours, resets.get(h, 0)) for h in sorted(kwh_by_hour)
    ]


def emissions_kg(kwh: float, factor_kg_per_kwh: float) -> float:
    """kgCO2e for `kwh` of grid electricity at a given emission factor."""
    return kwh * factor_kg_per_kwh


ENERGY_HOURLY = "energy_hourly"


class EnergyRollups:
    """Keeps each meter's recent readings and writes `energy_hourly` points for the hours they
    touch: energy from the counter (`hourly_kwh`), mean and peak power, and kgCO2e when a grid
    factor is set. An hour is written again whenever a reading for it arrives, late ones
    included, so the stored point always reflects everything received within `window_h`."""

    def __init__(
        self,
        registry: Registry,
        write_lines: Callable[[list[str]], None],
        factor_kg_per_kwh: float | None = None,
        window_h: float = 48.0,
    ) -> None:
        self._registry = registry
        self._write = write_lines
        self._factor = factor_kg_per_kwh
        self._window_ms = round(window_h * HOUR_MS)
        self._readings: dict[str, dict[int, tuple[float, float | None]]] = {}
        self._dirty_from: dict[str, int] = {}
        self.too_late = 0

    def observe(self, reading: Reading) -> None:
        if reading.measurement != "energy":
            return
        kwh = reading.fields.get("energy_kwh")
        if not isinstance(kwh, float):
            return
        power = reading.fields.get("power_w")
        device = reading.device.id
        series = self._readings.setdefault(device, {})
        if series and reading.time_ms < max(series) - self._window_ms:
            self.too_late += 1  # older than the window: a full recompute from storage is needed
            return
        series[reading.time_ms] = (kwh, power if isinstance(power, float) else None)
        # The interval ending at this reading starts in the previous reading's hour.
        earlier = [t for t in series if t < reading.time_ms]
        start = max(earlier) if earlier else reading.time_ms
        hour = start - start % HOUR_MS
        self._dirty_from[device] = min(self._dirty_from.get(device, hour), hour)

    def flush(self) -> int:
        """Write the hours touched since the last flush; returns how many points."""
        lines: list[str] = []
        for device_id, since in self._dirty_from.items():
            series = self._readings[device_id]
            device = self._registry.get(device_id)
            if device is None:
                continue
            points = sorted(series.items())
            hours = {h.hour_ms: h for h in hourly_kwh((t, v[0]) for t, v in points)}
            tags = {SITE_TAG: self._registry.site_id, SPACE_TAG: device.space,
                    DEVICE_TAG: device.id, **device.extra_tags()}  # fmt: skip
            key = series_key(ENERGY_HOURLY, tags)
            for hour_ms, energy in hours.items():
                if hour_ms < since:
                    continue
                powers = [
                    p for t, (_, p) in points if hour_ms <= t < hour_ms + HOUR_MS and p is not None
                ]
                fields: dict[str, FieldValue] = {
                    "kwh": round(energy.kwh, 6),
                    "interpolated": energy.interpolated,
                    "resets": energy.resets,
                    "readings": len(powers),
                }
                if powers:
                    fields["power_mean_w"] = round(sum(powers) / len(powers), 3)
                    fields["power_peak_w"] = max(powers)
                if self._factor is not None:
                    fields["kgco2e"] = round(emissions_kg(energy.kwh, self._factor), 6)
                lines.append(format_line(key, fields, hour_ms))
            # Keep the window, plus the reading before it as the next interval's start.
            newest = points[-1][0]
            old = [t for t, _ in points if t < newest - self._window_ms]
            for t in old[:-1]:
                del series[t]
        self._dirty_from.clear()
        if lines:
            self._write(lines)
        return len(lines)
