"""The rollup engine: keeps each device's recent readings, recomputes the hours and days a new
(or late, or replayed) reading touches, and writes them as points that overwrite the earlier
version of the same hour or day. docs/impact.md defines every field.

Why recompute rather than add up: a late reading changes the interpolation of the interval it
falls in, a replayed one must not count twice, and an emptying is only certain once later
readings confirm it. Recomputing a window from the readings themselves gives the same points
whatever order the readings came in.

Raw readings are kept for `window_h` per device (an hour, longer for slow devices), so memory
per device does not grow with how late a reading may be; older hours and days live on as
computed values (kept `keep_days`), so a day is always the sum of its hours. A reading that
would change a final hour, but at most `repair_h` older than its device's newest, is held apart
(`take_late`) until the evaluator reads its neighbours back from InfluxDB and recomputes the
hours it touches (`repair_steps`, driven by `repair_late` in _storage.py): the same points as if
it had come in order. Older readings are counted in `too_late` and left to `kera-ingest
rollups` (a recompute from InfluxDB).

Here: the window, its flush and its pruning. The engine's other parts are the classes it
inherits, each over the same state: `_hourly.HourLines` (the hourly lines), `_days.Days` (the
daily ones) and `_repair.Repairs` (late readings).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Generator, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from devices import AnyDevice, Registry
from devices.contract import (
    SHARD_TAG,
    SITE_TAG,
)
from devices.site import (
    EnergyMeter,
    OccupancySensor,
    WasteBin,
)
from ingest.evaluation.shard import Shard
from ingest.reading import Reading

from ._energy import HOUR_MS
from ._factors import EmissionFactors
from ._hours import Hours
from ._kinds import (
    CounterMeter,
    EnergyHour,
    count_of,
    hour_of,
    rolled_values,
)
from ._repair import Repairs
from ._series import Series
from ._space import SpaceHour
from ._waste import SPAN, Emptying

log = logging.getLogger(__name__)

WINDOW_H = 1.0
REPAIR_H = 48.0
# Late readings held for repair, at most (24 bytes each); beyond that they count as too late.
MAX_LATE = 200_000


class Rollups(Repairs):
    """Feed it every accepted reading (`observe`, cheap) and call `flush` now and then: it
    returns how many rollup points it wrote through `write_lines`."""

    def __init__(
        self,
        registry: Registry,
        write_lines: Callable[[list[str]], None],
        factors: EmissionFactors | None = None,
        window_h: float = WINDOW_H,
        keep_days: int = 9,
        repair_h: float = REPAIR_H,
        floor_ms: int | None = None,
        shard: Shard | None = None,
    ) -> None:
        self._registry = registry
        self._write = write_lines
        self._factors = factors or EmissionFactors()
        self.window_ms = round(window_h * HOUR_MS)
        self._keep_ms = keep_days * 24 * HOUR_MS
        self._repair_ms = round(repair_h * HOUR_MS)
        self._oldest = -(2**62)  # computed hours before this were pruned
        # Nothing before floor_ms is written: a recompute reads a day before its first one, so
        # that day starts complete, but must not write that partial day over the stored one.
        self._floor_ms = floor_ms
        site = registry.site
        self._site = site.site
        self._impact = site.impact
        self._heat_factor = site.impact.heat_emission_factor_kg_per_kwh
        self._tz = ZoneInfo(site.timezone)
        # With KERA_EVALUATION_SHARD, only the shard's spaces' devices, and a share of the site's
        # day tagged with the shard (the site's figures are sums over shards).
        self._only = None if shard is None else shard.devices(registry)
        self._impact_tags = {SITE_TAG: self._site}
        if shard is not None:
            self._impact_tags[SHARD_TAG] = str(shard.index)
        self._raw: dict[str, Series] = {}
        self._open_cache: dict[int, float] = {}
        self._newest: dict[str, int] = {}
        self._dirty: dict[str, int] = {}
        self._kept_from: dict[str, int] = {}
        # What `observe` calls late: a reading at or before the first one at or after the
        # horizon (or where a flush under way will move it, so that readings arriving while it
        # is suspended are judged as after it). Such a reading changes an interval, a hold or a
        # median that reaches into a final hour, so it goes to a repair. One look-up a reading.
        self._late_before: dict[str, int] = {}
        self._windows: dict[str, int] = {}
        self._energy: dict[str, Hours[EnergyHour]] = {}
        self._counts: dict[str, Hours[int]] = {}
        self._spaces: dict[str, Hours[SpaceHour]] = {}
        self._emptyings: dict[str, dict[int, Emptying]] = {}
        self._space_devices: dict[str, list[AnyDevice]] = {}
        for d in registry:
            self._space_devices.setdefault(d.space, []).append(d)
        self._late: dict[str, Series] = {}
        self._late_n = 0
        self.too_late = 0
        self.repaired = 0  # late readings rolled up by a repair
        self.written = 0  # points handed to write_lines, rewrites of an hour or day included

    # --- input -------------------------------------------------------------------------------

    def observe(self, reading: Reading) -> None:
        values = rolled_values(reading)
        if values is None or values[0] is None:
            return
        device = reading.device
        t = reading.time_ms
        if t <= self._late_before.get(device.id, -(2**62)):
            if t < self._newest[device.id] - self._repair_ms or self._late_n >= MAX_LATE:
                self.too_late += 1
                return
            late = self._late.get(device.id)
            if late is None:
                late = self._late[device.id] = Series()
            self._late_n += late.put(t, values[0], values[1])
            return
        self._put(device.id, t, values[0], values[1])

    def _put(self, device_id: str, t: int, primary: float, secondary: float | None) -> None:
        series = self._raw.get(device_id)
        if series is None:
            series = self._raw[device_id] = Series()
        series.put(t, primary, secondary)
        if t > self._newest.get(device_id, t - 1):
            self._newest[device_id] = t
        self._dirty[device_id] = min(self._dirty.get(device_id, t), t)

    def rolls_up(self, device_id: str) -> bool:
        """Whether the device is this instance's (all, or its shard's): its callers hand
        `observe` only those, so the hot path asks once (Evaluator.observe)."""
        return self._only is None or device_id in self._only

    @property
    def window_readings(self) -> int:
        """Readings held in memory (24 bytes each in the arrays)."""
        return sum(len(s) for s in self._raw.values())

    def reset(self) -> None:
        """Forget every reading and computed value (a start-up reload that failed half-way
        must not be taken for the whole window)."""
        for state in (self._raw, self._newest, self._dirty, self._kept_from, self._late_before,
                      self._energy, self._counts, self._spaces, self._emptyings,
                      self._late):  # fmt: skip
            state.clear()
        self._late_n = 0

    def seed_from(self, now_ms: int) -> int:
        """Where a start-up reload begins: an hour before the local midnight of the oldest day
        a late reading (up to `repair_h` old) may still change, so that every hour of that day
        is computed, its first one with the interval into it."""
        return self._day(now_ms - self._repair_ms) - HOUR_MS

    def horizon(self, device_id: str) -> int:
        """Hours from here on are recomputed from raw readings; earlier ones are final. It
        moves only at a flush, after the hours it leaves behind were computed: between two
        flushes more than a window of readings may arrive (a backfill)."""
        return self._kept_from.get(device_id, -(2**62))

    def _window(self, device_id: str) -> int:
        window = self._windows.get(device_id)
        if window is None:
            # At least 4 x SPAN readings: an emptying is decided about 2 x SPAN readings after
            # the step, and must still be inside the window then (five hours for a bin read
            # every 15 minutes).
            device = self._registry.get(device_id)
            interval_ms = 0.0 if device is None else device.expected_interval_s * 1000
            window = self._windows[device_id] = max(self.window_ms, round(4 * SPAN * interval_ms))
        return window

    def _next_horizon(self, device_id: str) -> int:
        h = self._newest[device_id] - self._window(device_id)
        return max(self.horizon(device_id), h - h % HOUR_MS)

    # --- output ------------------------------------------------------------------------------

    def flush(self, write: bool = True) -> int:
        """Recompute what changed since the last flush, all at once. write=False only fills the
        caches, for readings loaded from storage at start-up that are already rolled up."""
        steps = self.flush_steps(write)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return int(done.value)

    def flush_steps(self, write: bool = True) -> Generator[None, None, int]:
        """`flush` in small steps: it yields after each device and each aggregate point, so that
        an event loop can answer between them (ingest/evaluation/evaluator.py runs it in slices of
        a few milliseconds). Readings observed meanwhile wait for the next flush."""
        dirty, self._dirty = self._dirty, {}
        pending = {d: self._next_horizon(d) for d in dirty if d in self._newest}
        before = {d: self._late_before.get(d) for d in pending}
        for device_id, kept in pending.items():
            raw = self._raw[device_id]
            self._late_before[device_id] = raw.times[raw.index(kept)]
        done = False
        try:
            n = yield from self._flush(dirty, write)
            for device_id, kept in pending.items():
                yield
                self._kept_from[device_id] = kept
                # Keep the window, plus enough earlier readings for an interval or a median.
                raw = self._raw[device_id]
                raw.drop_first(raw.index(kept) - SPAN - 1)
            done = True
            return n
        finally:
            if not done:
                # Abandoned half-way (the service stopping): the next flush does it all again.
                for device_id, since in dirty.items():
                    self._dirty[device_id] = min(self._dirty.get(device_id, since), since)
                for device_id, was in before.items():
                    if was is None:
                        self._late_before.pop(device_id, None)
                    else:
                        self._late_before[device_id] = was

    def _flush(self, dirty: dict[str, int], write: bool) -> Generator[None, None, int]:
        lines: list[str] = []
        device_days: set[tuple[str, int]] = set()
        space_hours: set[tuple[str, int]] = set()
        changed_emptyings: list[tuple[WasteBin, Emptying, bool]] = []
        for device_id, since in dirty.items():
            yield
            device = self._registry.get(device_id)
            if device is None:
                continue
            raw = self._raw[device_id]
            times = raw.times
            horizon = self.horizon(device_id)
            start = max(hour_of(since), horizon)
            if isinstance(device, CounterMeter):
                i = bisect.bisect_left(times, since)
                start = max(hour_of(times[max(0, i - 1)]), horizon)
                for hour in self._energy_hours(device, raw, start):
                    lines.append(self._energy_line(device, hour))
                    device_days.add((device_id, self._day(hour)))
                    if isinstance(device, EnergyMeter):
                        space_hours.add((device.space, hour))
            elif isinstance(device, OccupancySensor):
                hold = self._hold_ms(device)
                for hour in range(start, hour_of(self._newest[device_id] + hold) + 1, HOUR_MS):
                    space_hours.add((device.space, hour))
            else:
                assert isinstance(device, WasteBin)
                changed_emptyings += self._bin_emptyings(device, raw, horizon)
            counts = self._counts.get(device_id)
            if counts is None:
                counts = self._counts[device_id] = Hours(1, count_of)
            i = bisect.bisect_left(times, start)
            for hour in range(start, hour_of(times[-1]) + 1, HOUR_MS):
                j = bisect.bisect_left(times, hour + HOUR_MS, lo=i)
                counts.put(hour, (j - i,))
                i = j
                device_days.add((device_id, self._day(hour)))

        written = self._write_emptyings(changed_emptyings, device_days, write)
        lines += yield from self._aggregate_lines(device_days, space_hours)
        yield from self._prune()
        return written + self._emit(lines, write)

    def _prune(self) -> Generator[None, None, None]:
        newest = max(self._newest.values(), default=0)
        oldest = self._oldest = newest - self._keep_ms
        groups: tuple[Mapping[str, Hours[Any]], ...] = (self._energy, self._counts, self._spaces)
        for caches in groups:
            for hours in list(caches.values()):
                yield
                hours.prune(oldest)
        for cache in list(self._emptyings.values()):
            yield
            for key in [k for k in cache if k < oldest]:
                del cache[key]
        for day in [d for d in self._open_cache if d < oldest]:
            del self._open_cache[day]

    # --- late readings ---------------------------------------------------------------------

    def _scratch(self) -> Rollups:
        return Rollups(self._registry, _discard, self._factors, window_h=10**6, keep_days=10**4)


def _discard(_lines: list[str]) -> None:
    pass
