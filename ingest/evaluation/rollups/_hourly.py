"""The hourly points as lines: a meter's energy hour, a bin's emptying and a space's hour,
computed from the engine's raw window and kept as computed hours, and how a flush or a repair
turns what changed into lines with their days and writes them (`Rollups` inherits these; the
daily points are `_days`, the repair of late readings `_repair`)."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Generator
from math import isnan

from devices import AnyDevice
from devices.contract import (
    PV_ROLE,
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
from ingest.reading import FieldValue
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
    rounded,
    space_fields,
)
from ._series import Series
from ._space import OccupancySeries, SpaceHour, open_intervals, space_hour
from ._waste import TOO_EARLY_PCT, Emptying, detect_emptyings

log = logging.getLogger(__name__)


class HourLines(Days):
    """The hourly half of `Rollups`, which inherits it; the state below is the engine's."""

    _heat_factor: float | None
    _factors: EmissionFactors
    _space_devices: dict[str, list[AnyDevice]]
    _raw: dict[str, Series]
    _floor_ms: int | None
    _write: Callable[[list[str]], None]
    written: int

    def horizon(self, device_id: str) -> int:
        raise NotImplementedError

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
