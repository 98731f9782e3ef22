"""Rollups that outlast the raw readings: hourly and daily energy, emissions, waste emptyings,
space use and data completeness, computed in the pipeline so they work the same on every
InfluxDB version (docs/impact.md)."""

from devices.contract import (
    DEVICE_DAILY,
    ENERGY_DAILY,
    ENERGY_HOURLY,
    IMPACT_DAILY,
    ROLLUP_MEASUREMENTS,
    SPACE_DAILY,
    SPACE_HOURLY,
    WASTE_DAILY,
    WASTE_EMPTYING,
)

from ._calendar import day_bounds, parse_week, week_bounds, week_of
from ._energy import HOUR_MS, emissions_kg, hourly_kwh
from ._engine import Rollups
from ._factors import EmissionFactors, FactorFileError, parse_factor_csv
from ._kinds import LAG_READINGS, LAG_ROLLUPS, hours_behind, qualified
from ._repair import Repair
from ._storage import (
    InfluxReadings,
    RollupKey,
    StoredReadings,
    load_readings,
    read_rollups,
    recompute,
    repair_late,
)
from ._waste import Emptying, detect_emptyings

__all__ = [
    "DEVICE_DAILY",
    "ENERGY_DAILY",
    "ENERGY_HOURLY",
    "HOUR_MS",
    "IMPACT_DAILY",
    "LAG_READINGS",
    "LAG_ROLLUPS",
    "ROLLUP_MEASUREMENTS",
    "SPACE_DAILY",
    "SPACE_HOURLY",
    "WASTE_DAILY",
    "WASTE_EMPTYING",
    "EmissionFactors",
    "Emptying",
    "FactorFileError",
    "InfluxReadings",
    "Repair",
    "RollupKey",
    "Rollups",
    "StoredReadings",
    "day_bounds",
    "detect_emptyings",
    "emissions_kg",
    "hourly_kwh",
    "hours_behind",
    "load_readings",
    "parse_factor_csv",
    "parse_week",
    "qualified",
    "read_rollups",
    "recompute",
    "repair_late",
    "week_bounds",
    "week_of",
]
