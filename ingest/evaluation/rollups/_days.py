"""The daily points: per device (completeness, energy, waste), per space and for the site.

Built from the hourly state the engine keeps (`Rollups`), never from raw readings, so a day is
always the sum of its hours, also once its readings have left the window.
"""

from __future__ import annotations

from typing import TypeVar
from zoneinfo import ZoneInfo

from devices import AnyDevice, Registry
from devices.contract import (
    DEVICE_DAILY,
    HEAT_SUPPLY_ROLE,
    IMPACT_DAILY,
    PV_ROLE,
    SITE_TAG,
    SPACE_DAILY,
    SPACE_TAG,
    SUPPLY_ROLE,
    WASTE_DAILY,
)
from devices.factor_source import GRID_FIELD, HEAT_FIELD, FactorSource
from devices.site import EnergyMeter, HeatMeter, Impact, WasteBin, WasteFraction, WaterMeter
from ingest.reading import FieldValue
from ingest.storage.lineproto import device_tags, format_line, series_key

from ._calendar import local_day, next_day
from ._energy import HOUR_MS
from ._hours import Hours
from ._kinds import (
    COUNTERS,
    CounterMeter,
    EnergyHour,
    energy_day,
    num0,
    rounded,
    space_fields,
    supply_ids,
)
from ._space import SpaceHour, open_intervals
from ._waste import Emptying

T = TypeVar("T")


def _provenance(prefix: str, source: FactorSource | None) -> dict[str, FieldValue]:
    """What the day's emissions were computed with, stored beside them: the Impact dashboard
    and the weekly report show whether a figure rests on an example factor, also after the
    site file has changed."""
    if source is None:
        return {}
    return {f"{prefix}_source": source.label(), f"{prefix}_example": source.example}


class Days:
    """The daily half of `Rollups`, which inherits it; the state below is the engine's."""

    _registry: Registry
    _site: str
    _impact: Impact
    _tz: ZoneInfo
    _open_cache: dict[int, float]
    _impact_tags: dict[str, str]
    _energy: dict[str, Hours[EnergyHour]]
    _counts: dict[str, Hours[int]]
    _spaces: dict[str, Hours[SpaceHour]]
    _emptyings: dict[str, dict[int, Emptying]]

    def _bin_flags(self, device: WasteBin, e: Emptying) -> tuple[bool, bool]:
        raise NotImplementedError

    def _space_energy(self, space: str, start: int, end: int) -> dict[str, FieldValue]:
        raise NotImplementedError

    @staticmethod
    def _hours(caches: dict[str, Hours[T]], key: str, start: int, end: int) -> list[T]:
        """The computed hours of `key` (a device or space) in [start, end)."""
        hours = caches.get(key)
        return [] if hours is None else hours.values(start, end)

    def _day(self, ms: int) -> int:
        return local_day(ms, self._tz)

    def _day_end(self, day: int) -> int:
        return next_day(day, self._tz)

    def _device_day_lines(self, device: AnyDevice, day: int) -> list[str]:
        end = self._day_end(day)
        tags = device_tags(self._site, device)
        lines: list[str] = []
        readings = sum(self._hours(self._counts, device.id, day, end))
        expected = (end - day) / 1000 / device.expected_interval_s
        lines.append(
            format_line(
                series_key(DEVICE_DAILY, tags),
                {"readings": readings, "expected": rounded(expected, 1),
                 "completeness_pct": rounded(min(100.0, 100 * readings / expected), 2)},
                day,
            )
        )  # fmt: skip
        if isinstance(device, CounterMeter):
            hours = self._hours(self._energy, device.id, day, end)
            if hours:
                kind = COUNTERS[type(device)]
                lines.append(
                    format_line(series_key(kind.daily, tags), energy_day(hours, kind), day)
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
            "volume_l": rounded(sum(e.volume_l(device.volume_l or 0.0) for e in events), 3),
            "too_early": sum(early for early, _ in flags),
            "too_late": sum(late for _, late in flags),
        }

    def _space_day_line(self, space: str, day: int) -> str | None:
        end = self._day_end(day)
        hours = self._hours(self._spaces, space, day, end)
        fields: dict[str, FieldValue] = space_fields(hours) if hours else {}
        if hours:
            # Opening hours of the whole day, also for hours no reading has reached yet.
            fields["open_s"] = rounded(self._open_s(day, end), 1)
            fields["utilisation_pct"] = (
                rounded(100 * num0(fields["occupied_open_s"]) / num0(fields["open_s"]), 2)
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
            ("heat", supply_ids(heat, HEAT_SUPPLY_ROLE), "kwh"),
            ("water", supply_ids(water, SUPPLY_ROLE), "m3"),
        ):
            hours = [e for d in ids for e in self._hours(self._energy, d, day, end)]
            if hours:
                fields[f"{prefix}_{unit}"] = rounded(sum(e.kwh for e in hours))
                co2 = [e.kgco2e for e in hours if e.kgco2e is not None]
                if co2:
                    fields[f"{prefix}_kgco2e"] = rounded(sum(co2))
                    if prefix == "heat":
                        fields.update(
                            _provenance(HEAT_FIELD, self._impact.heat_emission_factor_source)
                        )
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
            hours = [e for d in group for e in self._hours(self._energy, d.id, day, end)]
            if hours:
                fields[f"{name}_kwh"] = rounded(sum(e.kwh for e in hours))
                co2 = [e.kgco2e for e in hours if e.kgco2e is not None]
                if co2 and name == "supply":
                    fields["kgco2e"] = rounded(sum(co2))
                    fields.update(_provenance(GRID_FIELD, self._impact.emission_factor_source))
        waste = sorted_l = 0.0
        counts = {"emptyings": 0, "too_early": 0, "too_late": 0}
        for d in self._registry:
            if isinstance(d, WasteBin):
                w = self._waste_day(d, day, end)
                waste += num0(w["volume_l"])
                if d.fraction != WasteFraction.MIXED:
                    sorted_l += num0(w["volume_l"])
                for k in counts:
                    counts[k] += int(num0(w[k]))
        if any(isinstance(d, WasteBin) for d in self._registry):
            fields.update(waste_l=rounded(waste, 3), sorted_l=rounded(sorted_l, 3), **counts)
            if waste > 0:
                fields["sorting_rate_pct"] = rounded(100 * sorted_l / waste, 2)
        spaces = [hs for hs in (per.values(day, end) for per in self._spaces.values()) if hs]
        if spaces:
            open_s = self._open_s(day, end)
            occupied_open = sum(sh.occupied_open_s for hs in spaces for sh in hs)
            fields["occupied_h"] = rounded(
                sum(sh.occupied_s for hs in spaces for sh in hs) / 3600, 3
            )
            fields["open_h"] = rounded(open_s / 3600, 3)
            if open_s:
                fields["utilisation_pct"] = rounded(100 * occupied_open / (open_s * len(spaces)), 2)
        key = series_key(IMPACT_DAILY, self._impact_tags)
        return format_line(key, fields, day) if fields else None
