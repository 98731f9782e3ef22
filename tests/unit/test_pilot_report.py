"""A pilot's report from small fixed data, rendered by the real Chromium: every metric has its
figures, every number names its method and data, nothing is wider than an A4 page, and the PDF
is A4 (dashboards/report/_pilot.py)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from dashboards.report import PilotReport, write_pilot_report
from dashboards.report._pilot import FIGURES, SOURCES
from devices import Registry
from devices.pilots import Metric
from pilots.evaluate import METHODS, PilotData, evaluate
from tests.helpers import chromium

# Run again with the clock 400 days ahead by scripts/test (the pilot report).
pytestmark = pytest.mark.shifted_clock

TZ = ZoneInfo("Europe/Helsinki")


def _report() -> PilotReport:
    """The bundled café pilot (heat and kgCO2e) with 8 weeks of baseline and 4 of pilot, heat
    following the cold and cut by 12 % from the start."""
    registry = Registry.load()
    pilot = next(p for p in registry.site.pilots if p.id == "cafe-heat-control")
    first = pilot.baseline_period.start
    rng = np.random.default_rng(5)
    days = [first + timedelta(days=i) for i in range(84)]
    temperature = {d: -3 + 4 * np.sin(i / 6) + rng.normal(0, 2.5) for i, d in enumerate(days)}
    heat = {}
    for d in days:
        kwh = max(0.0, 17 - temperature[d]) * 12 + 30 + rng.normal(0, 6)
        heat[d] = kwh * (0.88 if d >= pilot.start else 1.0)
    data = PilotData(
        scope={Metric.HEAT_KWH: heat, Metric.KGCO2E: {d: v * 0.15 for d, v in heat.items()}},
        temperature=temperature,
        queries=['SELECT "kwh" FROM "heat_daily" WHERE ("device" = \'hm-cafe\') AND time >= 0ms'],
    )
    today = pilot.start + timedelta(weeks=4)
    results = evaluate(pilot, data, TZ, today, registry.site.impact)
    return PilotReport("kera", "Kera", "Europe/Helsinki", pilot, results, data, "test db kera")


def test_the_pilot_report_names_method_and_data_for_every_number(tmp_path: Path) -> None:
    report = _report()
    html_path, pdf_path = write_pilot_report(report, tmp_path, pdf=False)
    assert pdf_path is None
    assert html_path.name == "pilot-kera-cafe-heat-control.html"
    page = html_path.read_text()
    heat = next(r for r in report.results if r.metric is Metric.HEAT_KWH)
    e = heat.effect
    assert e.estimate_pct is not None
    assert e.low_pct is not None
    assert e.high_pct is not None
    assert e.low_pct <= -12 <= e.high_pct
    assert f"<td>{e.estimate_pct:+.1f} %</td>" in page
    assert f"<td>{e.low_pct:+.1f} .. {e.high_pct:+.1f} %</td>" in page
    for r in report.results:
        assert METHODS[r.effect.method] in page.replace("&#x27;", "'")
        assert SOURCES[r.metric].replace("'", "&#x27;") in page
        for name, _ in FIGURES:
            assert f'data-figure="{r.metric.value}-{name}"' in page
    assert heat.avoided_kgco2e is not None
    assert f"<b>{heat.avoided_kgco2e:,.0f} kgCO2e</b>" in page
    assert "heat_daily" in page  # the queries
    assert "Demand-controlled heating in the café" in page
    # No coverage is promised that no study of this season and metric measured (issue 30).
    assert not re.search(r"\d+ of 10 pilots", page)
    assert "bench/pilot_methods.py" in page


def test_the_pilot_report_renders_in_chromium_and_prints_on_a4(tmp_path: Path) -> None:
    report = _report()
    html_path, pdf_path = write_pilot_report(report, tmp_path / "out")
    assert pdf_path is not None
    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF")
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert boxes
    assert all(abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2 for w, h in boxes)
    figures = len(report.results) * len(FIGURES)
    dom = chromium("--dump-dom", "--window-size=794,1123", html_path.as_uri(), tmp=tmp_path)
    assert f'data-figures-loaded="{figures}/{figures}"' in dom.stdout, dom.stderr[-2000:]
    assert 'data-too-wide=""' in dom.stdout, re.findall(r'data-too-wide="[^"]*"', dom.stdout)


def test_a_pilot_without_data_says_so_instead_of_drawing(tmp_path: Path) -> None:
    registry = Registry.load()
    pilot = next(p for p in registry.site.pilots if p.id == "coworking-booking")
    results = evaluate(pilot, PilotData(), TZ, pilot.start + timedelta(days=10))
    report = PilotReport("kera", "Kera", "Europe/Helsinki", pilot, results, PilotData(), "db")
    page = write_pilot_report(report, tmp_path, pdf=False)[0].read_text()
    assert "data-figure=" not in page
    assert page.count("No daily series: the method had too little data.") == 2
    assert "insufficient data" in page
    assert date.today().isoformat()[:4] in page  # generated at
