"""A pilot judged from InfluxDB: five simulated weeks (four of baseline, one with injected
effects) go through the ingestor's Pipeline and Rollups into a real InfluxDB, and
`kera-dashboards pilot` reads the rollups back and judges each metric (pilots/data.py,
pilots/evaluate.py, docs/pilots.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
import yaml

from dashboards.cli import all_dashboards
from devices import Registry, parse_site
from devices.site import default_site_text
from devstack.services import InfluxDB
from firmware_sim import MemorySink, run
from firmware_sim.pilots import parse_pilot
from ingest.evaluation.rollups import EmissionFactors, Rollups
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from ingest.storage.query import influxql_sync
from ingest.storage.transports import InfluxTarget, V1Transport
from tests.integration.test_dashboards import PILOTS_ANNOTATION, queries

# Run again with the clock 400 days ahead by scripts/test (pilot periods and verdicts).
pytestmark = pytest.mark.shifted_clock

TZ = ZoneInfo("Europe/Helsinki")
BASELINE = date(2026, 11, 30)  # a Monday: four weeks of baseline, then the pilot's week
START = BASELINE + timedelta(weeks=4)
KEEP = {"ws-roof": 900, "hm-cafe": 900, "occ-coworking": 600, "occ-meeting-1": 600,
        "occ-meeting-2": 600}  # fmt: skip


def _site(fmi_url: str | None = None) -> str:
    raw = yaml.safe_load(default_site_text())
    devices = [{**d, "interval_s": KEEP[d["id"]]} for d in raw["devices"] if d["id"] in KEEP]
    pilots = [
        {"id": "cafe-heat-control", "title": "Heat control", "partner": "Test Oy",
         "scope": {"devices": ["hm-cafe"]}, "metrics": ["heat_kwh"], "start": str(START),
         "baseline": {"start": str(BASELINE), "end": str(START - timedelta(days=1))}},
        {"id": "coworking-booking", "title": "Booking", "partner": "Test Oy",
         "scope": {"spaces": ["coworking"]}, "control_spaces": ["meeting-room-1", "meeting-room-2"],
         "metrics": ["utilisation_pct", "occupied_h"], "start": str(START),
         "baseline": {"start": str(BASELINE), "end": str(START - timedelta(days=1))}},
    ]  # fmt: skip
    impact = {
        key: raw["impact"][key]
        for key in (
            "opening_hours",
            "heat_emission_factor_kg_per_kwh",
            "heat_emission_factor_source",
        )
    }
    site = {"site": "kera", "impact": impact, "devices": devices, "pilots": pilots}  # fmt: skip
    if fmi_url:
        site["weather"] = {"fmi": {"place": "Espoo", "url": fmi_url}}
    return yaml.safe_dump(site, sort_keys=False)


# The site's weather station is down for the baseline's first days: FMI's open data (served from
# loopback, as FMI's server formats it) stands in for them.
STATION_DOWN_DAYS = 3


async def _store(registry: Registry, influx: InfluxDB, database: str) -> dict[int, float]:
    """Five simulated weeks into InfluxDB; returns the weather station's hourly means of the days
    it is down, which only FMI knows."""
    sink = MemorySink()
    start_ms = (
        int(datetime(BASELINE.year, BASELINE.month, BASELINE.day, tzinfo=TZ).timestamp()) * 1000
    )
    specs = ["cafe-heat-control:heat_kwh=-12%", "coworking-booking:utilisation_pct=+20%"]
    run(registry, sink, seed=4, start_ms=start_ms, duration_s=5 * 7 * 86400.0, speed=0,
        pilots=[parse_pilot(s, registry.site) for s in specs])  # fmt: skip
    lines: list[str] = []
    rollups = Rollups(registry, lines.extend, EmissionFactors())
    pipeline = Pipeline(registry, Stats(), 65536, 300, 400 * 86400, observe=rollups.observe)
    next_flush = start_ms
    down_until = start_ms + STATION_DOWN_DAYS * 86_400_000
    fmi: dict[int, list[float]] = {}
    for event, _, topic, payload in sink.events:
        if event != "publish":
            continue
        reading = json.loads(payload)
        ts = reading["ts"]
        if "/ws-roof/" in topic and ts < down_until:
            fmi.setdefault(ts - ts % 3_600_000, []).append(reading["temperature_c"])
            continue
        if ts >= next_flush:
            rollups.flush()
            next_flush = ts + 3_600_000
        out = pipeline.handle(topic, payload, ts)
        assert isinstance(out, list), out
        lines.extend(out)
    rollups.flush()
    transport = V1Transport(InfluxTarget(influx.url, database))
    await transport.start()
    await transport.create_database()
    for i in range(0, len(lines), 5000):
        await transport.write("\n".join(lines[i : i + 5000]).encode())
    await transport.close()
    assert len(fmi) == STATION_DOWN_DAYS * 24
    return {h: sum(v) / len(v) for h, v in fmi.items()}


@contextlib.contextmanager
def _fmi_server(hours: dict[int, float], asked: list[dict[str, str]]) -> Iterator[str]:
    """FMI's WFS on loopback, in a thread: the CLI under test runs as a child process."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            asked.append(query)
            body = _fmi_answer(hours, query["starttime"], query["endtime"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/wfs"
    finally:
        server.shutdown()
        server.server_close()


def _fmi_answer(hours: dict[int, float], start: str, end: str) -> str:
    """The hours asked for, in the layout of FMI's `simple` response (tests/data/fmi)."""
    lo = int(datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() * 1000)
    hi = int(datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp() * 1000)
    members = "".join(
        "<wfs:member><BsWfs:BsWfsElement><BsWfs:Time>"
        f"{datetime.fromtimestamp(h / 1000, UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}</BsWfs:Time>"
        f"<BsWfs:ParameterName>t2m</BsWfs:ParameterName><BsWfs:ParameterValue>{v:.1f}"
        "</BsWfs:ParameterValue></BsWfs:BsWfsElement></wfs:member>"
        for h, v in sorted(hours.items())
        if lo <= h <= hi
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><wfs:FeatureCollection '
        'xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:BsWfs="http://xml.fmi.fi/schema/wfs/2.0">'
        f"{members}</wfs:FeatureCollection>"
    )


def _judge(
    pilot: str, site_file: Path, influx: InfluxDB, database: str, *extra: str
) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("kera-dashboards")), "pilot", pilot, "--json",
         "--today", str(START + timedelta(weeks=1)), "--config", str(site_file), *extra],
        env={"KERA_INFLUX_URL": influx.url, "KERA_INFLUX_DB": database, "PATH": "/usr/bin:/bin"},
        check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def fmi_server() -> Iterator[Callable[[dict[int, float], list[dict[str, str]]], str]]:
    """Starts FMI's stand-in with the hours it knows; stopped after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda hours, asked: stack.enter_context(_fmi_server(hours, asked))


def test_a_pilot_is_judged_from_the_rollups(
    influx: InfluxDB, database: str, tmp_path: Path,
    fmi_server: Callable[[dict[int, float], list[dict[str, str]]], str],
) -> None:  # fmt: skip
    registry = Registry(parse_site(_site()))
    asked: list[dict[str, str]] = []
    fmi_url = fmi_server(asyncio.run(_store(registry, influx, database)), asked)
    site_file = tmp_path / "site.yaml"
    site_file.write_text(_site(fmi_url))
    [heat] = _judge("cafe-heat-control", site_file, influx, database, "--write")
    # The days the station missed came from FMI, and the result says so.
    assert heat["weather"] == (
        f"the site's weather station; {STATION_DOWN_DAYS} of 35 days from FMI open data, "
        "CC BY 4.0, nearest station to Espoo"
    )
    # FMI was asked only for the days the station missed: one request for the three.
    first_utc = datetime(BASELINE.year, BASELINE.month, BASELINE.day, tzinfo=TZ).astimezone(UTC)
    assert [(q["starttime"], q["place"]) for q in asked] == [
        (first_utc.strftime("%Y-%m-%dT%H:%M:%SZ"), "Espoo")
    ]
    assert heat["metric"] == "heat_kwh"
    assert heat["method"] == "caltrack_daily_changepoint"
    assert (heat["baseline_days"], heat["reporting_days"]) == (28, 7)
    assert heat["baseline"] == [str(BASELINE), str(START - timedelta(days=1))]
    assert heat["verdict"] == "effect", heat["notes"]
    assert heat["low_pct"] <= -12 <= heat["high_pct"], heat
    # Avoided emissions: the kWh not used over the pilot's days at the district-heat factor.
    factor = Registry(parse_site(_site())).site.impact.heat_emission_factor_kg_per_kwh
    assert factor is not None
    assert heat["avoided_kgco2e"] == pytest.approx(-heat["estimate"] * 7 * factor)
    assert heat["avoided_kgco2e"] > 0
    assert heat["factor_source"].startswith("Fortum, 2023: ")
    assert heat["factor_example"] is False

    # --write stored the same result as a pilot_results point at the last day judged.
    [stored] = influxql_sync(
        influx.url,
        "SELECT * FROM pilot_results WHERE pilot = 'cafe-heat-control'",
        database,
    )
    row = dict(zip(stored["columns"], stored["values"][0], strict=True))
    last_day = datetime(*(START + timedelta(days=6)).timetuple()[:3], tzinfo=TZ)
    assert row["time"] == int(last_day.timestamp() * 1000)
    assert (row["metric"], row["site"], row["verdict"]) == ("heat_kwh", "kera", "effect")
    assert row["estimate_pct"] == heat["estimate_pct"]
    assert row["reporting_days"] == 7
    assert row["avoided_kgco2e"] == heat["avoided_kgco2e"]
    assert (row["factor_source"], row["factor_example"]) == (heat["factor_source"], False)

    # --out writes the pilot's report beside the JSON, which stays alone on stdout.
    out = tmp_path / "reports"
    [again] = _judge("cafe-heat-control", site_file, influx, database, "--out", str(out))
    assert again == heat
    page = (out / "pilot-kera-cafe-heat-control.html").read_text()
    assert f"<td>{heat['estimate_pct']:+.1f} %</td>" in page
    assert 'data-figure="heat_kwh-daily"' in page
    assert f"{STATION_DOWN_DAYS} of 35 days from FMI open data, CC BY 4.0" in page
    assert 'FROM "heat_daily" WHERE' in page.replace("&quot;", '"')
    assert (out / "pilot-kera-cafe-heat-control.pdf").read_bytes().startswith(b"%PDF")

    use, hours = _judge("coworking-booking", site_file, influx, database, "--write")
    assert (use["metric"], hours["metric"]) == ("utilisation_pct", "occupied_h")
    assert use["method"] == hours["method"] == "difference_in_differences"
    assert use["reporting_days"] == 7
    assert use["estimate"] is not None
    assert use["low"] < use["estimate"] < use["high"]
    assert use["estimate"] > 0  # rooms in use 20 % more often

    # The weekly report of the pilot's week shows each metric's latest stored result.
    week = f"{START.isocalendar().year}-W{START.isocalendar().week:02d}"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("kera-dashboards")), "report", "--week", week,
         "--out", str(out), "--no-pdf", "--config", str(site_file)],
        env={"KERA_INFLUX_URL": influx.url, "KERA_INFLUX_DB": database, "PATH": "/usr/bin:/bin"},
        check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    weekly = (out / f"impact-kera-{week}.html").read_text()
    assert (
        f"<td>cafe-heat-control</td><td>heat_kwh</td><td>{heat['estimate_pct']:+.1f} %</td>"
        f"<td>{heat['low_pct']:+.1f} .. {heat['high_pct']:+.1f} %</td><td>effect</td><td>7</td>"
    ) in weekly
    assert (
        f"<td>coworking-booking</td><td>utilisation_pct</td><td>{use['estimate_pct']:+.1f} %"
        in weekly
    )

    # --all judges every pilot that has started, as the daily job does.
    every = _judge("--all", site_file, influx, database)
    assert [(r["pilot"], r["metric"]) for r in every] == [
        ("cafe-heat-control", "heat_kwh"),
        ("coworking-booking", "utilisation_pct"),
        ("coworking-booking", "occupied_h"),
    ]

    # --write also stored the daily measured and expected heat, and the pilot's start.
    [stored_daily] = influxql_sync(
        influx.url,
        "SELECT observed, expected, reporting FROM pilot_daily WHERE pilot = 'cafe-heat-control'",
        database,
    )
    assert len(stored_daily["values"]) == 28 + 7
    assert sum(1 for v in stored_daily["values"] if v[3]) == 7
    pilot_days = [v[1] - v[2] for v in stored_daily["values"] if v[3]]
    assert sum(pilot_days) / 7 == pytest.approx(heat["estimate"])
    [event] = influxql_sync(
        influx.url,
        'SELECT "text", "event" FROM pilot_periods WHERE pilot = \'cafe-heat-control\'',
        database,
    )
    start = datetime(START.year, START.month, START.day, tzinfo=TZ)
    assert [v[0] for v in event["values"]] == [int(start.timestamp() * 1000)]
    assert event["values"][0][1:] == ["Pilot cafe-heat-control starts: Heat control", "start"]

    # Every query of the Pilots dashboard, and the pilot annotation of every other board, finds
    # these results.
    window = f"time >= '{BASELINE}T00:00:00Z' AND time < '{START + timedelta(weeks=2)}T00:00:00Z'"
    empty = []
    boards = all_dashboards()
    annotations = [
        (f"{uid} {what}", q)
        for uid, board in boards.items()
        for what, q in queries(board)
        if what == f"annotation {PILOTS_ANNOTATION}"
    ]
    assert len(annotations) == len(boards)
    for what, q in [*queries(boards["kera-pilots"]), *annotations]:
        sql = q.replace("$timeFilter", window).replace("$site", "kera")
        sql = sql.replace("$pilot", ".*").replace("$metric", ".*")
        series = influxql_sync(influx.url, sql, database)
        if not any(s.get("values") for s in series):
            empty.append(f"{what}: {sql}")
    assert not empty, "\n".join(empty)


def test_an_unknown_pilot_is_named(tmp_path: Path, influx: InfluxDB, database: str) -> None:
    def pilot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).with_name("kera-dashboards")), "pilot", *args],
            env={"KERA_INFLUX_URL": influx.url, "KERA_INFLUX_DB": database,
                 "PATH": "/usr/bin:/bin"},
            check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    done = pilot("nope")
    assert done.returncode == 2
    assert "the site has no pilot 'nope'" in done.stderr
    assert "cafe-heat-control" in done.stderr
    neither = pilot()
    assert neither.returncode == 2
    assert "name one pilot, or give --all" in neither.stderr


def test_the_pilot_command_says_when_the_rollups_lag(
    influx: InfluxDB, database: str, tmp_path: Path
) -> None:
    """Right after a backfill the readings are in and the rollups are not yet: the command
    says so (and how long to wait) instead of a bare insufficient_data. Times relative to the
    clock: the pilot started a week ago; the judged days end at today's midnight."""
    today = date.today()
    start = today - timedelta(days=7)
    raw = yaml.safe_load(_site())
    for p in raw["pilots"]:
        p["start"] = str(start)
        first = start - timedelta(days=28)
        p["baseline"] = {"start": str(first), "end": str(start - timedelta(days=1))}
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    midnight_ns = int(datetime(today.year, today.month, today.day, tzinfo=TZ).timestamp()) * 10**9
    hour_ns = 3_600_000_000_000
    # The newest reading at 22:00 yesterday, the newest hourly rollup 28 hours before it.
    lines = [
        f"occupancy,device=occ-coworking,space=coworking,site=kera people=2i "
        f"{midnight_ns - 2 * hour_ns}",
        f"space_hourly,space=coworking,site=kera measured_s=3600 {midnight_ns - 30 * hour_ns}",
    ]
    influxql_sync(influx.url, f'CREATE DATABASE "{database}"', database)
    urllib.request.urlopen(  # noqa: S310 - the test's own InfluxDB on loopback
        f"{influx.url}/write?db={database}", "\n".join(lines).encode(), timeout=10
    ).close()
    done = subprocess.run(
        # --today: the test's own clock (the shifted-clock run fakes it; the command's
        # environment here does not carry libfaketime).
        [str(Path(sys.executable).with_name("kera-dashboards")), "pilot", "coworking-booking",
         "--json", "--config", str(site_file), "--today", str(today)],
        env={"KERA_INFLUX_URL": influx.url, "KERA_INFLUX_DB": database, "PATH": "/usr/bin:/bin"},
        check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stderr.split())
    assert "the rollups are 27 h behind the readings" in said  # 28 h, the last hour not yet due
    assert "Run this again in a minute" in said
