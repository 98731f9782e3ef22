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
    HEAT_DAILY,
    KINDS,
    PV_ROLE,
    SPACE_DAILY,
    SPACE_TAG,
    WASTE_DAILY,
)
from devices.pilots import Metric, Pilot, scope_devices
from devices.site import EnergyMeter, WasteBin, WasteFraction
from ingest.rollups import qualified
from ingest.storage.query import influxql
from pilots.evaluate import PilotData

Query = Callable[[str], Any]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _any(tag: str, values: Iterable[str]) -> str:
    return "(" + " OR ".join(f'"{tag}" = {_quote(v)}' for v in sorted(values)) + ")"


def _local(ms: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz).date()


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
    when = f"time >= {lo}ms AND time < {hi}ms"

    data = PilotData()

    async def select(what: str, measurement: str, where: str, group: str = "") -> list[Any]:
        q = f"SELECT {what} FROM {qualified(measurement, rollups_rp)} WHERE {where} AND {when}"
        data.queries.append(f"{q} {group}".strip())
        return await influxql(url, data.queries[-1], database, token)

    async def daily(field: str, measurement: str, devices: set[str]) -> dict[date, float]:
        out: dict[date, float] = defaultdict(float)
        if not devices:
            return out
        for series in await select(f'"{field}"', measurement, _any(DEVICE_TAG, devices)):
            for ts, value in series["values"]:
                if value is not None:
                    out[_local(ts, tz)] += float(value)
        return out

    async def per_space(field: str, spaces: Iterable[str], scale: float = 1.0) -> dict[date, float]:
        """The mean over the spaces of each day's value (a sum for hours, via `scale`)."""
        spaces = list(spaces)
        sums: dict[date, list[float]] = defaultdict(list)
        rows = await select(
            f'"{field}"', SPACE_DAILY, _any(SPACE_TAG, spaces), f'GROUP BY "{SPACE_TAG}"'
        )
        for series in rows:
            for ts, value in series["values"]:
                if value is not None:
                    sums[_local(ts, tz)].append(float(value) * scale)
        return {d: sum(v) / len(v) for d, v in sums.items() if len(v) == len(spaces)}

    devices = scope_devices(pilot, list(registry))
    ids = {kind: {d.id for d in devices if d.kind == kind} for kind in KINDS}
    meters = {d.id for d in devices if isinstance(d, EnergyMeter) and d.role != PV_ROLE}
    for metric in pilot.metrics:
        if metric is Metric.HEAT_KWH:
            data.scope[metric] = await daily("kwh", HEAT_DAILY, ids["heat_meter"])
        elif metric is Metric.ELECTRICITY_KWH:
            data.scope[metric] = await daily("kwh", ENERGY_DAILY, meters)
        elif metric is Metric.KGCO2E:
            heat = await daily("kgco2e", HEAT_DAILY, ids["heat_meter"])
            power = await daily("kgco2e", ENERGY_DAILY, meters)
            data.scope[metric] = {d: heat.get(d, 0.0) + power.get(d, 0.0) for d in {*heat, *power}}
        elif metric in (Metric.MIXED_WASTE_L, Metric.SORTING_RATE_PCT):
            await _waste(pilot, registry, data, select, tz)
        else:
            field, scale = {
                Metric.OCCUPIED_H: ("occupied_s", 1 / 3600),
                Metric.UTILISATION_PCT: ("utilisation_pct", 1.0),
                Metric.GOOD_AIR_PCT: ("co2_good_pct", 1.0),
            }[metric]
            spaces = pilot.scope.spaces or {d.space for d in devices}
            data.scope[metric] = await per_space(field, spaces, scale)
            if pilot.control_spaces:
                data.control[metric] = await per_space(field, pilot.control_spaces, scale)
    if any(m.energy for m in pilot.metrics):
        data.temperature = await _temperature(registry, url, database, token, when, tz, data)
    data.open_hours = _open_hours(registry, first, until)
    return data


async def _waste(
    pilot: Pilot, registry: Registry, data: PilotData, select: Any, tz: ZoneInfo
) -> None:
    bins = [d for d in scope_devices(pilot, list(registry)) if isinstance(d, WasteBin)]
    mixed = {d.id for d in bins if d.fraction == WasteFraction.MIXED}
    collected: dict[date, list[float]] = defaultdict(lambda: [0.0, 0.0])
    if bins:
        rows = await select('"volume_l"', WASTE_DAILY, _any(DEVICE_TAG, {d.id for d in bins}),
                            f'GROUP BY "{DEVICE_TAG}"')  # fmt: skip
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


async def _temperature(
    registry: Registry, url: str, database: str, token: str | None, when: str, tz: ZoneInfo,
    data: PilotData,
) -> dict[date, float]:  # fmt: skip
    """The day's mean of the weather stations' hourly means (raw readings, 1 h buckets: a local
    day is 23-25 whole hours in any time zone with whole-hour offsets)."""
    stations = {d.id for d in registry if d.kind == "weather_station"}
    measurement = KINDS["weather_station"].measurement
    data.queries.append(
        f'SELECT mean("temperature_c") FROM "{measurement}" WHERE {_any(DEVICE_TAG, stations)} '
        f"AND {when} GROUP BY time(1h)"
    )
    rows = await influxql(url, data.queries[-1], database, token)
    hours: dict[date, list[float]] = defaultdict(list)
    for series in rows:
        for ts, value in series["values"]:
            if value is not None:
                hours[_local(ts, tz)].append(float(value))
    # A day with fewer than 18 hours measured is not a day's mean.
    return {d: sum(v) / len(v) for d, v in hours.items() if len(v) >= 18}


def _open_hours(registry: Registry, first: date, last: date) -> dict[date, float]:
    impact = registry.site.impact
    out = {}
    day = first
    while day <= last:
        window = impact.open_minutes(day.weekday())
        out[day] = 0.0 if window is None else (window[1] - window[0]) / 60
        day += timedelta(days=1)
    return out
