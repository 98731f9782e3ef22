"""One pilot, every metric: which method judges it, on which days (docs/pilots.md).

`evaluate` is pure: it takes the daily series (`PilotData`, from `pilots.data.load` or from a
simulation) and returns one `MetricResult` per metric. Energy metrics go to the
weather-normalised method; space metrics to difference-in-differences when the pilot has control
spaces, else to the weekday-adjusted before/after; the sorting rate to the rate change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from devices.factor_source import FactorSource
from devices.pilots import Metric, Period, Pilot
from devices.site import Impact
from pilots.stats import Effect, Verdict, before_after, diff_in_diff, ratio_before_after

UNITS = {
    Metric.ELECTRICITY_KWH: "kWh/day",
    Metric.HEAT_KWH: "kWh/day",
    Metric.KGCO2E: "kgCO2e/day",
    Metric.SORTING_RATE_PCT: "points",
    Metric.MIXED_WASTE_L: "l/day",
    Metric.OCCUPIED_H: "h/day",
    Metric.UTILISATION_PCT: "points",
    Metric.GOOD_AIR_PCT: "points",
}
# What each method does and assumes, in a sentence or two (the pilot report prints it beside
# every number; docs/pilots.md has the long form).
METHODS = {
    "caltrack_daily_changepoint": (
        "IPMVP Option B/C with the CalTRACK 2.0 daily model: the baseline's daily energy "
        "fitted against heating and cooling degree days (balance points searched; from the "
        "day's hours where known), with a level per weekday where that predicts the baseline's "
        "unseen weeks better; the change is measured minus what the model predicts for the "
        "pilot days' weather. Interval: ASHRAE Guideline 14's savings uncertainty (OpenDSM), "
        "corrected for autocorrelation. Assumes nothing but the weather and the weekday changed "
        "the use."
    ),
    "caltrack_hourly_opendsm": (
        "IPMVP Option B/C with OpenDSM's CalTRACK hourly model, fitted on a year of baseline "
        "hours: one model per month (weighted with its neighbours) of time of week and outdoor "
        "temperature bins; the change is measured minus predicted, summed per day. Interval: "
        "ASHRAE Guideline 14's savings uncertainty for hourly data."
    ),
    "caltrack_daily_opendsm": (
        "IPMVP Option B/C with OpenDSM's CalTRACK daily model fitted on a year of baseline days "
        "against outdoor temperature (season and weekday splits); the change is measured minus "
        "predicted. Interval: ASHRAE Guideline 14's savings uncertainty."
    ),
    "before_after_weekday": (
        "Before and after: the baseline's days fit one level per weekday (and the opening "
        "hours, where they vary); the change is the pilot days' mean difference from that "
        "pattern. Interval: the larger of the AR(1)-corrected one (day-to-day autocorrelation) "
        "and one over weekly sums (weeks that differ as a whole). Assumes nothing else "
        "changed between the periods."
    ),
    "difference_in_differences": (
        "Difference in differences: the same weekday model on the daily gap between the "
        "pilot's spaces and its untouched control spaces, so that whatever changes both (season, "
        "events) cancels. Interval: the larger of the AR(1)-corrected one and one over weekly "
        "sums. Assumes the gap would have stayed as it was."
    ),
    "rate_before_after": (
        "Rate before and after: all litres collected separately over all litres collected, "
        "in each period; days without an emptying carry no rate. Interval: linearised over "
        "weekly totals, which are nearly independent where days are not (a bin emptied today "
        "is not emptied tomorrow). Assumes nothing else changed between the periods."
    ),
    "none": "Not judged: the pilot has not started.",
}
# Metrics measured per space, which control spaces can stand in for.
SPACE_METRICS = frozenset({Metric.OCCUPIED_H, Metric.UTILISATION_PCT, Metric.GOOD_AIR_PCT})


@dataclass(slots=True)
class PilotData:
    """Daily series by local date: the scope's, the control spaces' (space metrics), the
    sorting rate's (sorted, collected) litres, the outdoor temperature and the opening hours."""

    scope: dict[Metric, dict[date, float]] = field(default_factory=dict)
    control: dict[Metric, dict[date, float]] = field(default_factory=dict)
    sorting: dict[date, tuple[float, float]] = field(default_factory=dict)
    temperature: dict[date, float] = field(default_factory=dict)
    open_hours: dict[date, float] = field(default_factory=dict)
    # Hourly energy and temperature by hour start (ms), loaded when the baseline is long
    # enough for the CalTRACK hourly model (pilots/hourly.py).
    hourly: dict[Metric, dict[int, float]] = field(default_factory=dict)
    temperature_hourly: dict[int, float] = field(default_factory=dict)
    # The InfluxQL queries the series came from (the report lists them).
    queries: list[str] = field(default_factory=list)
    # Where the outdoor temperature came from, and what went wrong on the way (shown, not fatal).
    weather: str = "the site's weather station"
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MetricResult:
    pilot: str
    metric: Metric
    unit: str
    effect: Effect
    baseline: Period
    reporting: Period | None
    # Energy metrics: the emissions the change avoided over the reporting days (positive when
    # it saved), with the site's factor, that factor's source, and whether it is an example
    # rather than a published figure (devices/factor_source.py).
    avoided_kgco2e: float | None = None
    factor_source: str | None = None
    factor_example: bool = False


def _days(period: Period) -> list[date]:
    return [period.start + timedelta(days=i) for i in range(period.days)]


def _within(series: dict[date, float], period: Period) -> dict[date, float]:
    return {d: v for d, v in series.items() if period.start <= d <= period.end}


def _within_hours(series: dict[int, float], period: Period, tz: ZoneInfo) -> dict[int, float]:
    lo, hi = _midnight_ms(period.start, tz), _midnight_ms(period.end + timedelta(days=1), tz)
    return {h: v for h, v in series.items() if lo <= h < hi}


def evaluate(
    pilot: Pilot, data: PilotData, tz: ZoneInfo, today: date, impact: Impact | None = None
) -> list[MetricResult]:
    """Every metric of `pilot`; with the site's `impact` settings, energy changes are also
    converted to avoided emissions."""
    base = pilot.baseline_period
    rep = pilot.reporting_period(today)
    out = []
    for metric in pilot.metrics:
        effect = _not_started(pilot) if rep is None else _judge(pilot, metric, data, base, rep, tz)
        avoided, source = _avoided(metric, effect, impact)
        out.append(
            MetricResult(
                pilot.id, metric, UNITS[metric], effect, base, rep, avoided,
                None if source is None else source.label(),
                source is not None and source.example,
            )
        )  # fmt: skip
    return out


def _avoided(
    metric: Metric, effect: Effect, impact: Impact | None
) -> tuple[float | None, FactorSource | None]:
    """Avoided kgCO2e = avoided kWh x the site's constant factor: district heat's for heat, the
    grid's for electricity (an hourly factor series is not applied here: a daily model has no
    hours to weigh)."""
    if impact is None or effect.estimate is None:
        return None, None
    if metric is Metric.HEAT_KWH:
        factor, source = impact.heat_emission_factor_kg_per_kwh, impact.heat_emission_factor_source
    elif metric is Metric.ELECTRICITY_KWH:
        factor, source = impact.emission_factor_kg_per_kwh, impact.emission_factor_source
    else:
        return None, None
    if factor is None:
        return None, None
    return -effect.estimate * effect.reporting_days * factor, source


def _not_started(pilot: Pilot) -> Effect:
    return Effect("none", None, None, None, None, None, None, 0, 0, Verdict.INSUFFICIENT_DATA,
                  (f"the pilot starts on {pilot.start}",))  # fmt: skip


def _judge(
    pilot: Pilot, metric: Metric, data: PilotData, base: Period, rep: Period, tz: ZoneInfo
) -> Effect:
    if metric is Metric.SORTING_RATE_PCT:
        rows = data.sorting
        return ratio_before_after(
            {d: v for d, v in rows.items() if base.start <= d <= base.end},
            {d: v for d, v in rows.items() if rep.start <= d <= rep.end},
        )
    series = data.scope.get(metric, {})
    if metric.energy and metric in data.hourly:
        from pilots.hourly import hourly_savings

        energy = data.hourly[metric]
        hourly = hourly_savings(
            _within_hours(energy, base, tz), _within_hours(energy, rep, tz),
            data.temperature_hourly, tz, is_electricity=metric is Metric.ELECTRICITY_KWH,
        )  # fmt: skip
        if hourly is not None:
            return hourly
    if metric.energy:
        from pilots.energy import weather_normalised_savings

        effect, _ = weather_normalised_savings(
            _within(series, base),
            _within(series, rep),
            data.temperature,
            tz,
            is_electricity=metric is Metric.ELECTRICITY_KWH,
            temperature_hourly=data.temperature_hourly,
        )
        return effect
    hours = data.open_hours or None
    if metric in SPACE_METRICS and pilot.control_spaces:
        return diff_in_diff(
            series, data.control.get(metric, {}), _days(base), _days(rep), open_hours=hours
        )
    return before_after(_within(series, base), _within(series, rep), open_hours=hours)


def _midnight_ms(day: date, tz: ZoneInfo) -> int:
    from datetime import datetime

    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


def result_lines(site: str, results: list[MetricResult], tz: ZoneInfo) -> list[str]:
    """`pilot_results` points, one per metric judged at local midnight of its last day, and
    `pilot_daily` points, one per metric and day of both periods: measured and expected."""
    from devices.contract import (
        METRIC_TAG,
        PILOT_DAILY_MEASUREMENT,
        PILOT_RESULTS_MEASUREMENT,
        PILOT_TAG,
        SITE_TAG,
    )
    from ingest.reading import FieldValue
    from ingest.storage.lineproto import format_line, series_key

    lines = []
    for r in results:
        if r.reporting is None:
            continue
        e = r.effect
        fields: dict[str, FieldValue] = {
            "baseline_days": e.baseline_days, "reporting_days": e.reporting_days,
            "verdict": e.verdict.value, "method": e.method,
        }  # fmt: skip
        for name in ("estimate", "low", "high", "estimate_pct", "low_pct", "high_pct"):
            value = getattr(e, name)
            if value is not None:
                fields[name] = float(value)
        if r.avoided_kgco2e is not None:
            fields["avoided_kgco2e"] = float(r.avoided_kgco2e)
            if r.factor_source is not None:
                # As impact_daily keeps them: an example factor stays recognisable.
                fields["factor_source"] = r.factor_source
                fields["factor_example"] = r.factor_example
        tags = {SITE_TAG: site, PILOT_TAG: r.pilot, METRIC_TAG: r.metric.value}
        key = series_key(PILOT_RESULTS_MEASUREMENT, tags)
        lines.append(format_line(key, fields, _midnight_ms(r.reporting.end, tz)))
        daily_key = series_key(PILOT_DAILY_MEASUREMENT, tags)
        for day, observed, expected in e.daily:
            lines.append(
                format_line(
                    daily_key,
                    {
                        "observed": observed,
                        "expected": expected,
                        "reporting": r.reporting.start <= day <= r.reporting.end,
                    },
                    _midnight_ms(day, tz),
                )
            )
    return lines


def stored_effect(fields: Mapping[str, Any]) -> Effect | None:
    """A `pilot_results` point's fields (as `result_lines` writes them) back as its Effect;
    None for no point."""
    if fields.get("verdict") is None:
        return None

    def num(name: str) -> float | None:
        v = fields.get(name)
        return None if v is None else float(v)

    return Effect(
        str(fields.get("method", "")), num("estimate"), num("low"), num("high"),
        num("estimate_pct"), num("low_pct"), num("high_pct"),
        int(fields.get("baseline_days") or 0), int(fields.get("reporting_days") or 0),
        Verdict(fields["verdict"]),
    )  # fmt: skip


def period_lines(site: str, pilot: Pilot, tz: ZoneInfo) -> list[str]:
    """`pilot_periods` points: the pilot's first day and the day after its last, as events the
    dashboards show as annotations."""
    from devices.contract import PILOT_EVENT_TAG, PILOT_PERIODS_MEASUREMENT, PILOT_TAG, SITE_TAG
    from ingest.storage.lineproto import format_line, series_key

    events = [("start", pilot.start, f"Pilot {pilot.id} starts: {pilot.title}")]
    if pilot.end is not None:
        events.append(("end", pilot.end + timedelta(days=1), f"Pilot {pilot.id} ended"))
    return [
        format_line(
            series_key(
                PILOT_PERIODS_MEASUREMENT,
                {SITE_TAG: site, PILOT_TAG: pilot.id, PILOT_EVENT_TAG: event},
            ),
            {"text": text, "partner": pilot.partner},
            _midnight_ms(day, tz),
        )
        for event, day, text in events
    ]
