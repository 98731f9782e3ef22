"""Rollups that outlast the raw readings: hourly and daily energy, emissions, waste emptyings,
space use and data completeness, computed in the pipeline so they work the same on every
InfluxDB version (docs/impact.md)."""

from ._calendar import day_bounds, local_day, parse_week, week_bounds, week_of
from ._energy import HOUR_MS, HourEnergy, emissions_kg, hourly_kwh
from ._engine import (
    DEVICE_DAILY,
    ENERGY_DAILY,
    ENERGY_HOURLY,
    IMPACT_DAILY,
    ROLLUP_MEASUREMENTS,
    SPACE_DAILY,
    SPACE_HOURLY,
    WASTE_DAILY,
    WASTE_EMPTYING,
    Rollups,
    qualified,
)
from ._factors import EmissionFactors, FactorFileError, parse_factor_csv
from ._space import CO2_GOOD_PPM, SpaceHour, open_intervals, space_hour
from ._storage import load_readings, recompute
from ._waste import MIN_DROP_PCT, TOO_EARLY_PCT, Emptying, detect_emptyings

__all__ = [
    "CO2_GOOD_PPM",
    "DEVICE_DAILY",
    "ENERGY_DAILY",
    "ENERGY_HOURLY",
    "HOUR_MS",
    "IMPACT_DAILY",
    "MIN_DROP_PCT",
    "ROLLUP_MEASUREMENTS",
    "SPACE_DAILY",
    "SPACE_HOURLY",
    "TOO_EARLY_PCT",
    "WASTE_DAILY",
    "WASTE_EMPTYING",
    "EmissionFactors",
    "Emptying",
    "FactorFileError",
    "HourEnergy",
    "Rollups",
    "SpaceHour",
    "day_bounds",
    "detect_emptyings",
    "emissions_kg",
    "hourly_kwh",
    "load_readings",
    "local_day",
    "open_intervals",
    "parse_factor_csv",
    "parse_week",
    "qualified",
    "recompute",
    "space_hour",
    "week_bounds",
    "week_of",
]
