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
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from math import isnan
from typing import Any
from zoneinfo import ZoneInfo

from devices import AnyDevice, Registry
from devices.contract import (
    PV_ROLE,
    SHARD_TAG,
    SITE_TAG,
    SPACE_HOURLY,
    SPACE_TAG,
    SUPPLY_ROLE,
    WASTE_EMPTYING,
)
from devices.site import (
    EnergyMeter,
    HeatMeter,
    OccupancySensor,
    WasteBin,
    WaterMeter,
)
from ingest.evaluation.shard import Shard
from ingest.reading import FieldValue, Reading
from ingest.storage.lineproto import device_tags, format_line, series_key

from ._days import Days
from ._energy import HOUR_MS, hourly_kwh_sorted
from ._factors import EmissionFactors
from ._hours import Hours
from ._kinds import (
    COUNTERS,
    OVERFLOW_PCT,
    CounterMeter,
    EnergyHour,
    Values,
    count_of,
    hour_of,
    num,
    rounded,
    space_fields,
)
from ._series import Series
from ._space import OccupancySeries, SpaceHour, open_intervals, space_hour
from ._waste import SPAN, TOO_EARLY_PCT, Emptying, detect_emptyings

log = logging.getLogger(__name__)

WINDOW_H = 1.0
REPAIR_H = 48.0
# Late readings held for repair, at most (24 bytes each); beyond that they count as too late.
MAX_LATE = 200_000


@dataclass(frozen=True, slots=True)
class Repair:
    """Late readings whose hours are recomputed together: a device's, or for occupancy every
    sensor of the space (a space's hour combines its sensors)."""

    devices: tuple[AnyDevice, ...]  # whose stored readings the repair reads
    since_ms: int  # the earliest late reading
    late: dict[str, Series]  # by device id

    @property
    def readings(self) -> int:
        return sum(len(s) for s in self.late.values())


def rolled_values(reading: Reading) -> Values | None:
    """What the rollups keep of a reading: the counter and its rate, people and CO2, or the
    fill level; None for readings that are not rolled up."""
    device = reading.device
    if reading.measurement != device.spec.measurement:
        return None  # device_status and the like are not rolled up
    f = reading.fields
    counter = COUNTERS.get(type(device))
    if counter is not None:
        return num(f.get(counter.counter)), num(f.get(counter.rate))
    if isinstance(device, OccupancySensor):
        return num(f.get("people")), num(f.get("co2_ppm"))
    if isinstance(device, WasteBin):
        return num(f.get("fill_pct")), None
    return None  # air, weather and people counters have no rollups (yet)


class Rollups(Days):
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

    def _write_emptyings(
        self,
        changes: list[tuple[WasteBin, Emptying, bool]],
        device_days: set[tuple[str, int]],
        write: bool,
    ) -> int:
        # Written here, with no step between: the cache that says what was written, and what
        # is stored, change together even if the flush or repair is abandoned later.
        lines = []
        for bin_, e, retracted in changes:
            lines.append(self._emptying_line(bin_, e, retracted))
            device_days.add((bin_.id, self._day(e.time_ms)))
            cache = self._emptyings.setdefault(bin_.id, {})
            if retracted:
                cache.pop(e.time_ms, None)
            else:
                cache[e.time_ms] = e
        return self._emit(lines, write)

    def _aggregate_lines(
        self, device_days: set[tuple[str, int]], space_hours: set[tuple[str, int]]
    ) -> Generator[None, None, list[str]]:
        """The points made of computed hours: space hours, and device, space and site days."""
        # A space or day with nothing to say gets no point, rather than a made-up zero.
        lines: list[str] = []
        aggregates: list[str | None] = []
        space_days: set[tuple[str, int]] = set()
        for space, hour in sorted(space_hours):
            yield
            aggregates.append(self._space_hour_line(space, hour))
            space_days.add((space, self._day(hour)))
        days: set[int] = set()
        for device_id, day in sorted(device_days):
            yield
            device = self._registry.get(device_id)
            assert device is not None
            lines += self._device_day_lines(device, day)
            space_days.add((device.space, day))
            days.add(day)
        for space, day in sorted(space_days):
            yield
            aggregates.append(self._space_day_line(space, day))
            days.add(day)
        for day in sorted(days):
            yield
            aggregates.append(self._impact_day_line(day))
        return lines + [line for line in aggregates if line is not None]

    def _emit(self, lines: list[str], write: bool) -> int:
        floor = self._floor_ms
        if floor is not None:
            lines = [line for line in lines if int(line.rsplit(" ", 1)[1]) >= floor]
        if write and lines:
            self._write(lines)
            self.written += len(lines)
        return len(lines) if write else 0

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

    @property
    def late(self) -> int:
        """Late readings held for a repair."""
        return self._late_n

    def take_late(self) -> list[Repair]:
        """The late readings held so far, grouped into repairs; they are the caller's now."""
        late, self._late, self._late_n = self._late, {}, 0
        groups: dict[str, list[str]] = {}
        for device_id in late:
            device = self._registry.get(device_id)
            if device is None:
                continue
            key = f"space:{device.space}" if isinstance(device, OccupancySensor) else device_id
            groups.setdefault(key, []).append(device_id)
        repairs = []
        for key, ids in groups.items():
            devices: tuple[AnyDevice, ...]
            if key.startswith("space:"):
                space = key.removeprefix("space:")
                devices = tuple(
                    d for d in self._space_devices[space] if isinstance(d, OccupancySensor)
                )
            else:
                devices = tuple(d for i in ids if (d := self._registry.get(i)) is not None)
            since = min(late[i].times[0] for i in ids)
            repairs.append(Repair(devices, since, {i: late[i] for i in ids}))
        return repairs

    def give_back(self, repairs: Sequence[Repair]) -> None:
        """Late readings a repair could not finish (InfluxDB unreachable): held again."""
        for repair in repairs:
            for device_id, series in repair.late.items():
                held = self._late.get(device_id)
                if held is None:
                    held = self._late[device_id] = Series()
                for i in range(len(series)):
                    t = series.times[i]
                    self._late_n += held.put(t, series.primary[i], series.secondary_at(i))

    def repair_steps(
        self, repair: Repair, since_hour: int, stored: Mapping[str, Sequence[Reading]]
    ) -> Generator[None, None, int]:
        """Recompute the hours from `since_hour` to each device's horizon from `stored` (their
        readings from InfluxDB: from the SPAN + 1 before `since_hour` to the horizon), the live
        window and the late readings, and write what changed with the days they are part of.
        `since_hour` is the hour of the SPAN + 1-th stored reading before the earliest late
        one: that far back a late reading can change an interval, a hold or a median. In steps,
        like `flush_steps`; never run the two at the same time."""
        if self._day(since_hour) < self._oldest:
            # The other hours of that day are gone: only a recompute can give it whole.
            self.too_late += repair.readings
            log.warning(
                "rollups: %d readings of %s came later than the %d days the rollups keep; "
                "`kera-ingest rollups` recomputes their days",
                repair.readings, ", ".join(sorted(repair.late)), self._keep_ms // (24 * HOUR_MS),
            )  # fmt: skip
            return 0
        temp = Rollups(self._registry, _discard, self._factors, window_h=10**6, keep_days=10**4)
        for d in repair.devices:
            for reading in stored.get(d.id, ()):
                values = rolled_values(reading)
                if values is not None and values[0] is not None:
                    temp._put(d.id, reading.time_ms, values[0], values[1])
            for series in (self._raw.get(d.id), repair.late.get(d.id)):
                for i in range(len(series or ())):
                    assert series is not None
                    temp._put(d.id, series.times[i], series.primary[i], series.secondary_at(i))
        yield
        yield from temp.flush_steps(write=False)

        lines: list[str] = []
        device_days: set[tuple[str, int]] = set()
        space_hours: set[tuple[str, int]] = set()
        emptyings: list[tuple[WasteBin, Emptying, bool]] = []
        for d in repair.devices:
            yield
            lines += self._import_device(d, temp, since_hour, device_days, space_hours, emptyings)
            self._restore_window(d.id, temp._raw.get(d.id), repair.late.get(d.id))
        occupancy = [d for d in repair.devices if isinstance(d, OccupancySensor)]
        if occupancy:
            space = occupancy[0].space
            end = max(self.horizon(d.id) for d in occupancy)
            if space in temp._spaces:
                _replace(self._spaces, space, temp._spaces[space], since_hour, end)
            for hour in range(since_hour, end, HOUR_MS):
                space_hours.add((space, hour))
        written = self._write_emptyings(emptyings, device_days, True)
        lines += yield from self._aggregate_lines(device_days, space_hours)
        self.repaired += repair.readings
        return written + self._emit(lines, True)

    def _import_device(
        self,
        d: AnyDevice,
        temp: Rollups,
        since_hour: int,
        device_days: set[tuple[str, int]],
        space_hours: set[tuple[str, int]],
        emptyings: list[tuple[WasteBin, Emptying, bool]],
    ) -> list[str]:
        """A repair's hours of one device, from `temp` into the live caches; its hourly lines."""
        end = self.horizon(d.id)
        lines: list[str] = []
        for caches, fresh in ((self._counts, temp._counts), (self._energy, temp._energy)):
            if d.id in fresh:
                _replace(caches, d.id, fresh[d.id], since_hour, end)
        if d.id in temp._counts:
            for hour, _ in temp._counts[d.id].rows(since_hour, end):
                device_days.add((d.id, self._day(hour)))
        if isinstance(d, CounterMeter) and d.id in temp._energy:
            for hour, _ in temp._energy[d.id].rows(since_hour, end):
                lines.append(self._energy_line(d, hour))
                device_days.add((d.id, self._day(hour)))
                if isinstance(d, EnergyMeter):
                    space_hours.add((d.space, hour))
        elif isinstance(d, WasteBin):
            fresh_e = {t: e for t, e in temp._emptyings.get(d.id, {}).items()
                       if since_hour <= t < end}  # fmt: skip
            known = self._emptyings.get(d.id, {})
            emptyings += [(d, e, False) for t, e in fresh_e.items() if known.get(t) != e]
            emptyings += [(d, e, True) for t, e in known.items()
                          if since_hour <= t < end and t not in fresh_e]  # fmt: skip
        return lines

    def _restore_window(self, device_id: str, known: Series | None, late: Series | None) -> None:
        """The live window again holds every reading from the SPAN + 1 before the horizon on:
        late readings there, and those they needed from storage, change hours the next flush
        computes from the window (those from the horizon on, and the interval or hold that
        crosses it). A reading the window already has stays, unless a late one replaces it:
        the window may have received newer values while the repair read storage."""
        if known is None:
            return
        raw = self._raw.get(device_id)
        if raw is None:
            raw = self._raw[device_id] = Series()
        since = None
        for i in range(max(0, known.index(self.horizon(device_id)) - SPAN - 1), len(known)):
            t = known.times[i]
            j = raw.index(t)
            if j < len(raw) and raw.times[j] == t:
                continue
            raw.put(t, known.primary[i], known.secondary_at(i))
            since = t if since is None else min(since, t)
        for i in range(len(late or ())):
            assert late is not None
            t = late.times[i]
            if t >= raw.times[0]:
                raw.put(t, late.primary[i], late.secondary_at(i))
                since = t if since is None else min(since, t)
        if since is not None:
            self._dirty[device_id] = min(self._dirty.get(device_id, since), since)

    # --- energy ------------------------------------------------------------------------------

    def _factor(self, device: CounterMeter, hour_ms: int) -> float | None:
        if isinstance(device, HeatMeter):
            return self._heat_factor
        if isinstance(device, WaterMeter) or device.role == PV_ROLE:
            return None
        return self._factors.at(hour_ms)

    def _energy_hours(self, device: CounterMeter, raw: Series, start: int) -> list[int]:
        # From the last reading before `start`: the interval into the first hour belongs to it.
        i = max(0, raw.index(start) - 1)
        part = raw.times[i:]
        counter = list(zip(part, raw.primary[i:], strict=True))
        cache = self._energy.get(device.id)
        if cache is None:
            cache = self._energy[device.id] = Hours(8, EnergyHour.unpack)
        done: list[int] = []
        max_gap_s = max(3600.0, 3 * device.expected_interval_s)
        for h in hourly_kwh_sorted(counter, max_gap_s):
            if h.hour_ms < start:
                continue
            j = bisect.bisect_left(part, h.hour_ms)
            k = bisect.bisect_left(part, h.hour_ms + HOUR_MS)
            powers = [p for p in raw.secondary[i + j : i + k] if not isnan(p)]  # NaN: none
            factor = self._factor(device, h.hour_ms)
            e = EnergyHour(
                kwh=h.kwh,
                kgco2e=None if factor is None else h.kwh * factor,
                factor=factor,
                interpolated=h.interpolated,
                resets=h.resets,
                power_sum=sum(powers),
                power_n=len(powers),
                power_peak=max(powers) if powers else None,
            )
            cache.put(h.hour_ms, e.pack())
            done.append(h.hour_ms)
        return done

    def _energy_line(self, device: CounterMeter, hour: int) -> str:
        e = self._energy[device.id].get(hour)
        assert e is not None
        kind = COUNTERS[type(device)]
        fields: dict[str, FieldValue] = {
            kind.amount: rounded(e.kwh),
            "interpolated": e.interpolated,
            "resets": e.resets,
            "readings": e.power_n,
        }
        if e.power_n:
            fields[kind.rate_mean] = rounded(e.power_sum / e.power_n, 3)
            fields[kind.rate_peak] = e.power_peak or 0.0
        if e.kgco2e is not None and e.factor is not None:
            fields["kgco2e"] = rounded(e.kgco2e)
            fields["factor_kg_per_kwh"] = rounded(e.factor)
        return format_line(series_key(kind.hourly, device_tags(self._site, device)), fields, hour)

    # --- waste -------------------------------------------------------------------------------

    def _bin_emptyings(
        self, device: WasteBin, raw: Series, horizon: int
    ) -> list[tuple[WasteBin, Emptying, bool]]:
        fills = list(zip(raw.times, raw.primary, strict=True))
        found = {e.time_ms: e for e in detect_emptyings(fills) if e.time_ms >= horizon}
        cache = self._emptyings.get(device.id, {})
        changes: list[tuple[WasteBin, Emptying, bool]] = []
        for t, e in found.items():
            if cache.get(t) != e:
                changes.append((device, e, False))
        for t in [t for t in cache if t >= horizon and t not in found]:
            # A later reading showed this was no emptying (say, two false echoes in a row):
            # the stored point is overwritten as retracted, with nothing collected.
            changes.append((device, cache[t], True))
        # The cache learns of a change only when its point is written (`_flush`'s end): a flush
        # abandoned before that must not leave the next one thinking it was.
        return changes

    def _bin_flags(self, device: WasteBin, e: Emptying) -> tuple[bool, bool]:
        full = device.thresholds.get("fill_full_pct", OVERFLOW_PCT)
        return e.fill_before_pct < TOO_EARLY_PCT, e.fill_before_pct >= full

    def _emptying_line(self, device: WasteBin, e: Emptying, retracted: bool) -> str:
        early, late = self._bin_flags(device, e)
        volume = device.volume_l or 0.0
        fields: dict[str, FieldValue] = {
            "fill_before_pct": rounded(e.fill_before_pct, 2),
            "fill_after_pct": rounded(e.fill_after_pct, 2),
            "volume_l": 0.0 if retracted else rounded(e.volume_l(volume), 3),
            "too_early": early and not retracted,
            "too_late": late and not retracted,
            "retracted": retracted,
        }
        return format_line(
            series_key(WASTE_EMPTYING, device_tags(self._site, device)), fields, e.time_ms
        )

    # --- space use ---------------------------------------------------------------------------

    def _hold_ms(self, device: AnyDevice) -> int:
        return round(3 * device.expected_interval_s * 1000)

    def _space_hour_line(self, space: str, hour: int) -> str | None:
        sensors = [d for d in self._space_devices.get(space, ()) if isinstance(d, OccupancySensor)]
        fields: dict[str, FieldValue] = {}
        cache = self._spaces.get(space)
        if cache is None:
            cache = self._spaces[space] = Hours(10, SpaceHour.unpack)
        cached = cache.get(hour)
        if sensors and any(hour < self.horizon(d.id) for d in sensors):
            # Its readings are gone from the window: keep what was computed while they were here.
            if cached is not None:
                fields.update(space_fields([cached]))
        elif sensors:
            hold = max(self._hold_ms(d) for d in sensors)
            series: list[OccupancySeries] = []
            for d in sensors:
                raw = self._raw.get(d.id)
                if raw is None:
                    series.append([])
                    continue
                # The readings that can hold into the hour, and those inside it.
                lo = max(0, raw.index(hour - hold) - 1)
                hi = raw.index(hour + HOUR_MS)
                at = raw.secondary_at
                series.append([(raw.times[x], int(raw.primary[x]), at(x)) for x in range(lo, hi)])
            sh = space_hour(series, hour, hold, open_intervals(self._impact, self._tz, hour))
            cache.put(hour, sh.pack())
            fields.update(space_fields([sh]))
        fields.update(self._space_energy(space, hour, hour + HOUR_MS))
        key = series_key(SPACE_HOURLY, {SITE_TAG: self._site, SPACE_TAG: space})
        return format_line(key, fields, hour) if fields else None

    def _space_energy(self, space: str, start: int, end: int) -> dict[str, FieldValue]:
        sums: dict[str, float] = {}
        for d in self._space_devices.get(space, ()):
            if not isinstance(d, EnergyMeter):
                continue
            prefix = {SUPPLY_ROLE: "supply_", PV_ROLE: "pv_"}.get(d.role or "", "")
            for e in self._hours(self._energy, d.id, start, end):
                sums[prefix + "kwh"] = sums.get(prefix + "kwh", 0.0) + e.kwh
                if e.kgco2e is not None:
                    key = prefix + "kgco2e"
                    sums[key] = sums.get(key, 0.0) + e.kgco2e
        return {k: rounded(v) for k, v in sums.items()}


def _discard(_lines: list[str]) -> None:
    pass


def _replace(
    caches: dict[str, Hours[Any]], key: str, fresh: Hours[Any], start: int, end: int
) -> None:
    """The hours [start, end) of `key` become those of `fresh`."""
    hours = caches.get(key)
    if hours is None:
        hours = caches[key] = fresh.empty()
    hours.clear(start, end)
    for hour, row in fresh.rows(start, end):
        hours.put(hour, row)
