"""Pilot definitions: periods, references and what the scope can measure are checked when the
site file loads, with messages that name the pilot and the fix (devices/pilots.py)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
import yaml
from rich.console import Console

from dashboards.cli import _pilot_table
from devices import Registry, SiteConfigError, parse_site
from devices.pilots import Metric, Period, Pilot
from devices.site import default_site_text
from ingest.storage.lineproto import parse_line, parse_value
from pilots.evaluate import MetricResult, result_lines, stored_effect
from pilots.stats import Effect, Verdict

# Run again with the clock 400 days ahead by scripts/test (pilot periods).
pytestmark = pytest.mark.shifted_clock


def _site_with(pilot: dict[str, object]) -> str:
    raw = yaml.safe_load(default_site_text())
    raw["pilots"] = [pilot]
    return yaml.safe_dump(raw)


BASE: dict[str, object] = {
    "id": "p1",
    "title": "A pilot",
    "partner": "Partner Oy",
    "scope": {"spaces": ["cafe"]},
    "metrics": ["heat_kwh"],
    "start": "2026-11-02",
}


def test_the_bundled_pilots_load_with_their_default_baselines() -> None:
    pilots = {p.id: p for p in Registry.load().site.pilots}
    cafe = pilots["cafe-heat-control"]
    assert cafe.metrics == (Metric.HEAT_KWH, Metric.KGCO2E)
    assert cafe.baseline_period.start == date(2026, 9, 7)
    assert cafe.baseline_period.end == date(2026, 11, 1)
    assert cafe.baseline_period.days == 56
    assert pilots["coworking-booking"].control_spaces == ("meeting-room-1", "meeting-room-2")


def test_reporting_period_runs_to_yesterday_or_the_end() -> None:
    p = Pilot.model_validate({**BASE, "end": "2026-11-20"})
    assert p.reporting_period(date(2026, 11, 1)) is None
    running = p.reporting_period(date(2026, 11, 10))
    assert running is not None
    assert (running.start, running.end) == (date(2026, 11, 2), date(2026, 11, 9))
    done = p.reporting_period(date(2026, 12, 24))
    assert done is not None
    assert done.end == date(2026, 11, 20)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scope": {"spaces": ["sauna"]}}, "no device is in space 'sauna'"),
        ({"scope": {"devices": ["hm-nowhere"]}}, "no device 'hm-nowhere'"),
        ({"scope": {}}, "at least one space or device"),
        (
            {"metrics": ["sorting_rate_pct"], "scope": {"spaces": ["library"]}},
            "sorting_rate_pct needs a device of kind waste_bin in the scope; it has indoor_air",
        ),
        (
            {"metrics": ["good_air_pct"], "scope": {"spaces": ["library"]}},
            "good_air_pct needs a device of kind occupancy",
        ),
        ({"end": "2026-10-01"}, "end 2026-10-01 is before start 2026-11-02"),
        (
            {"baseline": {"start": "2026-10-01", "end": "2026-11-02"}},
            "must end before the intervention starts",
        ),
        ({"baseline": {"start": "2026-10-25", "end": "2026-11-01"}}, "8 days is too short"),
        ({"baseline": {"start": "2026-10-25", "end": "2026-10-01"}}, "ends (2026-10-01) before"),
        ({"control_spaces": ["cafe"]}, "cafe cannot be both in the scope and a control space"),
        ({"control_spaces": ["attic"]}, "no device is in space 'attic'"),
        ({"metrics": ["happiness"]}, "metrics"),
        ({"id": "Not A Slug"}, "id"),
    ],
)
def test_a_bad_pilot_is_refused_with_what_to_fix(change: dict[str, object], message: str) -> None:
    with pytest.raises(SiteConfigError) as err:
        parse_site(_site_with({**BASE, **change}))
    assert message in str(err.value)


def test_energy_metrics_need_a_weather_station() -> None:
    raw = yaml.safe_load(default_site_text())
    raw["devices"] = [d for d in raw["devices"] if d["kind"] != "weather_station"]
    raw["pilots"] = [BASE]
    with pytest.raises(SiteConfigError, match="add a weather_station to the site"):
        parse_site(yaml.safe_dump(raw))


def test_pilot_ids_are_unique() -> None:
    raw = yaml.safe_load(default_site_text())
    raw["pilots"] = [BASE, {**BASE, "title": "again"}]
    with pytest.raises(SiteConfigError, match="pilot 'p1' appears more than once"):
        parse_site(yaml.safe_dump(raw))


@pytest.mark.parametrize(
    "effect",
    [
        Effect("caltrack_daily_changepoint", -33.6, -35.0, -32.1, -12.0, -12.7, -11.3, 56, 7,
               Verdict.EFFECT),
        Effect("rate_before_after", None, None, None, None, None, None, 3, 0,
               Verdict.INSUFFICIENT_DATA),
    ],
)  # fmt: skip
def test_a_stored_result_reads_back_as_the_effect_written(effect: Effect) -> None:
    """`pilot_results` as `result_lines` writes it, and as the weekly report reads it back."""
    period = Period(start=date(2026, 11, 2), end=date(2026, 11, 8))
    source = "EXAMPLE factor, not a published statistic (a test, with commas)"
    result = MetricResult(
        "p", Metric.HEAT_KWH, "kWh", effect, period, period, 12.5, source, factor_example=True
    )
    line = next(x for x in result_lines("t", [result], ZoneInfo("UTC")) if "pilot_results" in x)
    fields: dict[str, object] = {k: parse_value(v) for k, v in parse_line(line)[1].items()}
    assert stored_effect(fields) == effect
    assert (fields["avoided_kgco2e"], fields["factor_source"], fields["factor_example"]) == (
        12.5,
        source,
        True,
    )
    assert stored_effect({}) is None


def test_the_table_gives_the_interval_in_the_changes_own_units() -> None:
    """Issue 30: the change was given in its unit and in percent, the interval only in percent."""
    effect = Effect("caltrack_daily_changepoint", -31.2, -40.5, -21.9, -7.1, -9.2, -5.0, 28, 14,
                    Verdict.EFFECT)  # fmt: skip
    period = Period(start=date(2026, 3, 2), end=date(2026, 3, 29))
    result = MetricResult("p", Metric.ELECTRICITY_KWH, "kWh/day", effect, period, period)
    console = Console(record=True, width=250)
    console.print(_pilot_table("p", [result]))
    text = console.export_text()
    assert "-40.50 .. -21.90 kWh/day (-9.2 .. -5.0 %)" in text
    assert "-31.20 kWh/day (-7.1 %)" in text
