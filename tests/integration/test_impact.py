"""A simulated week, backfilled through the real broker and ingestor into the real InfluxDB, and
everything issue 10 promises about it: hourly energy that adds up to the meters' counters,
emptyings that match the simulator's own ledger, a recompute from storage that reproduces the
live rollups, an Impact dashboard whose every query has data, and a weekly report that opens in
headless Chromium with every figure."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dashboards.cli import all_dashboards
from dashboards.report import factor_lines
from devices import Registry
from devices.factor_source import PublishedFactor
from devices.site import default_site_text
from devstack.services import InfluxDB, Mosquitto
from firmware_sim import Links, run
from firmware_sim.runner import Summary
from ingest.evaluation.rollups import (
    ROLLUP_MEASUREMENTS,
    RollupKey,
    qualified,
    read_rollups,
    week_bounds,
    week_of,
)
from ingest.mqtt import parse_mqtt_url
from ingest.settings import IngestSettings
from ingest.storage.query import influxql_sync
from tests.helpers import (
    Publisher,
    chromium,
    count,
    local_settings,
    query,
    running_ingestor,
    settings_env,
    wait_until,
)
from tests.integration.test_dashboards import PILOTS_ANNOTATION, queries

# Run again with the clock 400 days ahead by scripts/test (rollups and the weekly report).
pytestmark = pytest.mark.shifted_clock

BIN = Path(sys.executable).parent
RP = "forever"
LEAD_MS = 6 * 3_600_000


def r(measurement: str) -> str:
    return qualified(measurement, RP)


@dataclass
class Week:
    settings: IngestSettings
    registry: Registry
    week: str
    lo: int
    hi: int
    summary: Summary
    too_late: int


@pytest.fixture(scope="module")
def week(influx: InfluxDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Week]:
    """The last complete ISO week (local time), simulated with every device of the Kera site."""
    tmp = tmp_path_factory.mktemp("impact")
    broker = Mosquitto(tmp / "mosquitto").start()
    # The retention set-up docs/impact.md recommends: raw readings expire, rollups stay.
    database = f"impact_{os.getpid()}"
    for q in (
        f'CREATE DATABASE "{database}"',
        f'CREATE RETENTION POLICY "raw" ON "{database}" DURATION 30d REPLICATION 1 DEFAULT',
        f'CREATE RETENTION POLICY "{RP}" ON "{database}" DURATION INF REPLICATION 1',
    ):
        influxql_sync(influx.url, q)
    settings = local_settings(broker.url, influx.url, database, tmp, rollups_rp=RP)
    registry = Registry.load()
    tz = ZoneInfo(registry.site.timezone)
    name = week_of(int(time.time() * 1000) - 7 * 86_400_000, tz)
    lo, hi = week_bounds(name, tz)

    async def backfill() -> tuple[Summary, int]:
        async with running_ingestor(settings) as ingestor:
            links = Links(parse_mqtt_url(settings.mqtt_url), "kera", client_prefix="impact-sim")
            # From six hours before the week, so the recompute has readings before its first day.
            summary = await asyncio.to_thread(
                run, registry, links, seed=10, start_ms=lo - LEAD_MS,
                duration_s=(hi - lo + LEAD_MS) / 1000, speed=0,
            )  # fmt: skip
            expected = {
                ("energy", "energy_kwh"): summary.by_kind["energy_meter"],
                ("occupancy", "people"): summary.by_kind["occupancy"],
                ("waste_bin", "fill_pct"): summary.by_kind["waste_bin"],
            }

            async def stored() -> bool:
                for (m, f), n in expected.items():
                    if await count(settings, m, f) != n:
                        return False
                return True

            await wait_until(stored, timeout=180)
        # Leaving the block stops the ingestor, which flushes the rollups one last time.
        assert ingestor.rollups is not None
        return summary, ingestor.rollups.too_late

    try:
        summary, too_late = asyncio.run(backfill())
        yield Week(settings, registry, name, lo, hi, summary, too_late)
    finally:
        broker.stop()


def in_week(w: Week) -> str:
    return f"time >= {w.lo}ms AND time < {w.hi}ms"


async def test_hourly_and_daily_energy_match_the_counters(week: Week) -> None:
    s, w = week.settings, in_week(week)
    assert week.too_late == 0
    # The rollups went to their own retention policy, the readings to the default one.
    assert await query(s, 'SELECT count("kwh") FROM "raw"."energy_hourly"') == []
    assert await query(s, f'SELECT count("energy_kwh") FROM {r("energy")}') == []
    counters = await query(
        s, f'SELECT spread("energy_kwh") FROM "energy" WHERE {w} GROUP BY "device"'
    )
    hourly = await query(
        s, f'SELECT sum("kwh"), count("kwh") FROM {r("energy_hourly")} WHERE {w} GROUP BY "device"'
    )
    daily = await query(
        s, f'SELECT sum("kwh") FROM {r("energy_daily")} WHERE {w} GROUP BY "device"'
    )
    delta = {x["tags"]["device"]: x["values"][0][1] for x in counters}
    rolled = {x["tags"]["device"]: (x["values"][0][1], x["values"][0][2]) for x in hourly}
    days = {x["tags"]["device"]: x["values"][0][1] for x in daily}
    meters = {d.id for d in week.registry if d.kind == "energy_meter"}
    assert set(rolled) == set(delta) == set(days) == meters
    for device, total in delta.items():
        kwh, hours = rolled[device]
        assert kwh == pytest.approx(total, rel=0.005), device
        assert 7 * 24 - 1 <= hours <= 7 * 24 + 1, device  # a DST week has one more or less
        assert days[device] == pytest.approx(kwh, rel=1e-6), device
    site = await query(
        s, f'SELECT sum("supply_kwh"), sum("kgco2e") FROM {r("impact_daily")} WHERE {w}'
    )
    supply, kg = site[0]["values"][0][1:]
    assert supply == pytest.approx(rolled["em-main"][0], rel=1e-6)
    factor = week.registry.site.impact.emission_factor_kg_per_kwh
    assert kg == pytest.approx(supply * factor, rel=1e-6)


async def test_emptyings_match_the_simulators_ledger(week: Week) -> None:
    s = week.settings
    ledger = [e for e in week.summary.emptyings if week.lo <= e["time_ms"] < week.hi]
    assert len(ledger) >= 10  # every fraction is collected at least once a week
    stored = await query(
        s,
        f'SELECT "fill_before_pct", "volume_l", "too_early", "too_late" FROM {r("waste_emptying")} '
        f'WHERE "retracted" = false AND {in_week(week)} GROUP BY "device", "fraction"',
    )
    detected = {
        (x["tags"]["device"], v[0]): (v[1], v[2], x["tags"]["fraction"])
        for x in stored
        for v in x["values"]
    }
    assert set(detected) == {(e["device"], e["time_ms"]) for e in ledger}
    truth_per_fraction: dict[str, float] = defaultdict(float)
    for e in ledger:
        fill, _, _ = detected[(e["device"], e["time_ms"])]
        # Echo noise (8 mm) and the medians give a fill within a few points of the truth.
        assert fill == pytest.approx(e["fill_before_pct"], abs=2.5), e
        truth_per_fraction[e["fraction"]] += e["volume_l"]
    per_fraction = await query(
        s,
        f'SELECT sum("volume_l"), sum("emptyings") FROM {r("waste_daily")} WHERE {in_week(week)} '
        'GROUP BY "fraction"',
    )
    rolled = {x["tags"]["fraction"]: x["values"][0][1:] for x in per_fraction}
    # One reading's echo noise is 0.8 % of the depth; the medians leave about half a point, so
    # a single emptying at 40 % can be 3 % off; over the whole week the errors average out.
    for fraction, litres in truth_per_fraction.items():
        assert rolled[fraction][0] == pytest.approx(litres, rel=0.03), fraction
    total = sum(v for v, _ in rolled.values())
    assert total == pytest.approx(sum(truth_per_fraction.values()), rel=0.01)
    assert sum(n for _, n in rolled.values()) == len(ledger)
    site = await query(
        s, f'SELECT sum("waste_l"), sum("sorted_l") FROM {r("impact_daily")} WHERE {in_week(week)}'
    )
    waste, sorted_l = site[0]["values"][0][1:]
    assert waste == pytest.approx(sum(v for v, _ in rolled.values()), rel=1e-6)
    assert sorted_l == pytest.approx(waste - rolled.get("mixed", [0.0])[0], rel=1e-6)


async def snapshot(s: IngestSettings, week: Week) -> dict[RollupKey, dict[str, Any]]:
    return await read_rollups(s.influx_url, s.influx_db, in_week(week), RP)


async def test_recompute_from_storage_reproduces_the_live_rollups(week: Week) -> None:
    s = week.settings
    live = await snapshot(s, week)
    assert len(live) > 2000
    for m in ROLLUP_MEASUREMENTS:
        await query(s, f'DROP MEASUREMENT "{m}"')
    assert await snapshot(s, week) == {}
    done = subprocess.run(
        [str(BIN / "kera-ingest"), "rollups", "--week", week.week],
        env=settings_env(s), check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rollup points for 7 days" in done.stderr
    # A week before anything was stored: said so, not "wrote 0 points".
    empty = subprocess.run(
        [str(BIN / "kera-ingest"), "rollups", "--week", "2020-W10"],
        env=settings_env(s), check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert empty.returncode == 0, empty.stderr
    assert "nothing to roll up" in empty.stderr
    assert "wrote 0" not in empty.stderr
    again = await snapshot(s, week)
    assert set(again) == set(live)
    for key, row in live.items():
        for field, value in row.items():
            other = again[key].get(field)
            if isinstance(value, float):
                assert other == pytest.approx(value, rel=1e-6, abs=1e-6), (key, field)
            else:
                assert other == value, (key, field)


async def test_impact_dashboard_queries_have_data(week: Week) -> None:
    board = all_dashboards(RP)["kera-impact"]
    empty = []
    for what, panel_query in queries(board):
        if what == f"annotation {PILOTS_ANNOTATION}":
            continue  # pilot periods need weeks of data: tests/integration/test_pilots.py
        q = panel_query.replace("$timeFilter", in_week(week))
        q = q.replace("$site", "kera").replace("$space", ".*")
        series = await query(week.settings, q)
        if not any(
            v for x in series for row in x.get("values", []) for v in row[1:] if v is not None
        ):
            empty.append(f"{what}: {q}")
    assert not empty, "\n".join(empty)


def test_days_rolled_up_with_an_example_factor_are_counted_by_the_report(
    week: Week, tmp_path: Path
) -> None:
    """The site file now names a published electricity figure, but the week's days were rolled
    up with the example one: the report's first screen says the new source and how many of
    the week's stored days still carry the example's figures, and how to recompute them."""
    site_file = tmp_path / "site.yaml"
    site_file.write_text(
        default_site_text().replace(
            "    kind: example\n    note: the bundled demo site's value, chosen for the demo\n",
            "    {kind: published, publisher: Statistics Finland, year: 2026, where: table 14qt}\n",
        )
    )
    impact = Registry.load(site_file).site.impact
    assert isinstance(impact.emission_factor_source, PublishedFactor)
    out = tmp_path / "report"
    done = subprocess.run(
        [str(BIN / "kera-dashboards"), "report", "--week", week.week, "--out", str(out),
         "--no-pdf", "--config", str(site_file)],
        env=settings_env(week.settings), check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "example emission factor" not in done.stderr  # the site file has none now
    page = (out / f"impact-kera-{week.week}.html").read_text()
    top = page[: page.index("<h2>")]
    assert "electricity 0.05 kg/kWh, published by Statistics Finland for 2026" in top
    # Every local day of the ISO week (a DST week too) has the main supply's emissions.
    assert "7 days of this week were rolled up with an example electricity factor" in top
    assert f"kera-ingest rollups --week {week.week}" in top
    assert "heat factor" not in top  # district heat was published all along


async def test_weekly_report_opens_in_chromium_with_every_figure(
    week: Week, tmp_path: Path
) -> None:
    from matplotlib import image

    from dashboards.report import FIGURES

    out = tmp_path / "report"
    done = subprocess.run(
        [str(BIN / "kera-dashboards"), "report", "--week", week.week, "--out", str(out)],
        env=settings_env(week.settings), check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    html_path = out / f"impact-kera-{week.week}.html"
    pdf_path = html_path.with_suffix(".pdf")
    assert f"wrote {html_path}" in done.stdout
    # The PDF is the page printed by Chromium on A4 (595 x 842 pt), several pages long.
    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF")
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert len(boxes) >= 3, boxes
    assert all(abs(float(w) - 595.3) < 2 and abs(float(h) - 841.9) < 2 for w, h in boxes)

    dom = chromium("--dump-dom", html_path.as_uri(), tmp=tmp_path)
    assert f'data-figures-loaded="{len(FIGURES)}/{len(FIGURES)}"' in dom.stdout, dom.stderr[-2000:]
    # Laid out at the width of an A4 page (794 CSS px), nothing is wider than the page.
    a4 = chromium("--dump-dom", "--window-size=794,1123", html_path.as_uri(), tmp=tmp_path)
    assert 'data-too-wide=""' in a4.stdout, re.findall(r'data-too-wide="[^"]*"', a4.stdout)
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1000,5000", html_path.as_uri(), tmp=tmp_path)
    pixels = image.imread(str(shot))
    assert pixels.shape[0] == 5000
    assert pixels.shape[1] == 1000
    # Not a blank page: the plots' colours are there.
    colours = {tuple(p) for p in pixels[::7, ::7].reshape(-1, pixels.shape[2]).round(2).tolist()}
    assert len(colours) > 40

    # The key numbers in the page are the rollups' own.
    site = await query(
        week.settings,
        'SELECT sum("supply_kwh"), sum("kgco2e"), sum("sorted_l") / sum("waste_l") * 100 '
        f"FROM {r('impact_daily')} WHERE {in_week(week)}",
    )
    supply, kg, rate = site[0]["values"][0][1:]
    page = html_path.read_text()

    def shown(v: float) -> str:  # as the report rounds
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"

    assert f"<td>Grid energy</td><td>{shown(supply)} kWh</td>" in page
    assert f"<td>Emissions</td><td>{shown(kg)} kgCO2e</td>" in page
    assert f"Sorting rate: <b>{rate:.1f} %</b>" in page
    # Above the first section, whether each factor is published or an example, as the rollups
    # stored it with the week's days and as the site file says.
    top = page[: page.index("<h2>")]
    for f in factor_lines(week.registry.site.impact):
        if isinstance(f.source, PublishedFactor):
            assert f"{f.energy} {f.value}, published by {f.source.publisher}" in top
        else:
            assert f"{f.energy} {f.value}, an EXAMPLE factor, not a published statistic" in top
            assert f"The {f.energy} emissions in this report use an example" in top
        assert f"days of this week were rolled up with an example {f.energy}" not in top
    stored = await query(
        week.settings,
        f'SELECT distinct("factor_source") FROM {r("impact_daily")} WHERE {in_week(week)}',
    )
    source = week.registry.site.impact.emission_factor_source
    assert source is not None
    assert [v[1] for v in stored[0]["values"]] == [source.label()]
    assert "<td>em-main</td>" in page
    assert "<td>occ-main-hall</td>" in page


async def test_a_restart_reloads_the_window_so_its_hour_stays_whole(
    settings: IngestSettings, broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hour whose readings straddle an ingestor restart is computed from all of them: the
    restarted ingestor reloads the days a repair may reach from InfluxDB before it takes new
    readings (an hour and, here, one device per query at a time)."""
    monkeypatch.setattr("ingest.evaluation.evaluator.SEED_DEVICES_PER_QUERY", 1)
    now = int(time.time() * 1000)
    base = now - now % 3_600_000 - 3 * 3_600_000
    pub = Publisher(broker.port, "restart-meter")

    def send(first: int, last: int) -> None:
        for i in range(first, last):
            body = {"ts": base + i * 60_000, "energy_kwh": 100 + i / 10, "power_w": 6000.0}
            pub.client.publish("kera/kera/em-workshop/telemetry", json.dumps(body), qos=1)

    async def stored(n: int) -> None:
        async def done() -> bool:
            return await count(settings, "energy", "energy_kwh") == n

        await wait_until(done, timeout=30)

    try:
        async with running_ingestor(settings):
            send(0, 91)  # 00:00 to 01:30 of the three hours
            await stored(91)
        async with running_ingestor(settings):
            send(91, 121)  # 01:31 to 02:00, after the restart
            await stored(121)
    finally:
        pub.client.loop_stop()
        pub.client.disconnect()
    hours = await query(
        settings,
        f'SELECT "kwh" FROM "energy_hourly" WHERE "device" = \'em-workshop\' AND time >= {base}ms',
    )
    kwh = {v[0]: v[1] for v in hours[0]["values"]}
    # 0.1 kWh a minute: 6 kWh in each whole hour, the second one across the restart.
    assert kwh[base] == pytest.approx(6.0)
    assert kwh[base + 3_600_000] == pytest.approx(6.0)
    # The day's point after the restart counts the readings from before it too: the reload
    # computed every hour of the day, not only the live window's.
    days = await query(
        settings, 'SELECT sum("readings") FROM "device_daily" WHERE "device" = \'em-workshop\''
    )
    assert days[0]["values"][0][1] == 121


async def test_readings_later_than_the_window_are_repaired_from_storage(
    settings: IngestSettings, broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway resends an hour it had buffered, two hours late: behind the live window, so
    the evaluator reads the neighbours back from InfluxDB and recomputes the hours, their day
    and the site's day, as if the readings had come in order."""
    # Flush (and repair) every half second instead of every 30 s, so the test waits seconds.
    monkeypatch.setattr("ingest.evaluation.evaluator.ROLLUP_FLUSH_S", 0.5)
    now = int(time.time() * 1000)
    base = now - now % 3_600_000 - 4 * 3_600_000
    pub = Publisher(broker.port, "late-meter")

    def send(minutes: range) -> None:
        for i in minutes:
            body = {"ts": base + i * 60_000, "energy_kwh": 100 + i / 10, "power_w": 6000.0}
            pub.client.publish("kera/kera/em-workshop/telemetry", json.dumps(body), qos=1)

    async def hour_1(field: str) -> Any:
        rows = await query(
            settings,
            f'SELECT "{field}" FROM "energy_hourly" WHERE "device" = \'em-workshop\' '
            f"AND time = {base + 3_600_000}ms",
        )
        return rows[0]["values"][0][1] if rows else None

    try:
        async with running_ingestor(settings) as ingestor:
            rollups = ingestor.rollups
            assert rollups is not None
            send(range(0, 61))  # 00:00-01:00, then nothing heard until 02:06
            send(range(126, 241))  # 02:06-04:00
            await wait_until(lambda: rollups.written > 0 and not rollups.late, timeout=30)

            async def interpolated(expected: bool) -> bool:
                return await hour_1("interpolated") is expected

            await wait_until(lambda: interpolated(True), timeout=30)
            # The window is an hour (03:00-04:00): 01:01-02:05 come late, and are repaired.
            send(range(61, 126))
            await wait_until(lambda: rollups.repaired == 65, timeout=60)
            await wait_until(lambda: interpolated(False), timeout=30)
            assert rollups.too_late == 0
    finally:
        pub.client.loop_stop()
        pub.client.disconnect()
    assert await hour_1("kwh") == pytest.approx(6.0)  # 0.1 kWh a minute
    assert await hour_1("readings") == 60
    # Every reading counted once, in its local day (the four hours may straddle midnight).
    days = await query(
        settings, 'SELECT sum("readings") FROM "device_daily" WHERE "device" = \'em-workshop\''
    )
    assert days[0]["values"][0][1] == 241
