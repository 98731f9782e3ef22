"""Hourly energy from cumulative meter counters.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
    return hourly_kwh_sorted(sorted(by_time.items()), max_gap_s)


def hourly_kwh_sorted(points: Sequence[tuple[int, float]], max_gap_s: float) -> list[HourEnergy]:
    """`hourly_kwh` of readings already in time order, one per time (the engine's window)."""
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
