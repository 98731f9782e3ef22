"""What the rollup engine computes with: the meters rolled up from a cumulative counter, an hour
of such a meter, the fields read from the readings, and the arithmetic shared by hours and days."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from devices.contract import (
    ENERGY_DAILY,
    ENERGY_HOURLY,
    HEAT_DAILY,
    HEAT_HOURLY,
    KINDS,
    SPACE_HOURLY,
    WATER_DAILY,
    WATER_HOURLY,
)
from devices.site import EnergyMeter, HeatMeter, OccupancySensor, WasteBin, WaterMeter
from ingest.reading import FieldValue, Reading
from ingest.storage import influxql

from ._energy import HOUR_MS
from ._space import SpaceHour

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

# The fields the rollups read, per measurement: the counters' and, beside them, occupancy and
# fill level. A recompute from InfluxDB asks for these and nothing else.
READ_FIELDS: Final = {
    **{KINDS[kind].measurement: (c.counter, c.rate) for kind, c in (
        ("energy_meter", COUNTERS[EnergyMeter]), ("heat_meter", COUNTERS[HeatMeter]),
        ("water_meter", COUNTERS[WaterMeter]),
    )},
    KINDS["occupancy"].measurement: ("people", "co2_ppm"),
    KINDS["waste_bin"].measurement: ("fill_pct",),
}  # fmt: skip

OVERFLOW_PCT = 95.0  # "too late" when a bin has no fill_full_pct threshold of its own

Values = tuple[float | None, float | None]


def qualified(measurement: str, rp: str | None = None) -> str:
    """The measurement as InfluxQL names it, in retention policy `rp` (KERA_ROLLUPS_RP)."""
    return influxql.measurement(measurement, rp)


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

    def pack(self) -> tuple[float, ...]:
        """As a row of `Hours` (None as NaN)."""
        return (
            self.kwh, nan_for(self.kgco2e), nan_for(self.factor), float(self.interpolated),
            float(self.resets), self.power_sum, float(self.power_n), nan_for(self.power_peak),
        )  # fmt: skip

    @staticmethod
    def unpack(_hour: int, row: Sequence[float]) -> EnergyHour:
        kwh, co2, factor, interpolated, resets, power_sum, power_n, peak = row
        return EnergyHour(
            kwh, none_for(co2), none_for(factor), bool(interpolated), int(resets), power_sum,
            int(power_n), none_for(peak),
        )  # fmt: skip


def nan_for(x: float | None) -> float:
    return math.nan if x is None else x


def none_for(x: float) -> float | None:
    return None if math.isnan(x) else x


def count_of(_hour: int, row: Sequence[float]) -> int:
    return int(row[0])


def rounded(x: float, digits: int = 6) -> float:
    # Always a float: a sum over nothing is int 0, and "0i" would set the field's type to
    # integer in InfluxDB and make every later float write of it fail.
    return float(round(x, digits))


def supply_ids(meters: list[HeatMeter] | list[WaterMeter], role: str) -> list[str]:
    """The meters that measure the whole building: those with the supply role, else all."""
    return [d.id for d in meters if d.role == role] or [d.id for d in meters]


def space_fields(hours: list[SpaceHour]) -> dict[str, FieldValue]:
    def total(name: str) -> float:
        return float(sum(getattr(sh, name) for sh in hours))

    measured, measured_open = total("measured_s"), total("measured_open_s")
    occupied_co2, good = total("co2_occupied_s"), total("co2_good_s")
    fields: dict[str, FieldValue] = {
        name: rounded(total(name), 1)
        for name in ("open_s", "measured_s", "occupied_s", "occupied_open_s", "people_s",
                     "measured_open_s", "people_open_s", "co2_occupied_s", "co2_good_s")
    }  # fmt: skip
    fields["people_peak"] = max(sh.people_peak for sh in hours)
    if measured:
        fields["people_mean"] = rounded(total("people_s") / measured, 3)
    if measured_open:
        fields["people_mean_open"] = rounded(total("people_open_s") / measured_open, 3)
    if occupied_co2:
        fields["co2_good_pct"] = rounded(100 * good / occupied_co2, 2)
    return fields


def energy_day(hours: list[EnergyHour], kind: CounterKind) -> dict[str, FieldValue]:
    n = sum(e.power_n for e in hours)
    fields: dict[str, FieldValue] = {
        kind.amount: rounded(sum(e.kwh for e in hours)),
        "hours": len(hours),
        "interpolated_h": sum(e.interpolated for e in hours),
        "resets": sum(e.resets for e in hours),
        "readings": n,
    }
    if n:
        fields[kind.rate_mean] = rounded(sum(e.power_sum for e in hours) / n, 3)
        fields[kind.rate_peak] = max(e.power_peak for e in hours if e.power_peak is not None)
    co2 = [e.kgco2e for e in hours if e.kgco2e is not None]
    if co2:
        fields["kgco2e"] = rounded(sum(co2))
    return fields


def num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def num0(v: FieldValue) -> float:
    return float(v) if isinstance(v, int | float) else 0.0


def hour_of(ms: int) -> int:
    return ms - ms % HOUR_MS


# What shows how far the rollups have come: the newest raw reading of these (field,
# measurement) pairs against the newest hourly rollup of these (the weekly report and the
# pilot command ask the same).
LAG_READINGS: Final = (("energy_kwh", "energy"), ("people", "occupancy"))
LAG_ROLLUPS: Final = (("kwh", ENERGY_HOURLY), ("measured_s", SPACE_HOURLY))


def hours_behind(
    newest_reading_ms: int | None, newest_rollup_ms: int | None, since_ms: int
) -> float:
    """How many hours the rollups lag the readings (0 when up to date): the newest reading's
    hour against the newest hourly rollup (the hour before the reading's is final once the
    flush after it ran), counted from `since_ms` when no rollup is there yet. The weekly report
    and the pilot command both say so instead of being quietly short."""
    if newest_reading_ms is None:
        return 0.0
    rollup = newest_rollup_ms if newest_rollup_ms is not None else since_ms
    return max(0.0, (hour_of(newest_reading_ms) - rollup - HOUR_MS) / HOUR_MS)


def rolled_values(reading: Reading) -> Values | None:
    """What the rollups keep of a reading: the counter and its rate, people and CO2, or the
    fill level; None for readings that are not rolled up."""
    device = reading.device
    if reading.measurement != device.spec.measurement:
        return None  # device_status and the like are not rolled up
    f = reading.fields
    counter = COUNTERS.get(type(device))
    if counter is not None:
        primary, rate = f.get(counter.counter), f.get(counter.rate)
        # The contract's types: a float field is a float here (validate.py), so the common
        # case needs no conversion call.
        if type(primary) is float and (rate is None or type(rate) is float):
            return primary, rate
        return num(primary), num(rate)
    if isinstance(device, OccupancySensor):
        return num(f.get("people")), num(f.get("co2_ppm"))
    if isinstance(device, WasteBin):
        return num(f.get("fill_pct")), None
    return None  # air, weather and people counters have no rollups (yet)
