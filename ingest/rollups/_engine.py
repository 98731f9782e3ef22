"""The rollup engine: keeps each device's recent readings, recomputes the hours and days a new
(or late, or replayed) reading touches, and writes them as points that overwrite the earlier
version of the same hour or day. docs/impact.md defines every field.

Why recompute rather than add up: a late reading changes the interpolation of the interval it
falls in, a replayed one must not count twice, and an emptying is only certain once later
readings confirm it. Recomputing a window from the readings themselves gives the same points
whatever order the readings came in.

Raw readings are kept for `window_h` per device; older hours and days live on as computed
values (kept `keep_days`), so a day is always the sum of its hours. A reading older than the
window is counted in `too_late` and left to `kera-ingest rollups` (a recompute from InfluxDB).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from devices import AnyDevice, Registry
from devices.contract import SITE_TAG, SPACE_TAG
from devices.site import (
    EnergyMeter,
    HeatMeter,
    OccupancySensor,
    WasteBin,
    WasteFraction,
    WaterMeter,
)
from ingest.lineproto import device_tags, format_line, series_key
from ingest.reading import FieldValue, Reading

from ._calendar import local_day, next_day
from ._energy import HOUR_MS, hourly_kwh
from ._factors import EmissionFactors
from ._series import Series
from ._space import OccupancySeries, SpaceHour, open_intervals, space_hour
from ._waste import SPAN, TOO_EARLY_PCT, Emptying, detect_emptyings

ENERGY_HOURLY = "energy_hourly"
ENERGY_DAILY = "energy_daily"
SPACE_HOURLY = "space_hourly"
SPACE_DAILY = "space_daily"
WASTE_EMPTYING = "waste_emptying"
WASTE_DAILY = "waste_daily"
DEVICE_DAILY = "device_daily"
IMPACT_DAILY = "impact_daily"
HEAT_HOURLY = "heat_hourly"
HEAT_DAILY = "heat_daily"
WATER_HOURLY = "water_hourly"
WATER_DAILY = "water_daily"
ROLLUP_MEASUREMENTS = (
    ENERGY_HOURLY, ENERGY_DAILY, SPACE_HOURLY, SPACE_DAILY,
    WASTE_EMPTYING, WASTE_DAILY, DEVICE_DAILY, IMPACT_DAILY,
    HEAT_HOURLY, HEAT_DAILY, WATER_HOURLY, WATER_DAILY,
)  # fmt: skip

# Meters with a cumulative counter, rolled up hour by hour the same way: what their counter and
# rate are called in the readings, and in their hourly and daily points.
CounterMeter = EnergyMeter | HeatMeter | WaterMeter


@dataclass(frozen=True, slots=True)
class CounterKind:
    counter: str  # the reading's cumulative field
    rate: str  # the reading's momentary field
    hourly: str
    daily: str
    amount: str  # the hourly and daily field with the counter's increase
    rate_mean: str
    rate_peak: str


COUNTERS: dict[type, CounterKind] = {
    EnergyMeter: CounterKind(
        "energy_kwh", "power_w", ENERGY_HOURLY, ENERGY_DAILY, "kwh", "power_mean_w",
        "power_peak_w",
    ),
    HeatMeter: CounterKind(
        "heat_energy_kwh", "heat_power_kw", HEAT_HOURLY, HEAT_DAILY, "kwh", "power_mean_kw",
        "power_peak_kw",
    ),
    WaterMeter: CounterKind(
        "volume_m3", "flow_m3h", WATER_HOURLY, WATER_DAILY, "m3", "flow_mean_m3h",
        "flow_peak_m3h",
    ),
}  # fmt: skip


def qualified(measurement: str, rp: str | None = None) -> str:
    """The measurement as InfluxQL names it, in retention policy `rp` (KERA_ROLLUPS_RP)."""
    return f'"{rp}"."{measurement}"' if rp else f'"{measurement}"'


# Roles whose energy is not a space's own consumption: the utility supply covers the whole
# building (its sub-meters included) and PV is production.
SUPPLY_ROLE = "main-supply"
HEAT_SUPPLY_ROLE = "district-heat-supply"
PV_ROLE = "pv-production"
OVERFLOW_PCT = 95.0  # "too late" when a bin has no fill_full_pct threshold of its own

Values = tuple[float | None, float | None]


@dataclass(frozen=True, slots=True)
class EnergyHour:
    kwh: float
    kgco2e: float | None
    factor: float | None
    interpolated: bool
    resets: int
    power_sum: float
    power_n: int
    power_peak: float | None


def _r(x: float, digits: int = 6) -> float:
    # Always a float: a sum over nothing is int 0, and "0i" would set the field's type to
    # integer in InfluxDB and make every later float write of it fail.
    return float(round(x, digits))


class Rollups:
    """Feed it every accepted reading (`observe`, cheap) and call `flush` now and then: it
    returns how many rollup points it wrote through `write_lines`."""

    def __init__(
        self,
        registry: Registry,
        write_lines: Callable[[list[str]], None],
        factors: EmissionFactors | None = None,
        window_h: float = 48.0,
        keep_days: int = 9,
        floor_ms: int | None = None,
    ) -> None:
        self._registry = registry
        self._write = write_lines
        self._factors = factors or EmissionFactors()
        self.window_ms = round(window_h * HOUR_MS)
        self._keep_ms = keep_days * 24 * HOUR_MS
        # Nothing before floor_ms is written: a recompute reads a day before its first one, so
        # that day starts complete, but must not write that partial day over the stored one.
        self._floor_ms = floor_ms
        site = registry.site
        self._site = site.site
        self._impact = site.impact
        self._heat_factor = site.impact.heat_emission_factor_kg_per_kwh
        self._tz = ZoneInfo(site.timezone)
        self._raw: dict[str, Series] = {}
        self._open_cache: dict[int, float] = {}
        self._newest: dict[str, int] = {}
        self._dirty: dict[str, int] = {}
        self._kept_from: dict[str, int] = {}
        self._energy: dict[str, dict[int, EnergyHour]] = {}
        self._counts: dict[str, dict[int, int]] = {}
        self._spaces: dict[str, dict[int, SpaceHour]] = {}
        self._emptyings: dict[str, dict[int, Emptying]] = {}
        self._space_devices: dict[str, list[AnyDevice]] = {}
        for d in registry:
            self._space_devices.setdefault(d.space, []).append(d)
        self.too_late = 0
        self.written = 0  # points handed to write_lines, rewrites of an hour or day included

    # --- input -------------------------------------------------------------------------------

    def observe(self, reading: Reading) -> None:
        device = reading.device
        if reading.measurement != device.spec.measurement:
            return  # device_status and the like are not rolled up
        f = reading.fields
        counter = COUNTERS.get(type(device))
        if counter is not None:
            values: Values = (_num(f.get(counter.counter)), _num(f.get(counter.rate)))
        elif isinstance(device, OccupancySensor):
            values = (_num(f.get("people")), _num(f.get("co2_ppm")))
        elif isinstance(device, WasteBin):
            values = (_num(f.get("fill_pct")), None)
        else:
            return  # air, weather and people counters have no rollups (yet)
        if values[0] is None:
            return
        t = reading.time_ms
        if t < self._horizon(device.id):
            self.too_late += 1
            return
        series = self._raw.get(device.id)
        if series is None:
            series = self._raw[device.id] = Series()
        series.put(t, values[0], values[1])
        if t > self._newest.get(device.id, t - 1):
            self._newest[device.id] = t
        self._dirty[device.id] = min(self._dirty.get(device.id, t), t)

    @property
    def window_readings(self) -> int:
        """Readings held in memory (24 bytes each in the arrays)."""
        return sum(len(s) for s in self._raw.values())

    def reset(self) -> None:
        """Forget every reading and computed value (a start-up reload that failed half-way
        must not be taken for the whole window)."""
        for state in (self._raw, self._newest, self._dirty, self._kept_from, self._energy,
                      self._counts, self._spaces, self._emptyings):  # fmt: skip
            state.clear()

    def _horizon(self, device_id: str) -> int:
        """Hours from here on are recomputed from raw readings; earlier ones are final. It
        moves only at a flush, after the hours it leaves behind were computed: between two
        flushes more than a window of readings may arrive (a backfill)."""
        return self._kept_from.get(device_id, -(2**62))

    def _advance_horizon(self, device_id: str) -> int:
        h = self._newest[device_id] - self.window_ms
        kept = max(self._horizon(device_id), h - h % HOUR_MS)
        self._kept_from[device_id] = kept
        return kept

    # --- output ------------------------------------------------------------------------------

    def flush(self, write: bool = True) -> int:
        """Recompute what changed since the last flush. write=False only fills the caches, for
        readings loaded from storage at start-up that are already rolled up."""
        lines: list[str] = []
        device_days: set[tuple[str, int]] = set()
        space_hours: set[tuple[str, int]] = set()
        changed_emptyings: list[tuple[WasteBin, Emptying, bool]] = []
        for device_id, since in self._dirty.items():
            device = self._registry.get(device_id)
            if device is None:
                continue
            raw = self._raw[device_id]
            times = raw.times
            horizon = self._horizon(device_id)
            start = max(_hour(since), horizon)
            if isinstance(device, CounterMeter):
                i = bisect.bisect_left(times, since)
                start = max(_hour(times[max(0, i - 1)]), horizon)
                for hour in self._energy_hours(device, raw, start):
                    lines.append(self._energy_line(device, hour))
                    device_days.add((device_id, self._day(hour)))
                    if isinstance(device, EnergyMeter):
                        space_hours.add((device.space, hour))
            elif isinstance(device, OccupancySensor):
                hold = self._hold_ms(device)
                for hour in range(start, _hour(self._newest[device_id] + hold) + 1, HOUR_MS):
                    space_hours.add((device.space, hour))
            else:
                assert isinstance(device, WasteBin)
                changed_emptyings += self._bin_emptyings(device, raw, horizon)
            counts = self._counts.setdefault(device_id, {})
            i = bisect.bisect_left(times, start)
            for hour in range(start, _hour(times[-1]) + 1, HOUR_MS):
                j = bisect.bisect_left(times, hour + HOUR_MS, lo=i)
                counts[hour] = j - i
                i = j
                device_days.add((device_id, self._day(hour)))
        advance = list(self._dirty)
        self._dirty.clear()

        for bin_, e, retracted in changed_emptyings:
            lines.append(self._emptying_line(bin_, e, retracted))
            device_days.add((bin_.id, self._day(e.time_ms)))
        # A space or day with nothing to say gets no point, rather than a made-up zero.
        aggregates: list[str | None] = []
        space_days: set[tuple[str, int]] = set()
        for space, hour in sorted(space_hours):
            aggregates.append(self._space_hour_line(space, hour))
            space_days.add((space, self._day(hour)))
        days: set[int] = set()
        for device_id, day in sorted(device_days):
            device = self._registry.get(device_id)
            assert device is not None
            lines += self._device_day_lines(device, day)
            space_days.add((device.space, day))
            days.add(day)
        for space, day in sorted(space_days):
            aggregates.append(self._space_day_line(space, day))
            days.add(day)
        aggregates += [self._impact_day_line(day) for day in sorted(days)]
        lines += [line for line in aggregates if line is not None]
        for device_id in advance:
            # Keep the window, plus enough earlier readings for an interval or a median.
            raw = self._raw[device_id]
            raw.drop_first(raw.index(self._advance_horizon(device_id)) - SPAN - 1)
        self._prune()
        floor = self._floor_ms
        if floor is not None:
            lines = [line for line in lines if int(line.rsplit(" ", 1)[1]) >= floor]
        if write and lines:
            self._write(lines)
            self.written += len(lines)
        return len(lines) if write else 0

    def _prune(self) -> None:
        newest = max(self._newest.values(), default=0)
        oldest = newest - self._keep_ms
        for caches in (self._energy, self._counts, self._spaces, self._emptyings):
            for cache in caches.values():
                for key in [k for k in cache if k < oldest]:
                    del cache[key]
        for day in [d for d in self._open_cache if d < oldest]:
            del self._open_cache[day]

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
        cache = self._energy.setdefault(device.id, {})
        done: list[int] = []
        for h in hourly_kwh(counter, max_gap_s=max(3600.0, 3 * device.expected_interval_s)):
            if h.hour_ms < start:
                continue
            j = bisect.bisect_left(part, h.hour_ms)
            k = bisect.bisect_left(part, h.hour_ms + HOUR_MS)
            powers = [p for x in range(i + j, i + k) if (p := raw.secondary_at(x)) is not None]
            factor = self._factor(device, h.hour_ms)
            cache[h.hour_ms] = EnergyHour(
                kwh=h.kwh,
                kgco2e=None if factor is None else h.kwh * factor,
                factor=factor,
                interpolated=h.interpolated,
                resets=h.resets,
                power_sum=sum(powers),
                power_n=len(powers),
                power_peak=max(powers) if powers else None,
            )
            done.append(h.hour_ms)
        return done

    def _energy_line(self, device: CounterMeter, hour: int) -> str:
        e = self._energy[device.id][hour]
        kind = COUNTERS[type(device)]
        fields: dict[str, FieldValue] = {
            kind.amount: _r(e.kwh),
            "interpolated": e.interpolated,
            "resets": e.resets,
            "readings": e.power_n,
        }
        if e.power_n:
            fields[kind.rate_mean] = _r(e.power_sum / e.power_n, 3)
            fields[kind.rate_peak] = e.power_peak or 0.0
        if e.kgco2e is not None and e.factor is not None:
            fields["kgco2e"] = _r(e.kgco2e)
            fields["factor_kg_per_kwh"] = _r(e.factor)
        return format_line(series_key(kind.hourly, device_tags(self._site, device)), fields, hour)

    # --- waste -------------------------------------------------------------------------------

    def _bin_emptyings(
        self, device: WasteBin, raw: Series, horizon: int
    ) -> list[tuple[WasteBin, Emptying, bool]]:
        fills = list(zip(raw.times, raw.primary, strict=True))
        found = {e.time_ms: e for e in detect_emptyings(fills) if e.time_ms >= horizon}
        cache = self._emptyings.setdefault(device.id, {})
        changes: list[tuple[WasteBin, Emptying, bool]] = []
        for t, e in found.items():
            if cache.get(t) != e:
                cache[t] = e
                changes.append((device, e, False))
        for t in [t for t in cache if t >= horizon and t not in found]:
            # A later reading showed this was no emptying (say, two false echoes in a row):
            # the stored point is overwritten as retracted, with nothing collected.
            changes.append((device, cache.pop(t), True))
        return changes

    def _bin_flags(self, device: WasteBin, e: Emptying) -> tuple[bool, bool]:
        full = device.thresholds.get("fill_full_pct", OVERFLOW_PCT)
        return e.fill_before_pct < TOO_EARLY_PCT, e.fill_before_pct >= full

    def _emptying_line(self, device: WasteBin, e: Emptying, retracted: bool) -> str:
        early, late = self._bin_flags(device, e)
        volume = device.volume_l or 0.0
        fields: dict[str, FieldValue] = {
            "fill_before_pct": _r(e.fill_before_pct, 2),
            "fill_after_pct": _r(e.fill_after_pct, 2),
            "volume_l": 0.0 if retracted else _r(e.volume_l(volume), 3),
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
        cached = self._spaces.get(space, {}).get(hour)
        if sensors and any(hour < self._horizon(d.id) for d in sensors):
            # Its readings are gone from the window: keep what was computed while they were here.
            if cached is not None:
                fields.update(_space_fields([cached]))
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
            self._spaces.setdefault(space, {})[hour] = sh
            fields.update(_space_fields([sh]))
        fields.update(self._space_energy(space, hour, hour + HOUR_MS))
        key = series_key(SPACE_HOURLY, {SITE_TAG: self._site, SPACE_TAG: space})
        return format_line(key, fields, hour) if fields else None

    def _space_energy(self, space: str, start: int, end: int) -> dict[str, FieldValue]:
        sums: dict[str, float] = {}
        for d in self._space_devices.get(space, ()):
            if not isinstance(d, EnergyMeter):
                continue
            prefix = {SUPPLY_ROLE: "supply_", PV_ROLE: "pv_"}.get(d.role or "", "")
            for hour, e in self._energy.get(d.id, {}).items():
                if start <= hour < end:
                    sums[prefix + "kwh"] = sums.get(prefix + "kwh", 0.0) + e.kwh
                    if e.kgco2e is not None:
                        key = prefix + "kgco2e"
                        sums[key] = sums.get(key, 0.0) + e.kgco2e
        return {k: _r(v) for k, v in sums.items()}

    # --- days --------------------------------------------------------------------------------

    def _day(self, ms: int) -> int:
        return local_day(ms, self._tz)

    def _day_end(self, day: int) -> int:
        return next_day(day, self._tz)

    def _device_day_lines(self, device: AnyDevice, day: int) -> list[str]:
        end = self._day_end(day)
        tags = device_tags(self._site, device)
        lines: list[str] = []
        readings = sum(n for h, n in self._counts.get(device.id, {}).items() if day <= h < end)
        expected = (end - day) / 1000 / device.expected_interval_s
        lines.append(
            format_line(
                series_key(DEVICE_DAILY, tags),
                {"readings": readings, "expected": _r(expected, 1),
                 "completeness_pct": _r(min(100.0, 100 * readings / expected), 2)},
                day,
            )
        )  # fmt: skip
        if isinstance(device, CounterMeter):
            hours = [e for h, e in self._energy.get(device.id, {}).items() if day <= h < end]
            if hours:
                kind = COUNTERS[type(device)]
                lines.append(
                    format_line(series_key(kind.daily, tags), _energy_day(hours, kind), day)
                )
        elif isinstance(device, WasteBin):
            fields = self._waste_day(device, day, end)
            lines.append(format_line(series_key(WASTE_DAILY, tags), fields, day))
        return lines

    def _waste_day(self, device: WasteBin, day: int, end: int) -> dict[str, FieldValue]:
        events = [e for t, e in self._emptyings.get(device.id, {}).items() if day <= t < end]
        flags = [self._bin_flags(device, e) for e in events]
        return {
            "emptyings": len(events),
            "volume_l": _r(sum(e.volume_l(device.volume_l or 0.0) for e in events), 3),
            "too_early": sum(early for early, _ in flags),
            "too_late": sum(late for _, late in flags),
        }

    def _space_day_line(self, space: str, day: int) -> str | None:
        end = self._day_end(day)
        hours = [sh for h, sh in self._spaces.get(space, {}).items() if day <= h < end]
        fields: dict[str, FieldValue] = _space_fields(hours) if hours else {}
        if hours:
            # Opening hours of the whole day, also for hours no reading has reached yet.
            fields["open_s"] = _r(self._open_s(day, end), 1)
            fields["utilisation_pct"] = (
                _r(100 * _num0(fields["occupied_open_s"]) / _num0(fields["open_s"]), 2)
                if fields["open_s"]
                else 0.0
            )
        fields.update(self._space_energy(space, day, end))
        key = series_key(SPACE_DAILY, {SITE_TAG: self._site, SPACE_TAG: space})
        return format_line(key, fields, day) if fields else None

    def _open_s(self, day: int, end: int) -> float:
        cached = self._open_cache.get(day)
        if cached is None:
            spans = (open_intervals(self._impact, self._tz, h) for h in range(day, end, HOUR_MS))
            cached = self._open_cache[day] = sum(hi - lo for s in spans for lo, hi in s) / 1000
        return cached

    def _heat_water_day(self, day: int, end: int) -> dict[str, FieldValue]:
        """The building's district heat (kWh, kgCO2e) and water (m³) of a day."""
        heat = [d for d in self._registry if isinstance(d, HeatMeter)]
        water = [d for d in self._registry if isinstance(d, WaterMeter)]
        fields: dict[str, FieldValue] = {}
        for prefix, ids, unit in (
            ("heat", _supply(heat, HEAT_SUPPLY_ROLE), "kwh"),
            ("water", _supply(water, SUPPLY_ROLE), "m3"),
        ):
            hours = [e for d in ids for h, e in self._energy.get(d, {}).items() if day <= h < end]
            if hours:
                fields[f"{prefix}_{unit}"] = _r(sum(e.kwh for e in hours))
                co2 = [e.kgco2e for e in hours if e.kgco2e is not None]
                if co2:
                    fields[f"{prefix}_kgco2e"] = _r(sum(co2))
        return fields

    def _impact_day_line(self, day: int) -> str | None:
        end = self._day_end(day)
        fields: dict[str, FieldValue] = {}
        fields.update(self._heat_water_day(day, end))
        meters = [d for d in self._registry if isinstance(d, EnergyMeter)]
        supply = [d for d in meters if d.role == SUPPLY_ROLE] or [
            d for d in meters if d.role != PV_ROLE
        ]
        for name, group in (("supply", supply), ("pv", [d for d in meters if d.role == PV_ROLE])):
            hours = [
                e for d in group for h, e in self._energy.get(d.id, {}).items() if day <= h < end
            ]
            if hours:
                fields[f"{name}_kwh"] = _r(sum(e.kwh for e in hours))
                co2 = [e.kgco2e for e in hours if e.kgco2e is not None]
                if co2 and name == "supply":
                    fields["kgco2e"] = _r(sum(co2))
        waste = sorted_l = 0.0
        counts = {"emptyings": 0, "too_early": 0, "too_late": 0}
        for d in self._registry:
            if isinstance(d, WasteBin):
                w = self._waste_day(d, day, end)
                waste += _num0(w["volume_l"])
                if d.fraction != WasteFraction.MIXED:
                    sorted_l += _num0(w["volume_l"])
                for k in counts:
                    counts[k] += int(_num0(w[k]))
        if any(isinstance(d, WasteBin) for d in self._registry):
            fields.update(waste_l=_r(waste, 3), sorted_l=_r(sorted_l, 3), **counts)
            if waste > 0:
                fields["sorting_rate_pct"] = _r(100 * sorted_l / waste, 2)
        spaces = [hs for hs in (
            [sh for h, sh in per.items() if day <= h < end] for per in self._spaces.values()
        ) if hs]  # fmt: skip
        if spaces:
            open_s = self._open_s(day, end)
            occupied_open = sum(sh.occupied_open_s for hs in spaces for sh in hs)
            fields["occupied_h"] = _r(sum(sh.occupied_s for hs in spaces for sh in hs) / 3600, 3)
            fields["open_h"] = _r(open_s / 3600, 3)
            if open_s:
                fields["utilisation_pct"] = _r(100 * occupied_open / (open_s * len(spaces)), 2)
        key = series_key(IMPACT_DAILY, {SITE_TAG: self._site})
        return format_line(key, fields, day) if fields else None


def _supply(meters: list[HeatMeter] | list[WaterMeter], role: str) -> list[str]:
    """The meters that measure the whole building: those with the supply role, else all."""
    return [d.id for d in meters if d.role == role] or [d.id for d in meters]


def _space_fields(hours: list[SpaceHour]) -> dict[str, FieldValue]:
    def total(name: str) -> float:
        return float(sum(getattr(sh, name) for sh in hours))

    measured, measured_open = total("measured_s"), total("measured_open_s")
    occupied_co2, good = total("co2_occupied_s"), total("co2_good_s")
    fields: dict[str, FieldValue] = {
        name: _r(total(name), 1)
        for name in ("open_s", "measured_s", "occupied_s", "occupied_open_s", "people_s",
                     "measured_open_s", "people_open_s", "co2_occupied_s", "co2_good_s")
    }  # fmt: skip
    fields["people_peak"] = max(sh.people_peak for sh in hours)
    if measured:
        fields["people_mean"] = _r(total("people_s") / measured, 3)
    if measured_open:
        fields["people_mean_open"] = _r(total("people_open_s") / measured_open, 3)
    if occupied_co2:
        fields["co2_good_pct"] = _r(100 * good / occupied_co2, 2)
    return fields


def _energy_day(hours: list[EnergyHour], kind: CounterKind) -> dict[str, FieldValue]:
    n = sum(e.power_n for e in hours)
    fields: dict[str, FieldValue] = {
        kind.amount: _r(sum(e.kwh for e in hours)),
        "hours": len(hours),
        "interpolated_h": sum(e.interpolated for e in hours),
        "resets": sum(e.resets for e in hours),
        "readings": n,
    }
    if n:
        fields[kind.rate_mean] = _r(sum(e.power_sum for e in hours) / n, 3)
        fields[kind.rate_peak] = max(e.power_peak for e in hours if e.power_peak is not None)
    co2 = [e.kgco2e for e in hours if e.kgco2e is not None]
    if co2:
        fields["kgco2e"] = _r(sum(co2))
    return fields


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _num0(v: FieldValue) -> float:
    return float(v) if isinstance(v, int | float) else 0.0


def _hour(ms: int) -> int:
    return ms - ms % HOUR_MS
