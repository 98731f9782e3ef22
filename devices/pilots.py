"""Pilots as data: what a partner tried, where, from when, and what it should change.

A pilot is part of the site file (`pilots:`), so the same registry that tags readings also
says which spaces and devices a pilot covers. The definitions are checked here (periods) and
against the site (`check_against`: references, and whether the scope has a device that measures
each metric). The methods that estimate a pilot's effect live in `pilots/` (docs/pilots.md).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Annotated, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

PilotId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]

# A baseline shorter than two weeks cannot tell a pilot's effect from which weekdays it saw.
MIN_BASELINE_DAYS = 14
# The default baseline: the eight weeks before the intervention starts.
DEFAULT_BASELINE_DAYS = 56


class Metric(enum.StrEnum):
    """What a pilot is judged on; each is a daily series from the impact rollups."""

    ELECTRICITY_KWH = "electricity_kwh"
    HEAT_KWH = "heat_kwh"
    KGCO2E = "kgco2e"
    SORTING_RATE_PCT = "sorting_rate_pct"
    MIXED_WASTE_L = "mixed_waste_l"
    OCCUPIED_H = "occupied_h"
    UTILISATION_PCT = "utilisation_pct"
    GOOD_AIR_PCT = "good_air_pct"

    @property
    def energy(self) -> bool:
        """Judged against a weather-normalised baseline (IPMVP Option B/C, CalTRACK daily)."""
        return self in (Metric.ELECTRICITY_KWH, Metric.HEAT_KWH, Metric.KGCO2E)


# The device kinds in a pilot's scope that can measure each metric.
METRIC_KINDS: dict[Metric, frozenset[str]] = {
    Metric.ELECTRICITY_KWH: frozenset({"energy_meter"}),
    Metric.HEAT_KWH: frozenset({"heat_meter"}),
    Metric.KGCO2E: frozenset({"energy_meter", "heat_meter"}),
    Metric.SORTING_RATE_PCT: frozenset({"waste_bin"}),
    Metric.MIXED_WASTE_L: frozenset({"waste_bin"}),
    Metric.OCCUPIED_H: frozenset({"occupancy"}),
    Metric.UTILISATION_PCT: frozenset({"occupancy"}),
    Metric.GOOD_AIR_PCT: frozenset({"occupancy"}),
}


class Period(BaseModel):
    """Whole local days, both ends included."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    spaces: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _something(self) -> Scope:
        if not self.spaces and not self.devices:
            raise ValueError("a pilot's scope names at least one space or device")
        return self


class Pilot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: PilotId
    title: str = Field(min_length=1, max_length=200)
    partner: str = Field(min_length=1, max_length=200)
    description: str = ""
    scope: Scope
    metrics: tuple[Metric, ...] = Field(min_length=1)
    start: date = Field(description="the first day of the intervention")
    end: date | None = Field(None, description="its last day; none while it runs")
    baseline: Period | None = Field(
        None, description=f"default: the {DEFAULT_BASELINE_DAYS // 7} weeks before start"
    )
    control_spaces: tuple[str, ...] = Field(
        (), description="spaces like the scope's but without the intervention"
    )
    expected_effect_pct: float | None = Field(
        None, description="what the partner expects, in percent (or points for rates)"
    )

    @model_validator(mode="after")
    def _periods(self) -> Pilot:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"pilot {self.id!r}: end {self.end} is before start {self.start}")
        base = self.baseline_period
        if base.end >= self.start:
            raise ValueError(
                f"pilot {self.id!r}: the baseline ({base.start}..{base.end}) must end before "
                f"the intervention starts ({self.start})"
            )
        if base.days < MIN_BASELINE_DAYS:
            raise ValueError(
                f"pilot {self.id!r}: a baseline of {base.days} days is too short; give at least "
                f"{MIN_BASELINE_DAYS} so that every weekday is seen twice"
            )
        overlap = set(self.control_spaces) & set(self.scope.spaces)
        if overlap:
            raise ValueError(
                f"pilot {self.id!r}: {', '.join(sorted(overlap))} cannot be both in the scope "
                "and a control space"
            )
        return self

    @property
    def baseline_period(self) -> Period:
        if self.baseline is not None:
            return self.baseline
        return Period(
            start=self.start - timedelta(days=DEFAULT_BASELINE_DAYS),
            end=self.start - timedelta(days=1),
        )

    def reporting_period(self, today: date) -> Period | None:
        """From the start to the end, or to yesterday while the pilot runs; None before."""
        last = min(self.end, today - timedelta(days=1)) if self.end else today - timedelta(days=1)
        if last < self.start:
            return None
        return Period(start=self.start, end=last)


class _Device(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def space(self) -> str: ...


D = TypeVar("D", bound=_Device)


def scope_devices(pilot: Pilot, devices: Iterable[D]) -> list[D]:
    """The devices a pilot covers: those named, and every device in a named space."""
    spaces, named = set(pilot.scope.spaces), set(pilot.scope.devices)
    return [d for d in devices if d.id in named or d.space in spaces]


def check_against(pilots: Iterable[Pilot], devices: Iterable[_Device]) -> None:
    """Raise ValueError naming the pilot and what is wrong: unknown ids, spaces or devices,
    metrics nothing in the scope measures, energy metrics without outdoor temperature."""
    devices = list(devices)
    spaces = {d.space for d in devices}
    ids = {d.id for d in devices}
    has_weather = any(d.kind == "weather_station" for d in devices)
    seen: set[str] = set()
    for pilot in pilots:
        where = f"pilot {pilot.id!r}"
        if pilot.id in seen:
            raise ValueError(f"{where} appears more than once; give each pilot its own id")
        seen.add(pilot.id)
        for space in (*pilot.scope.spaces, *pilot.control_spaces):
            if space not in spaces:
                known = ", ".join(sorted(spaces))
                raise ValueError(f"{where}: no device is in space {space!r} (spaces: {known})")
        for device_id in pilot.scope.devices:
            if device_id not in ids:
                raise ValueError(f"{where}: no device {device_id!r} on this site")
        kinds = {d.kind for d in scope_devices(pilot, devices)}
        for metric in pilot.metrics:
            if not kinds & METRIC_KINDS[metric]:
                wanted = " or ".join(sorted(METRIC_KINDS[metric]))
                raise ValueError(
                    f"{where}: {metric.value} needs a device of kind {wanted} in the scope; it has "
                    f"{', '.join(sorted(kinds)) or 'no devices'}"
                )
            if metric.energy and not has_weather:
                raise ValueError(
                    f"{where}: {metric.value} is judged against a weather-normalised baseline, "
                    "which needs outdoor temperature: add a weather_station to the site"
                )


class FmiStation(BaseModel):
    """An FMI open-data weather station that stands in for the site's own on days it has no
    temperature (pilots/fmi.py). Name it by FMI station id or by a place, for which FMI picks
    the nearest station."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fmisid: int | None = Field(None, gt=0, description="FMI station id (FMI's station list)")
    place: str | None = Field(
        None, min_length=1, max_length=100, description="a place name; FMI's nearest station"
    )
    url: str = Field(
        "https://opendata.fmi.fi/wfs",
        pattern=r"^https?://",
        description="FMI's WFS endpoint; a proxy's in a closed network",
    )

    @model_validator(mode="after")
    def _one(self) -> FmiStation:
        if (self.fmisid is None) == (self.place is None):
            raise ValueError("weather.fmi names either fmisid or place, not both or neither")
        return self


class Weather(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    fmi: FmiStation | None = Field(
        None, description="FMI open data for days without the site's own weather readings"
    )
