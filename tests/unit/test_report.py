"""The weekly report's own logic, without a database: time to resolve alerts, the rounding of
figures, and a page that holds every figure and says where its numbers come from."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dashboards.report import FIGURES, WeekData, factor_lines, write_report
from dashboards.report._data import PilotLine, _alert_summary
from dashboards.report._figures import day_label as _day
from dashboards.report._figures import fmt as _fmt
from devices.site import Impact
from pilots.stats import Effect, Verdict

# Run again with the clock 400 days ahead by scripts/test (the weekly report).
pytestmark = pytest.mark.shifted_clock

H = 3_600_000


def series(rule: str, device: str, points: list[tuple[int, bool]]) -> dict[str, object]:
    return {
        "tags": {"rule": rule, "device": device},
        "columns": ["time", "firing", "level"],
        "values": [[t, f, "warning"] for t, f in points],
    }


def test_alerts_raised_and_how_fast_they_were_resolved() -> None:
    week = [
        series("bin_fill", "b1", [(1 * H, True), (2 * H, False), (5 * H, True), (9 * H, False)]),
        series("bin_fill", "b2", [(3 * H, True)]),  # resolved only in the next week
        series("co2_high", "o1", [(4 * H, True), (4 * H + 1, True)]),  # re-fired, never resolved
        series("battery_low", "b3", [(2 * H, False)]),  # resolution of an older firing
    ]
    after = [series("bin_fill", "b2", [(200 * H, False)])]
    got = {a.rule: a for a in _alert_summary(week, after)}
    assert set(got) == {"bin_fill", "co2_high"}
    fill = got["bin_fill"]
    assert (fill.raised, fill.resolved, fill.still_open) == (3, 3, 0)
    assert fill.median_resolve_s == 4 * 3600
    assert fill.max_resolve_s == 197 * 3600
    co2 = got["co2_high"]
    assert (co2.raised, co2.resolved, co2.still_open) == (1, 0, 1)
    assert co2.median_resolve_s is None


def test_rounding() -> None:
    assert _fmt(1694.3, "kWh") == "1,694 kWh"
    assert _fmt(84.66, "kgCO2e") == "84.7 kgCO2e"
    assert _fmt(99.96, "%") == "100.0 %"
    assert _fmt(10.0, "") == "10"
    assert _fmt(None, "kWh") == "no data"


def week_data() -> WeekData:
    lo = 1_795_125_600_000  # Friday 2026-11-20 00:00 in Helsinki (any day serves here)
    data = WeekData(
        site="kera", site_name="Kera", week="2026-W47", tz=ZoneInfo("Europe/Helsinki"),
        start_ms=lo, end_ms=lo + 7 * 24 * H, influx="http://127.0.0.1:8086 database kera",
    )  # fmt: skip
    data.factors = factor_lines(
        Impact.model_validate({
            "emission_factor_kg_per_kwh": 0.04,
            "emission_factor_source": {"kind": "published", "publisher": "Statistics Finland",
                                       "year": 2026, "where": "table 14qt"},
        })
    )  # fmt: skip
    data.totals = {"supply_kwh": 1694.2, "kgco2e": 84.7, "sorting_rate_pct": 80.08}
    data.previous = {"supply_kwh": 1500.0, "kgco2e": None, "sorting_rate_pct": 75.0}
    data.daily = [(lo + i * 24 * H, 240.0 + i, 0.1, 12.0) for i in range(7)]
    data.spaces_energy = [("cafe", 431.0, 21.5, 0.0, 0.0), ("main-hall", 0.0, 0.0, 1694.2, 0.0)]
    data.fractions = [("bio", 258.0, 4, 3, 0), ("mixed", 267.0, 2, 2, 0)]
    data.space_use = [("cafe", 67.8, 99.9, 9.1, 23, 100.0)]
    data.completeness = [("bin-bio-1", "waste_bin", 671, 672.0, 99.85)]
    data.queries = ['SELECT sum("supply_kwh") FROM "impact_daily" WHERE ...']
    return data


def test_the_report_holds_every_figure_and_its_sources(tmp_path: Path) -> None:
    steps: list[str] = []
    html_path, pdf_path = write_report(week_data(), tmp_path, steps.append, pdf=False)
    assert pdf_path is None  # printed by Chromium: tests/integration/test_impact.py
    page = html_path.read_text()
    assert page.count('<img data-figure="') == len(FIGURES)
    assert steps == [f"figure {name}" for name, _ in FIGURES] + ["html"]
    assert "<td>Grid energy</td><td>1,694 kWh</td><td>1,500 kWh</td><td>+12.9 %</td>" in page
    assert "<td>Sorting rate</td><td>80.1 %</td><td>75.0 %</td><td>+5.1 pp</td>" in page
    assert "factor source: Statistics Finland, 2026: table 14qt" in page
    assert "published by Statistics Finland for 2026." in first_screen(page)
    assert "EXAMPLE" not in page
    assert page.count("<p class='source'>Source:") == 7
    assert "no alerts were raised this week" in page
    assert "No pilot ran this week." in page


def first_screen(page: str) -> str:
    """What is above the first section: the title, when and from where, and the factors."""
    return page[page.index("<body>") : page.index("<h2>")]


def test_an_example_factor_is_said_on_the_first_screen(tmp_path: Path) -> None:
    data = week_data()
    data.factors = factor_lines(
        Impact.model_validate({
            "emission_factor_kg_per_kwh": 0.05,
            "emission_factor_source": {"kind": "example", "note": "the demo's"},
            "heat_emission_factor_kg_per_kwh": 0.1078,
            "heat_emission_factor_source": {"kind": "published", "publisher": "Fortum",
                                            "year": 2023, "where": "Espoo network"},
        })
    )  # fmt: skip
    top = first_screen(write_report(data, tmp_path, pdf=False)[0].read_text())
    assert (
        "Emission factors: electricity 0.05 kg/kWh, an EXAMPLE factor, not a published "
        "statistic; district heat 0.1078 kg/kWh, published by Fortum for 2023 (this week is in "
        "2026: update it when that year&#x27;s is published)." in top
    )
    assert "The electricity emissions in this report use an example emission factor" in top
    assert (
        "Statistics Finland&#x27;s annual emission coefficient of electricity (table 14qt)" in top
    )
    assert "emission_factors_csv" in top
    assert "rolled up with an example" not in top

    # The site file now names a published figure, but three of the week's stored days were
    # rolled up before it did.
    data.factors = [replace(f, example_days=3) for f in week_data().factors]
    top = first_screen(write_report(data, tmp_path, pdf=False)[0].read_text())
    assert "published by Statistics Finland for 2026." in top
    assert "3 days of this week were rolled up with an example electricity factor" in top
    assert "kera-ingest rollups --week 2026-W47" in top


def test_pilots_of_the_week_with_their_latest_result(tmp_path: Path) -> None:
    data = week_data()
    judged = data.end_ms - 24 * H
    data.pilots = [
        PilotLine("cafe-heat-control", "Heat", "heat_kwh", Effect(
            "caltrack_daily_changepoint", -33.6, -35.0, -32.1, -12.0, -12.7, -11.3, 56, 7,
            Verdict.EFFECT), judged),
        PilotLine("yard-sorting-nudge", "Sorting", "sorting_rate_pct", Effect(
            "rate_before_after", 4.2, -1.0, 9.4, None, None, None, 56, 7,
            Verdict.NO_EFFECT_DETECTED), judged),
        PilotLine("coworking-booking", "Booking", "occupied_h", None, None),
    ]  # fmt: skip
    page = write_report(data, tmp_path, pdf=False)[0].read_text()
    day = _day(judged, data)  # the week's last day, local
    assert day == "Thu 26.11."
    assert (
        "<td>cafe-heat-control</td><td>heat_kwh</td><td>-12.0 %</td><td>-12.7 .. -11.3 %</td>"
        f"<td>effect</td><td>7</td><td>{day}</td>" in page
    )
    assert "<td>+4.20</td><td>-1.00 .. +9.40</td><td>no effect detected</td>" in page
    assert "<td>coworking-booking</td><td>occupied_h</td><td>not judged yet</td>" in page


def test_no_data_is_said_never_drawn_as_zero(tmp_path: Path) -> None:
    """A week without data: sentences instead of empty charts, "no data" instead of 0, and no
    line drawn to zero over a missing day."""
    data = week_data()
    data.totals = {"supply_kwh": None, "emptyings": 0.0, "waste_l": None, "sorting_rate_pct": None}
    data.previous = {}
    data.daily = []
    data.spaces_energy, data.fractions, data.space_use, data.completeness = [], [], [], []
    html_path, _ = write_report(data, tmp_path, pdf=False)
    page = html_path.read_text()
    assert "<img data-figure=" not in page
    assert "No emptying was detected this week" in page
    assert "No energy readings" in page
    assert "<td>Sorting rate</td><td>no data</td>" in page
    assert "<td>Waste collected</td><td>no data</td>" in page
    assert "0.0 %" not in page


def test_a_day_without_data_is_a_gap(tmp_path: Path) -> None:
    data = week_data()
    lo = data.start_ms
    data.daily = [
        (lo, 240.0, 0.1, 12.0),
        (lo + 24 * H, None, None, None),
        (lo + 48 * H, 250.0, 0.2, 12.5),
    ]
    from dashboards.report._figures import _fig_energy

    fig = _fig_energy(data)
    assert fig is not None
    line = fig.axes[1].get_lines()[0]
    ys = [float(y) for y in line.get_ydata()]  # type: ignore[arg-type, union-attr]
    assert ys[0] == 12.0
    assert ys[2] == 12.5
    assert ys[1] != ys[1]


def test_rollups_behind_the_readings_are_flagged(tmp_path: Path) -> None:
    data = week_data()
    data.newest_reading_ms = data.start_ms + 30 * H + 5 * 60_000
    data.newest_rollup_ms = data.start_ms + 20 * H
    assert data.rollups_behind_h == 9
    page = write_report(data, tmp_path, pdf=False)[0].read_text()
    assert "The rollups are 9 h behind the readings" in page
    data.newest_rollup_ms = data.start_ms + 29 * H
    assert data.rollups_behind_h == 0
    assert "behind the readings" not in write_report(data, tmp_path, pdf=False)[0].read_text()
