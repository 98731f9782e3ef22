"""Space use per hour from occupancy readings: how long a space was measured, occupied, open
and occupied while open; people-seconds and the peak; time with good air while occupied.

A reading's values hold from its time until the next reading of the same sensor, but never
longer than `hold_ms`: a silent sensor leaves its time unmeasured rather than repeating its
last count forever. A space with several sensors adds their people up and takes the highest
CO2 of them (the worst air in the space).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from devices.site import Impact

from ._energy import HOUR_MS

CO2_GOOD_PPM = 1000.0

# (time ms, people, CO2 ppm or None), sorted by time: one sensor's readings.
OccupancySeries = Sequence[tuple[int, int, float | None]]


@dataclass(frozen=True, slots=True)
class SpaceHour:
    hour_ms: int
    open_s: float  # of this hour inside opening hours
    measured_s: float  # covered by a held reading
    occupied_s: float  # measured with people > 0
    occupied_open_s: float  # occupied and inside opening hours
    people_s: float  # people x seconds, for means
    measured_open_s: float  # measured and inside opening hours
    people_open_s: float  # people x seconds inside opening hours
    people_peak: int
    co2_occupied_s: float  # occupied with a CO2 value
    co2_good_s: float  # of those, CO2 under CO2_GOOD_PPM

    def pack(self) -> tuple[float, ...]:
        """As a row of `Hours` (the hour is the row's place)."""
        return (
            self.open_s, self.measured_s, self.occupied_s, self.occupied_open_s, self.people_s,
            self.measured_open_s, self.people_open_s, float(self.people_peak),
            self.co2_occupied_s, self.co2_good_s,
        )  # fmt: skip

    @staticmethod
    def unpack(hour: int, row: Sequence[float]) -> SpaceHour:
        o, m, occ, occ_open, ps, m_open, p_open, peak, co2_occ, good = row
        return SpaceHour(hour, o, m, occ, occ_open, ps, m_open, p_open, int(peak), co2_occ, good)


def open_intervals(impact: Impact, tz: ZoneInfo, hour_ms: int) -> list[tuple[int, int]]:
    """The parts of the clock hour at `hour_ms` that fall inside opening hours, as ms ranges."""
    end_ms = hour_ms + HOUR_MS
    local = datetime.fromtimestamp(hour_ms / 1000, UTC).astimezone(tz)
    out: list[tuple[int, int]] = []
    # An hour touches at most two local days (the one it starts in, and the next at midnight).
    for day in (local.date(), local.date() + timedelta(days=1)):
        window = impact.open_minutes(day.weekday())
        if window is None:
            continue
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        a = round((midnight + timedelta(minutes=window[0])).timestamp() * 1000)
        b = round((midnight + timedelta(minutes=window[1])).timestamp() * 1000)
        lo, hi = max(a, hour_ms), min(b, end_ms)
        if lo < hi:
            out.append((lo, hi))
    return out


def _overlap(a: int, b: int, intervals: list[tuple[int, int]]) -> int:
    return sum(max(0, min(b, hi) - max(a, lo)) for lo, hi in intervals)


def space_hour(
    sensors: Sequence[OccupancySeries], hour_ms: int, hold_ms: int, opening: list[tuple[int, int]]
) -> SpaceHour:
    """One sweep over the hour: each reading holds from its time until the sensor's next
    reading or `hold_ms`, whichever comes first; between two cuts the space's people are the
    sum over the sensors holding a value, its CO2 the highest of them (a heap). Linear in the
    readings, whatever the number of sensors: an open-plan hall may have sixty desk sensors."""
    end_ms = hour_ms + HOUR_MS
    # The cuts are every reading's time and hold end inside the hour, also where a later
    # reading came first: the segments, and so the float sums, do not depend on the method.
    cuts = {hour_ms, end_ms}
    for lo, hi in opening:
        cuts.update((lo, hi))
    starts, ends = _segments(sensors, hour_ms, hold_ms, cuts)
    holding: dict[int, tuple[int, int]] = {}  # sensor: (its segment, people)
    total = 0
    highest: list[tuple[float, int, int]] = []  # (-ppm, sensor, segment), stale ones popped late
    sums = _Sums()
    for a, b in itertools.pairwise(sorted(cuts)):
        for s, segment in ends.pop(a, ()):
            held = holding.get(s)
            if held is not None and held[0] == segment:
                del holding[s]
                total -= held[1]
        for s, segment, count, ppm in starts.pop(a, ()):
            held = holding.get(s)
            total += count - (held[1] if held is not None else 0)
            holding[s] = (segment, count)
            if ppm is not None:
                heapq.heappush(highest, (-ppm, s, segment))
        if not holding:
            continue
        while highest and holding.get(highest[0][1], (0, 0))[0] != highest[0][2]:
            heapq.heappop(highest)
        co2 = -highest[0][0] if highest else None
        sums.add((b - a) / 1000, _overlap(a, b, opening) / 1000, total, co2)
    return SpaceHour(
        hour_ms,
        open_s=sum(hi - lo for lo, hi in opening) / 1000,
        measured_s=sums.measured,
        occupied_s=sums.occupied,
        occupied_open_s=sums.occupied_open,
        people_s=sums.people_s,
        measured_open_s=sums.measured_open,
        people_open_s=sums.people_open,
        people_peak=sums.peak,
        co2_occupied_s=sums.co2_occ,
        co2_good_s=sums.co2_good,
    )


_Starts = dict[int, list[tuple[int, int, int, float | None]]]
_Ends = dict[int, list[tuple[int, int]]]


def _segments(
    sensors: Sequence[OccupancySeries], hour_ms: int, hold_ms: int, cuts: set[int]
) -> tuple[_Starts, _Ends]:
    """Each reading's segment inside the hour, by where it starts and where it ends (sensor,
    segment number, people, ppm); adds their times and hold ends to `cuts`."""
    end_ms = hour_ms + HOUR_MS
    starts: _Starts = {}
    ends: _Ends = {}
    seq = 0
    for s, series in enumerate(sensors):
        for i, (t, count, ppm) in enumerate(series):
            for c in (t, t + hold_ms):
                if hour_ms < c < end_ms:
                    cuts.add(c)
            stop = t + hold_ms if i + 1 == len(series) else min(t + hold_ms, series[i + 1][0])
            if stop <= hour_ms or t >= end_ms:
                continue
            seq += 1
            starts.setdefault(max(t, hour_ms), []).append((s, seq, count, ppm))
            if stop < end_ms:
                ends.setdefault(stop, []).append((s, seq))
    return starts, ends


@dataclass(slots=True)
class _Sums:
    """The hour's sums over its segments, added in time order (the float results depend on
    the order, which the recompute shares)."""

    measured: float = 0.0
    occupied: float = 0.0
    occupied_open: float = 0.0
    people_s: float = 0.0
    co2_occ: float = 0.0
    co2_good: float = 0.0
    measured_open: float = 0.0
    people_open: float = 0.0
    peak: int = 0

    def add(self, seconds: float, open_seconds: float, people: int, co2: float | None) -> None:
        self.measured += seconds
        self.measured_open += open_seconds
        self.people_s += people * seconds
        self.people_open += people * open_seconds
        self.peak = max(self.peak, people)
        if people > 0:
            self.occupied += seconds
            self.occupied_open += open_seconds
            if co2 is not None:
                self.co2_occ += seconds
                if co2 < CO2_GOOD_PPM:
                    self.co2_good += seconds
