"""The weekly impact report: `kera-dashboards report --week 2026-W48 --out DIR` (docs/impact.md),
and a pilot's report: `kera-dashboards pilot ID --out DIR` (docs/pilots.md).

Reads only the rollup measurements, so a report can be made for any week the rollups cover,
long after its raw readings expired."""

from dashboards.report._data import (
    TOTALS,
    AlertSummary,
    FactorLine,
    WeekData,
    factor_lines,
    load_week,
)
from dashboards.report._figures import FIGURES
from dashboards.report._pdf import PdfError
from dashboards.report._pilot import PilotReport, write_pilot_report
from dashboards.report._render import render_html, write_report

__all__ = [
    "FIGURES",
    "TOTALS",
    "AlertSummary",
    "FactorLine",
    "PdfError",
    "PilotReport",
    "WeekData",
    "factor_lines",
    "load_week",
    "render_html",
    "write_pilot_report",
    "write_report",
]
