"""A pilot's daily series, read from the impact rollups in InfluxDB (InfluxQL over the
v1-compatible API, like the weekly report), plus the weather station's daily mean temperature
from the raw readings and the opening hours from the site file."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from devices import Registry
from devices.contract import (
    DEVICE_TAG,
    ENERGY_DAILY,
    ENERGY_HOURLY,
    HEAT_DAILY,
    HEAT_HOURLY,
    KINDS,
    PV_ROLE,
    SPACE_DAILY,
    SPACE_TAG,
    WASTE_DAILY,
)
from devices.pilots import Metric, Pilot, scope_devices
from devices.site import EnergyMeter, WasteBin, WasteFraction
from ingest.evaluation.rollups import LAG_READINGS, LAG_ROLLUPS, hours_behind, qualified
from ingest.storage.influxql import between, ident, string
from ingest.storage.influxql import measurement as influxql_measurement
from ingest.storage.query import influxql
from pilots.energy import CALTRACK_MIN_DAYS
from pilots.evaluate import PilotData
from pilots.fmi import FmiError, describe, fill_days, hourly_temperature

Query = Callable[[str], Any]


def _any(tag: str, values: Iterable[str]) -> str:
    return "(" + " OR ".join(f"{ident(tag)} = {string(v)}" for v in sorted(values)) + ")"


def _local(ms: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz).date()


class _Reader:
    """The pilot's queries over [lo, hi), each logged in `data.queries` for the report."""

    def __init__(self, url: str, database: str, token: str | None, rollups_rp: str | None,
                 when: str, tz: ZoneInfo, data: PilotData) -> None:  # fmt: skip
        self.url, self.database, self.token, self.rp = url, database, token, rollups_rp
        self.when, self.tz, self.data = when, tz, data

    async def select(self, what: str, measurement: str, where: str, group: str = "") -> list[Any]:
        q = f"SELECT {what} FROM {qualified(measurement, self.rp)} WHERE {where} AND {self.when}"
        self.data.queries.append(f"{q} {group}".strip())
        return await influxql(self.url, self.data.queries[-1], self.database, self.token)

    async def daily(self, field: str, measurement: str, devices: set[str]) -> dict[date, float]:
        out: dict[date, float] = defaultdict(float)
        if not devices:
            return out
        for series in await self.select(ident(field), measurement, _any(DEVICE_TAG, devices)):
            for ts, value in series["values"]:
                if value is not None:
                    out[_local(ts, self.tz)] += float(value)
        return out

    async def hourly(self, field: str, measurement: str, devices: set[str]) -> dict[int, float]:
        """The devices' sum per hour; an hour some device lacks is no whole hour, and left out."""
        sums: dict[int, list[float]] = defaultdict(list)
        if devices:
            rows = await self.select(ident(field), measurement, _any(DEVICE_TAG, devices),
                                     f'GROUP BY {ident(DEVICE_TAG)}')  # fmt: skip
            for series in rows:
                for ts, value in series["values"]:
                    if value is not None:
                        sums[int(ts)].append(float(value))
        return {h: sum(v) for h, v in sums.items() if len(v) == len(devices)}

    async def newest(self, field: str, measurement: str, rollup: bool) -> int | None:
        """The time of the newest value of `field` (a raw measurement's, or a rollup's)."""
        name = qualified(measurement, self.rp) if rollup else influxql_measurement(measurement)
        q = f"SELECT last({ident(field)}) FROM {name} WHERE {self.when}"
        self.data.queries.append(q)
        rows = await influxql(self.url, q, self.database, self.token)
        times = [int(v[0]) for series in rows for v in series["values"] if v[1] is not None]
        return max(times, default=None)

    async def per_space(
        self, field: str, spaces: Iterable[str], scale: float = 1.0
    ) -> dict[date, float]:
        """The mean over the spaces of each day's value (a sum for hours, via `scale`)."""
        spaces = list(spaces)
        sums: dict[date, list[float]] = defaultdict(list)
        rows = await self.select(
            ident(field), SPACE_DAILY, _any(SPACE_TAG, spaces), f"GROUP BY {ident(SPACE_TAG)}"
        )
        for series in rows:
            for ts, value in series["values"]:
                if value is not None:
                    sums[_local(ts, self.tz)].append(float(value) * scale)
        return {d: sum(v) / len(v) for d, v in sums.items() if len(v) == len(spaces)}


async def load(
    pilot: Pilot,
    registry: Registry,
    url: str,
    database: str,
    token: str | None,
    until: date,
    rollups_rp: str | None = None,
) -> PilotData:
    """Everything `evaluate` needs for `pilot`, from the baseline's first day to `until`."""
    site = registry.site
    tz = ZoneInfo(site.timezone)
    first = pilot.baseline_period.start
    lo = int(datetime(first.year, first.month, first.day, tzinfo=tz).timestamp() * 1000)
    end = until + timedelta(days=1)
    hi = int(datetime(end.year, end.month, end.day, tzinfo=tz).timestamp() * 1000)
    when = between(lo, hi)
    data = PilotData()
    r = _Reader(url, database, token, rollups_rp, when, tz, data)
    devices = scope_devices(pilot, list(registry))
    heat_meters = {d.id for d in devices if d.kind == "heat_meter"}
    meters = {d.id for d in devices if isinstance(d, EnergyMeter) and d.role != PV_ROLE}
    for metric in pilot.metrics:
        if metric is Metric.HEAT_KWH:
            data.scope[metric] = await r.daily("kwh", HEAT_DAILY, heat_meters)
        elif metric is Metric.ELECTRICITY_KWH:
            data.scope[metric] = await r.daily("kwh", ENERGY_DAILY, meters)
        elif metric is Metric.KGCO2E:
            heat = await r.daily("kgco2e", HEAT_DAILY, heat_meters)
            power = await r.daily("kgco2e", ENERGY_DAILY, meters)
            data.scope[metric] = {d: heat.get(d, 0.0) + power.get(d, 0.0) for d in {*heat, *power}}
        elif metric in (Metric.MIXED_WASTE_L, Metric.SORTING_RATE_PCT):
            await _waste(pilot, registry, data, r.select, tz)
        else:
            field, scale = {
                Metric.OCCUPIED_H: ("occupied_s", 1 / 3600),
                Metric.UTILISATION_PCT: ("utilisation_pct", 1.0),
                Metric.GOOD_AIR_PCT: ("co2_good_pct", 1.0),
            }[metric]
            spaces = pilot.scope.spaces or {d.space for d in devices}
            data.scope[metric] = await r.per_space(field, spaces, scale)
            if pilot.control_spaces:
                data.control[metric] = await r.per_space(field, pilot.control_spaces, scale)
    # A year of baseline allows the CalTRACK hourly model (pilots/hourly.py).
    if pilot.baseline_period.days >= CALTRACK_MIN_DAYS:
        if Metric.HEAT_KWH in pilot.metrics:
            data.hourly[Metric.HEAT_KWH] = await r.hourly("kwh", HEAT_HOURLY, heat_meters)
        if Metric.ELECTRICITY_KWH in pilot.metrics:
            data.hourly[Metric.ELECTRICITY_KWH] = await r.hourly("kwh", ENERGY_HOURLY, meters)
    if any(m.energy for m in pilot.metrics):
        await _temperature(registry, url, database, token, lo, hi, tz, data)
    data.open_hours = open_hours(registry, first, until)
    await _rollups_lag(r, lo, data)
    return data


async def _rollups_lag(r: _Reader, lo: int, data: PilotData) -> None:
    """Say when the rollups lag the readings (right after a backfill, or while the ingestor
    catches up), as the weekly report does: the last days are then missing or still growing,
    and `insufficient_data` would otherwise be a riddle."""
    readings = [await r.newest(f, m, rollup=False) for f, m in LAG_READINGS]
    rollups = [await r.newest(f, m, rollup=True) for f, m in LAG_ROLLUPS]
    reading = max((t for t in readings if t is not None), default=None)
    rollup = max((t for t in rollups if t is not None), default=None)
    behind = hours_behind(reading, rollup, lo)
    if behind > 0:
        data.warnings.append(
            f"the rollups are {behind:.0f} h behind the readings (the ingestor rolls up every "
            "30 s; after a backfill or a restart it is catching up): the last days are missing "
            "or still growing. Run this again in a minute, or recompute those days with "
            "`kera-ingest rollups --from DAY --to DAY`"
        )


async def _waste(
    pilot: Pilot, registry: Registry, data: PilotData, select: Any, tz: ZoneInfo
) -> None:
    bins = [d for d in scope_devices(pilot, list(registry)) if isinstance(d, WasteBin)]
    mixed = {d.id for d in bins if d.fraction == WasteFraction.MIXED}
    collected: dict[date, list[float]] = defaultdict(lambda: [0.0, 0.0])
    if bins:
        rows = await select(ident("volume_l"), WASTE_DAILY, _any(DEVICE_TAG, {d.id for d in bins}),
                            f'GROUP BY {ident(DEVICE_TAG)}')  # fmt: skip
        for series in rows:
            is_mixed = series.get("tags", {}).get(DEVICE_TAG) in mixed
            for ts, value in series["values"]:
                if value is None:
                    continue
                day = collected[_local(ts, tz)]
                day[1] += float(value)
                if not is_mixed:
                    day[0] += float(value)
    data.sorting = {d: (v[0], v[1]) for d, v in collected.items()}
    data.scope[Metric.MIXED_WASTE_L] = {d: v[1] - v[0] for d, v in collected.items()}


# A day with fewer hours of temperature than this has no daily mean.
MIN_TEMPERATURE_HOURS = 18


async def _temperature(
    registry: Registry, url: str, database: str, token: str | None, lo: int, hi: int,
    tz: ZoneInfo, data: PilotData,
) -> None:  # fmt: skip
    """The day's mean of the weather stations' hourly means (raw readings, 1 h buckets: a local
    day is 23-25 whole hours in any time zone with whole-hour offsets); days the site's stations
    missed come from FMI's open data when the site file names a station (`weather.fmi`)."""
    stations = {d.id for d in registry if d.kind == "weather_station"}
    measurement = KINDS["weather_station"].measurement
    data.queries.append(
        f'SELECT mean("temperature_c") FROM {ident(measurement)} '
        f"WHERE {_any(DEVICE_TAG, stations)} AND {between(lo, hi)} GROUP BY time(1h)"
    )
    own: dict[int, float] = {}
    for series in await influxql(url, data.queries[-1], database, token):
        for ts, value in series["values"]:
            if value is not None:
                own[int(ts)] = float(value)
    fmi_hours: dict[int, float] = {}
    station = registry.site.weather.fmi
    if station is not None:
        for first, last in _missing_runs(own, lo, hi, tz):
            data.queries.append(
                f"FMI WFS {station.url}: fmi::observations::weather::simple, t2m hourly, "
                f"{first} to {last} ({describe(station)})"
            )
            try:
                fmi_hours |= await hourly_temperature(
                    station, _midnight_ms(first, tz), _midnight_ms(last + timedelta(days=1), tz)
                )
            except FmiError as exc:
                data.warnings.append(f"{exc}; judged with the site's own weather station only")
                break
    daily, hourly, filled = fill_days(own, fmi_hours, tz, MIN_TEMPERATURE_HOURS)
    data.temperature, data.temperature_hourly = daily, hourly
    if filled and station is not None:
        data.weather = (
            f"the site's weather station; {len(filled)} of {len(daily)} days from "
            f"{describe(station)}"
        )


def _midnight_ms(day: date, tz: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


def _missing_runs(
    hours: dict[int, float], lo: int, hi: int, tz: ZoneInfo
) -> list[tuple[date, date]]:
    """The runs of consecutive local days in [lo, hi) with fewer than MIN_TEMPERATURE_HOURS."""
    counts: dict[date, int] = defaultdict(int)
    for h in hours:
        counts[_local(h, tz)] += 1
    runs: list[tuple[date, date]] = []
    day, last = _local(lo, tz), _local(hi - 1, tz)
    while day <= last:
        if counts[day] < MIN_TEMPERATURE_HOURS:
            if runs and runs[-1][1] == day - timedelta(days=1):
                runs[-1] = (runs[-1][0], day)
            else:
                runs.append((day, day))
        day += timedelta(days=1)
    return runs


def open_hours(registry: Registry, first: date, last: date) -> dict[date, float]:
    impact = registry.site.impact
    out = {}
    day = first
    while day <= last:
        window = impact.open_minutes(day.weekday())
        out[day] = 0.0 if window is None else (window[1] - window[0]) / 60
        day += timedelta(days=1)
    return out
