"""A pilot's report: `kera-dashboards pilot ID --out DIR` (docs/pilots.md). One self-contained
HTML page in the weekly report's look, and its PDF printed by Chromium. Every number says which
method made it and from which data; every metric has its baseline-against-actual figure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from dashboards.report._figures import BLUE, GREEN, GREY, ORANGE, png
from dashboards.report._render import (
    CSS,
    SCRIPT,
    _h,
    _table,
    save,
)
from devices.factor_source import ELECTRICITY_HOW_TO, HEAT_HOW_TO
from devices.pilots import Metric, Pilot
from pilots.evaluate import METHODS, MetricResult, PilotData

# Metrics whose daily changes add up to a total (kWh, litres, hours): their report shows the
# cumulative effect too. Rates in points do not add up over days.
ADDITIVE = frozenset(
    {Metric.ELECTRICITY_KWH, Metric.HEAT_KWH, Metric.KGCO2E, Metric.MIXED_WASTE_L,
     Metric.OCCUPIED_H}
)  # fmt: skip
SOURCES = {
    Metric.ELECTRICITY_KWH: "energy_daily (kwh) of the scope's electricity meters, PV excluded",
    Metric.HEAT_KWH: "heat_daily (kwh) of the scope's heat meters",
    Metric.KGCO2E: "heat_daily and energy_daily (kgco2e) of the scope's meters",
    Metric.SORTING_RATE_PCT: "waste_daily (volume_l) of the scope's bins, mixed against the rest",
    Metric.MIXED_WASTE_L: "waste_daily (volume_l) of the scope's mixed-waste bins",
    Metric.OCCUPIED_H: "space_daily (occupied_s) of the scope's spaces, the mean per space",
    Metric.UTILISATION_PCT: "space_daily (utilisation_pct) of the scope's spaces, their mean",
    Metric.GOOD_AIR_PCT: "space_daily (co2_good_pct) of the scope's spaces, their mean",
}


EPOCH = date(1970, 1, 1)  # matplotlib's date numbers count days from here


def _x(days: Sequence[date]) -> list[float]:
    return [float((d - EPOCH).days) for d in days]


@dataclass(frozen=True, slots=True)
class PilotReport:
    """What the page shows: the pilot, its results, the data they came from, and where."""

    site: str
    site_name: str
    tz_name: str
    pilot: Pilot
    results: list[MetricResult]
    data: PilotData
    influx: str


def _fig_daily(r: MetricResult) -> Figure | None:
    daily = r.effect.daily
    if not daily:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.2))
    days = _x([d for d, _, _ in daily])
    ax.plot(days, [o for _, o, _ in daily], ".-", color=BLUE, lw=0.8, ms=4, label="measured")
    ax.plot(days, [e for _, _, e in daily], "-", color=ORANGE, lw=1.4,
            label="expected without the pilot")  # fmt: skip
    if r.reporting is not None:
        span = _x([r.reporting.start, r.reporting.end])
        ax.axvspan(span[0], span[1], color=GREEN, alpha=0.08, label="pilot")
    ax.set_ylabel(r.unit)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"{r.metric.value}: measured, and what the baseline expected")
    ax.xaxis_date()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _fig_cumulative(r: MetricResult) -> Figure | None:
    e = r.effect
    if r.metric not in ADDITIVE or r.reporting is None or e.low is None or e.high is None:
        return None
    points = [(d, o - x) for d, o, x in e.daily if r.reporting.start <= d <= r.reporting.end]
    if not points:
        return None
    total, cumulative = 0.0, []
    for _, change in points:
        total += change
        cumulative.append(total)
    days = _x([d for d, _ in points])
    n = len(points)
    fig, ax = plt.subplots(figsize=(8, 2.6))
    ax.plot(days, cumulative, "o-", color=GREEN, ms=3, label="measured minus expected")
    ax.errorbar([days[-1]], [total], yerr=[[total - e.low * n], [e.high * n - total]], fmt="none",
                ecolor=GREY, capsize=6, lw=2, label="90 % interval of the total")  # fmt: skip
    ax.axhline(0, color=GREY, lw=0.8)
    ax.set_ylabel(r.unit.removesuffix("/day"))
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"{r.metric.value}: cumulative effect over the pilot's days")
    ax.xaxis_date()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


FIGURES: list[tuple[str, Callable[[MetricResult], Figure | None]]] = [
    ("daily", _fig_daily),
    ("cumulative", _fig_cumulative),
]


def _num(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:+,.2f} {unit}".strip()


def summary_rows(results: list[MetricResult]) -> list[list[str]]:
    rows = []
    for r in results:
        e = r.effect
        pct = "-" if e.estimate_pct is None else f"{e.estimate_pct:+.1f} %"
        interval = (
            f"{e.low_pct:+.1f} .. {e.high_pct:+.1f} %"
            if e.low_pct is not None and e.high_pct is not None
            else f"{_num(e.low)} .. {_num(e.high)}"
            if e.low is not None
            else "-"
        )
        rows.append([r.metric.value, _num(e.estimate, r.unit), pct, interval,
                     e.verdict.value.replace("_", " "), e.method,
                     f"{e.baseline_days} + {e.reporting_days}"])  # fmt: skip
    return rows


def _scope(p: Pilot) -> str:
    spaces, devices = ", ".join(sorted(p.scope.spaces)), ", ".join(sorted(p.scope.devices))
    parts = [f"spaces {spaces}" if spaces else "", f"devices {devices}" if devices else ""]
    return "; ".join(x for x in parts if x)


def render_pilot_html(report: PilotReport, pngs: dict[str, str], generated: str) -> str:
    p = report.pilot
    first = report.results[0] if report.results else None
    reporting = first.reporting if first else None
    period = f"{p.baseline_period.start} to {p.baseline_period.end}"
    during = f"{reporting.start} to {reporting.end}" if reporting else "not started"
    facts = [
        ["partner", p.partner],
        ["scope", _scope(p)],
        ["control spaces", ", ".join(p.control_spaces) or "none"],
        ["baseline", f"{period} ({p.baseline_period.days} days)"],
        ["pilot", f"{p.start} to {p.end or 'open'}; judged: {during}"],
        *([["outdoor temperature", report.data.weather]] if any(m.energy for m in p.metrics)
          else []),
        ["expected effect", "-" if p.expected_effect_pct is None
                            else f"{p.expected_effect_pct:+g} (% or points)"],
    ]  # fmt: skip
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_h(report.site_name)}: pilot {_h(p.id)}</title>",
        f"<style>{CSS}.facts td{{text-align:left}}</style><script>{SCRIPT}</script></head><body>",
        f"<h1>{_h(report.site_name)}: pilot report</h1>",
        f"<p class='kpi'><b>{_h(p.title)}</b> ({_h(p.id)})</p>",
        f"<p class='meta'>Days are local days ({_h(report.tz_name)}). Generated {generated} from "
        f"InfluxDB at {_h(report.influx)}.</p>",
        f"<p>{_h(p.description)}</p>" if p.description else "",
        _table(["", ""], facts).replace("<table>", "<table class='facts'>", 1),
        "<h2>Results</h2>",
        _table(
            ["metric", "change per day", "change", "90 % interval", "verdict", "method", "days"],
            summary_rows(report.results),
        ),
        "<p class='source'>Change: what the pilot's days measured minus what the method expected "
        "for them without the pilot, per day (points for rates); percent of the expected. The "
        "90 % interval is the method's own: how often such intervals held a known change in "
        "simulated pilots of each season and metric is measured in docs/pilots.md "
        "(bench/pilot_methods.py), not promised here. Days: baseline + "
        "pilot days with data. Verdicts: <i>effect</i> (the interval excludes zero), <i>no "
        "effect detected</i> (it contains zero), <i>baseline inadequate</i> (the baseline "
        "cannot say what would have happened: no number), <i>insufficient data</i>.</p>",
    ]
    for r in report.results:
        parts += _metric_section(r, pngs)
    parts += [
        "<h2>Queries</h2><p class='source'>Every series above came from these InfluxQL queries "
        "(daily rollups of the scope and control spaces; the weather stations' hourly mean "
        "temperatures):</p><pre class='source'>" + _h("\n".join(report.data.queries)) + "</pre>",
        "</body></html>",
    ]
    return "\n".join(x for x in parts if x)


def _metric_section(r: MetricResult, pngs: dict[str, str]) -> list[str]:
    e = r.effect
    out = [f"<h2>{_h(r.metric.value)}</h2>"]
    for name, _ in FIGURES:
        key = f"{r.metric.value}-{name}"
        if key in pngs:
            out.append(
                f'<figure><img data-figure="{key}" alt="{_h(key)}" '
                f'src="data:image/png;base64,{pngs[key]}"></figure>'
            )
    if not e.daily:
        out.append("<p class='nodata'>No daily series: the method had too little data.</p>")
    if r.avoided_kgco2e is not None:
        out.append(
            f"<p class='kpi'>Avoided emissions over {e.reporting_days} days: "
            f"<b>{r.avoided_kgco2e:,.0f} kgCO2e</b> (avoided kWh x the site's factor; "
            f"source: {_h(r.factor_source or 'not given')}).</p>"
        )
        if r.factor_example:
            how = HEAT_HOW_TO if r.metric is Metric.HEAT_KWH else ELECTRICITY_HOW_TO
            out.append(
                "<p class='warn'>These avoided emissions use an example emission factor, not a "
                f"published statistic: quote them only as an illustration. To fix: {_h(how)}.</p>"
            )
    notes = "".join(f"<li>{_h(n)}</li>" for n in e.notes)
    out.append(
        f"<p class='source'>Method <code>{_h(e.method)}</code>: "
        f"{_h(METHODS.get(e.method, ''))}</p><ul class='source'>{notes}</ul>"
        f"<p class='source'>Data: {_h(SOURCES[r.metric])}; unit {_h(r.unit)}.</p>"
    )
    return out


def write_pilot_report(
    report: PilotReport,
    out: Path,
    on_step: Callable[[str], None] | None = None,
    pdf: bool = True,
) -> tuple[Path, Path | None]:
    """The pilot's HTML report, and with `pdf` its PDF (raises PdfError without Chromium, after
    the HTML is written)."""
    step = on_step or (lambda _name: None)
    out.mkdir(parents=True, exist_ok=True)
    tz = ZoneInfo(report.tz_name)
    generated = datetime.now(UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
    pngs = {}
    for r in report.results:
        for name, make in FIGURES:
            figure = make(r)
            if figure is not None:
                pngs[f"{r.metric.value}-{name}"] = png(figure)
                plt.close(figure)
        step(f"figures {r.metric.value}")
    html_path = out / f"pilot-{report.site}-{report.pilot.id}.html"
    return save(html_path, render_pilot_html(report, pngs, generated), step, pdf)
