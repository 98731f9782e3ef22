"""The weekly report as one self-contained HTML file (figures inlined as PNG), and a PDF that is
that page printed by headless Chromium. Every section ends with where its numbers come from; a
figure without data is replaced by a sentence saying so, never drawn as zeros."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt

from dashboards.report._data import TOTALS, WeekData
from dashboards.report._figures import FIGURES, day_label, fmt, png
from dashboards.report._pdf import print_pdf
from devices.factor_source import PublishedFactor


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _change(now: float | None, before: float | None, unit: str) -> str:
    if now is None or before is None:
        return "-"
    if unit == "%":
        return f"{now - before:+.1f} pp"
    if before == 0:
        return "-"
    return f"{100 * (now - before) / before:+.1f} %"


# --- HTML --------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:920px;
margin:2em auto;color:#212121;padding:0 1em}h1{margin-bottom:.2em}
h2{margin-top:1.8em;border-bottom:2px solid #2e7d32}
table{border-collapse:collapse;margin:.6em 0;width:100%}td,th{border-bottom:1px solid #e0e0e0;
padding:.25em .6em;text-align:right}td:first-child,th:first-child{text-align:left}
.source{color:#616161;font-size:.85em}figure{margin:.8em 0}img{max-width:100%}
.kpi{font-size:1.1em}.meta{color:#616161}pre{white-space:pre-wrap;word-break:break-all}
.nodata{color:#616161;font-style:italic}.warn{background:#fff3e0;border-left:4px solid #ef6c00;
padding:.5em .8em}
@page{size:A4;margin:14mm 12mm}
@media print{body{max-width:none;margin:0;padding:0;font-size:10pt}
h2{break-after:avoid}figure,table,tr,.kpi{break-inside:avoid}
h1,h2{color:#1b5e20}}
"""

# Marks the page once every figure has decoded, so a headless browser (the tests) can tell a
# rendered report from one with a broken image.
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img[data-figure]'), ok = 0;
  imgs.forEach(function (i) { if (i.complete && i.naturalWidth > 0) ok++; });
  document.body.setAttribute('data-figures-loaded', ok + '/' + imgs.length);
  // Elements wider than the page's content box: none, or they would be cut off when printed.
  var limit = document.body.clientWidth + 1, wide = [];
  document.querySelectorAll('body *').forEach(function (e) {
    var w = e.getBoundingClientRect().width;
    if (w > limit) wide.push(e.tagName.toLowerCase() + ' ' + Math.round(w));
  });
  document.body.setAttribute('data-too-wide', wide.join(';'));
});
"""


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _h(s: str) -> str:
    return html.escape(s)


def totals_rows(data: WeekData) -> list[list[str]]:
    return [
        [label, fmt(data.totals.get(k), unit), fmt(data.previous.get(k), unit),
         _change(data.totals.get(k), data.previous.get(k), unit)]
        for k, (label, unit, _) in TOTALS.items()
    ]  # fmt: skip


NO_DATA = {
    "energy": "No energy readings this week: no figure.",
    "spaces": "No sub-metered energy per space this week: no figure.",
    "waste": "No emptying was detected this week: no waste was measured as collected.",
    "use": "No room sensor reported this week: no figure of space use.",
    "utilisation": "No room sensor reported this week: no figure of utilisation.",
    "completeness": "No device is registered for this site.",
}


def _fresh(data: WeekData) -> str:
    """When the newest reading and rollup are from, and a warning when the rollups lag."""

    def at(ms: int | None) -> str:
        if ms is None:
            return "none this week"
        return (
            datetime.fromtimestamp(ms / 1000, UTC).astimezone(data.tz).strftime("%a %d.%m. %H:%M")
        )

    text = (
        f"<p class='meta'>Newest reading: {at(data.newest_reading_ms)}; newest hourly rollup: "
        f"{at(data.newest_rollup_ms)}.</p>"
    )
    behind = data.rollups_behind_h
    if behind > 0:
        text += (
            f"<p class='warn'>The rollups are {behind:.0f} h behind the readings: the figures "
            "below are still growing. Wait for the ingestor to catch up (it rolls up every 30 s) "
            "or recompute with <code>kera-ingest rollups --week "
            f"{_h(data.week)}</code>, then make the report again.</p>"
        )
    return text


def _factors(data: WeekData) -> str:
    """On the first screen: whether each emission factor is a publication or an example, and
    what to do about an example, before any kgCO2e is read."""
    if not data.factors:
        return "<p class='meta'>No emission factor is set in the site file: no kgCO2e.</p>"
    year = datetime.fromtimestamp(data.start_ms / 1000, UTC).astimezone(data.tz).year
    said, warnings = [], []
    for f in data.factors:
        s = f.source
        if isinstance(s, PublishedFactor):
            text = f"{f.energy} {f.value}, published by {s.publisher} for {s.year}"
            if s.year < year:
                text += f" (this week is in {year}: update it when that year's is published)"
            if f.example_days:
                warnings.append(
                    f"{f.example_days} days of this week were rolled up with an example "
                    f"{f.energy} factor, before the site file named a published one: recompute "
                    f"them with <code>kera-ingest rollups --week {_h(data.week)}</code>, then "
                    "make the report again."
                )
        else:
            text = f"{f.energy} {f.value}, an EXAMPLE factor, not a published statistic"
            warnings.append(
                f"The {f.energy} emissions in this report use an example emission factor, not a "
                f"published statistic: quote them only as an illustration. To fix: {_h(f.how_to)}."
            )
        said.append(_h(text))
    out = f"<p class='meta' data-factors>Emission factors: {'; '.join(said)}.</p>"
    return out + "".join(f"<p class='warn'>{w}</p>" for w in warnings)


def render_html(data: WeekData, pngs: dict[str, str], generated: str) -> str:
    def fig(name: str, caption: str) -> str:
        if name not in pngs:
            return f"<p class='nodata'>{_h(NO_DATA[name])}</p>"
        return (
            f'<figure><img data-figure="{name}" alt="{_h(caption)}" '
            f'src="data:image/png;base64,{pngs[name]}"><figcaption class="source">'
            f"{_h(caption)}</figcaption></figure>"
        )

    first, last = day_label(data.start_ms, data), day_label(data.end_ms - 1, data)
    sources = {f.energy: f.source.label() for f in data.factors}
    factor = sources.get("electricity", "no emission factor is set in the site file")
    heat_factor = sources.get("district heat", "no district-heat factor is set in the site file")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_h(data.site_name)}: impact report {data.week}</title>",
        f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>",
        f"<h1>{_h(data.site_name)}: impact report</h1>",
        f"<p class='meta'>Week {data.week}, {first} to {last} ({data.tz.key}). "
        f"Generated {generated} from InfluxDB at {_h(data.influx)}.</p>",
        _fresh(data),
        _factors(data),
        "<h2>Totals against the previous week</h2>",
        _table(["", "this week", "previous week", "change"], totals_rows(data)),
        "<p class='source'>Source: the rollup measurements <code>impact_daily</code>, "
        "<code>space_daily</code> and <code>device_daily</code>, summed over the week's local "
        "days; ratios are ratios of weekly sums. Definitions: docs/impact.md.</p>",
        "<h2>Energy and emissions</h2>",
        fig("energy", "Grid energy and solar production per day, with the grid's kgCO2e."),
        fig("spaces", "Energy per space: sub-metered consumption, grid supply and solar."),
        _table(
            ["space", "consumption kWh", "kgCO2e", "grid supply kWh", "solar kWh"],
            [[r[0], fmt(r[1]), fmt(r[2]), fmt(r[3]), fmt(r[4])] for r in data.spaces_energy],
        ),
        "<p class='source'>Source: <code>impact_daily</code> and <code>space_daily</code>, "
        "built from each meter's hourly energy (<code>energy_hourly</code>): the cumulative "
        "counter's increase split over the hours by time, resets counted from zero. "
        f"kgCO2e = kWh x grid emission factor; factor source: {_h(factor)}. District heat "
        "(<code>heat_kwh</code>) and water (<code>water_m3</code>) in the totals come from the "
        "building's own heat and water meters (<code>heat_daily</code>, <code>water_daily</code>);"
        f" heat kgCO2e = kWh x the district-heat factor; its source: "
        f"{_h(heat_factor)}.</p>",
        "<h2>Waste</h2>",
        fig("waste", "Litres collected per fraction."),
        _table(
            ["fraction", "litres", "emptyings", "too early (< 50 %)", "too late (overflowing)"],
            [[f[0], fmt(f[1]), str(f[2]), str(f[3]), str(f[4])] for f in data.fractions],
        ),
        f"<p class='kpi'>Sorting rate: <b>{fmt(data.totals.get('sorting_rate_pct'), '%')}"
        "</b> of all waste was collected separately from mixed waste.</p>",
        "<p class='source'>Source: <code>waste_daily</code>, from emptyings detected in each "
        "bin's fill level (<code>waste_emptying</code>): volume = fill before emptying x bin "
        "volume from the site file. Sorting rate = litres of separately collected fractions "
        "/ all litres.</p>",
        "<h2>Space use</h2>",
        fig("use", "Hours with people present per space, this week and the previous one."),
        fig("utilisation", "Share of opening hours occupied, and of occupied time with good air."),
        _table(
            [
                "space",
                "hours of use",
                "utilisation %",
                "mean people while open",
                "peak",
                "good air %",
            ],
            [
                [s[0], fmt(s[1]), _pct(s[2]), fmt(s[3]), str(s[4]), _pct(s[5])]
                for s in data.space_use
            ],
        ),
        "<p class='source'>Source: <code>space_daily</code>, from occupancy readings each "
        "held until the next one (at most three reporting intervals). Utilisation = occupied "
        "time within opening hours / opening hours (site file <code>impact.opening_hours"
        "</code>); good air = occupied time with CO2 under 1000 ppm / occupied time.</p>",
        "<h2>Pilots</h2>",
        _pilots_table(data),
        "<p class='source'>Source: <code>pilot_results</code>, each metric's latest result up to "
        "the week's end (stored daily by <code>kera-dashboards pilot --all --write</code>). "
        "Change per day in the metric's unit (points for rates), in percent of what the "
        "baseline expected, with its 90 % interval. Methods and how to read a result: "
        "docs/pilots.md; each pilot's own report: <code>kera-dashboards pilot ID --out DIR"
        "</code>.</p>",
        "<h2>Alerts</h2>",
        _table(
            ["rule", "raised", "resolved", "still open", "median time to resolve", "longest"],
            [
                [
                    a.rule,
                    str(a.raised),
                    str(a.resolved),
                    str(a.still_open),
                    _duration(a.median_resolve_s),
                    _duration(a.max_resolve_s),
                ]
                for a in data.alerts
            ]
            or [["no alerts were raised this week", "", "", "", "", ""]],
        ),
        "<p class='source'>Source: the <code>alerts</code> measurement (one point per firing "
        "and per resolution); an alert raised this week and resolved in the next still counts "
        "with its time to resolve.</p>",
        "<h2>Data completeness</h2>",
        fig("completeness", "Readings received per device, against its reporting interval."),
        _table(
            ["device", "kind", "readings", "expected", "completeness %"],
            [[c[0], c[1], str(c[2]), fmt(c[3], ""), _pct(c[4])] for c in data.completeness],
        ),
        "<p class='source'>Source: <code>device_daily</code>: readings stored / (day length "
        "/ the device's reporting interval in the site file).</p>",
        "<h2>Queries</h2><p class='source'>Every number above came from one of these InfluxQL "
        "queries:</p><pre class='source'>" + _h("\n".join(data.queries)) + "</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _pilots_table(data: WeekData) -> str:
    if not data.pilots:
        return "<p class='nodata'>No pilot ran this week.</p>"
    rows = []
    for p in data.pilots:
        e = p.effect
        if e is None:
            rows.append([p.pilot, p.metric, "not judged yet", "-", "-", "-", "-"])
            continue
        if e.estimate_pct is not None:
            change = f"{e.estimate_pct:+.1f} %"
            interval = f"{_signed(e.low_pct)} .. {_signed(e.high_pct)} %"
        else:
            change = _signed(e.estimate, 2)
            interval = f"{_signed(e.low, 2)} .. {_signed(e.high, 2)}"
        when = "-" if p.judged_ms is None else day_label(p.judged_ms, data)
        rows.append([p.pilot, p.metric, change, interval, e.verdict.replace("_", " "),
                     str(e.reporting_days), when])  # fmt: skip
    return _table(["pilot", "metric", "change", "90 % interval", "verdict", "pilot days",
                   "judged up to"], rows)  # fmt: skip


def _signed(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:+.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def write_report(
    data: WeekData, out: Path, on_step: Callable[[str], None] | None = None, pdf: bool = True
) -> tuple[Path, Path | None]:
    """The HTML report, and with `pdf` its PDF (raises PdfError without Chromium, after the
    HTML is written)."""
    step = on_step or (lambda _name: None)
    out.mkdir(parents=True, exist_ok=True)
    generated = datetime.now(UTC).astimezone(data.tz).strftime("%Y-%m-%d %H:%M %Z")
    pngs = {}
    for name, make in FIGURES:
        figure = make(data)
        if figure is not None:
            pngs[name] = png(figure)
            plt.close(figure)
        step(f"figure {name}")
    html_path = out / f"impact-{data.site}-{data.week}.html"
    return save(html_path, render_html(data, pngs, generated), step, pdf)


def save(
    html_path: Path, page: str, step: Callable[[str], None], pdf: bool
) -> tuple[Path, Path | None]:
    """A report's page, and with `pdf` the page printed beside it (PdfError without Chromium,
    after the HTML is written)."""
    html_path.write_text(page, "utf-8")
    step("html")
    if not pdf:
        return html_path, None
    pdf_path = html_path.with_suffix(".pdf")
    print_pdf(html_path, pdf_path)
    step("pdf")
    return html_path, pdf_path
