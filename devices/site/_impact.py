"""What the impact rollups need from a site: emission factors with their sources and the
opening hours space use is measured against (docs/impact.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from devices.factor_source import (
    ELECTRICITY_HOW_TO,
    GRID_FIELD,
    HEAT_FIELD,
    HEAT_HOW_TO,
    Factor,
    FactorSource,
    refuse_plain_text,
)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HoursText = Annotated[
    str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")
]


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class Impact(BaseModel):
    """The site file's `impact` section (docs/impact.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    emission_factor_kg_per_kwh: float | None = Field(
        None,
        ge=0,
        le=2,
        description="grid electricity, kgCO2e per kWh; the factor for hours the CSV series "
        "does not cover; with neither, no emissions are computed",
    )
    emission_factors_csv: str | None = Field(
        None,
        description="an hourly factor series, CSV with columns time (ISO 8601 with offset, or "
        "epoch seconds) and kg_per_kwh; a relative path is read from the site file's folder",
    )
    emission_factor_source: FactorSource | None = Field(
        None,
        description="where the factor comes from (devices/factor_source.py): a publication "
        "(publisher, year, where) or an example; stated in reports, required with a factor",
    )
    heat_emission_factor_kg_per_kwh: float | None = Field(
        None,
        ge=0,
        le=2,
        description="district heat, kgCO2e per kWh delivered (the heat supplier's published "
        "figure); without it, heat is counted in kWh but no emissions",
    )
    heat_emission_factor_source: FactorSource | None = Field(
        None, description="where the heat factor comes from, as emission_factor_source; required"
    )
    opening_hours: dict[Weekday, HoursText] = Field(
        default_factory=dict,
        description="local opening hours per weekday, e.g. {mon: '08:00-20:00'}; a day not "
        "listed is closed; the base of space utilisation",
    )

    @field_validator("emission_factor_source", "heat_emission_factor_source", mode="before")
    @classmethod
    def _source_has_a_kind(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_plain_text(value, str(info.field_name))

    def factors(self) -> list[Factor]:
        """The factors emissions are computed with, electricity first; none without a factor."""
        out = []
        grid, source = self.emission_factor_kg_per_kwh, self.emission_factor_source
        if source is not None and (grid is not None or self.emission_factors_csv):
            value = "an hourly series" if self.emission_factors_csv else ""
            if grid is not None:
                value = f"{value}, else {grid:g} kg/kWh" if value else f"{grid:g} kg/kWh"
            out.append(Factor("electricity", GRID_FIELD, value, source, ELECTRICITY_HOW_TO))
        heat, heat_source = self.heat_emission_factor_kg_per_kwh, self.heat_emission_factor_source
        if heat_source is not None and heat is not None:
            out.append(
                Factor("district heat", HEAT_FIELD, f"{heat:g} kg/kWh", heat_source, HEAT_HOW_TO)
            )
        return out

    def example_notices(self) -> list[str]:
        """One sentence per factor that is an example, not a publication: what it is used for
        and how to set a real one."""
        return [
            f"The {f.energy} emissions use an example emission factor ({f.value}), not a "
            f"published statistic: {f.how_to}."
            for f in self.factors()
            if f.source.example
        ]

    @model_validator(mode="after")
    def _factor_has_source(self) -> Impact:
        factor = self.emission_factor_kg_per_kwh is not None or self.emission_factors_csv
        if factor and not self.emission_factor_source:
            raise ValueError("an emission factor needs emission_factor_source, named in reports")
        if (
            self.heat_emission_factor_kg_per_kwh is not None
            and not self.heat_emission_factor_source
        ):
            raise ValueError(
                "heat_emission_factor_kg_per_kwh needs heat_emission_factor_source (for reports)"
            )
        for day, hours in self.opening_hours.items():
            start, end = hours.split("-")
            if _minutes(start) >= _minutes(end):
                raise ValueError(f"opening_hours {day}: {hours!r} must open before it closes")
        return self

    def open_minutes(self, weekday: int) -> tuple[int, int] | None:
        """(opens, closes) in minutes after local midnight for weekday 0=Monday, or None."""
        hours = self.opening_hours.get(WEEKDAYS[weekday])
        if hours is None:
            return None
        start, end = hours.split("-")
        return _minutes(start), _minutes(end)
