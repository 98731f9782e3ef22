"""Do the pilot methods find a known effect, and only a real one? (docs/pilots.md)

    .venv/bin/python bench/pilot_methods.py [--seeds 20] [--first-seed 1]
        [--season heating|spring|autumn] [--busy-weeks SD] [--judge cli|library] [--out FILE]

A statistical check, not a test. For each seed, 12 simulated weeks (8 of baseline, 4 with the
pilots; the season's weather, which wanders; after a week's warm-up) of a small site go through
the ingestor's real Pipeline and impact Rollups, in-process, and both the readings and the
rollups are written to an InfluxDB of the bench's own (Debian's influxd on a free loopback
port, a database per run); `kera-dashboards pilot --all --json` then judges every pilot from
it, as an operator runs it (`--judge cli`, the default). `--judge library` skips InfluxDB and
calls `pilots.evaluate` on the series `pilots.data` would read back: quicker, but it checks the
methods, not the command's reading of InfluxDB.
The noise: the weather's AR(1) wander, the evening events of the hall and the café (event
days), and with `--busy-weeks` weeks busier or quieter than others (`kera-sim --busy-weeks`,
week effects on use and energy alike):

- heat: the café's heat meter, -12 % from week 9 (weather-normalised, CalTRACK daily);
- electricity: the main supply meter, -7 % (the same method; the hall's evening events make
  its event days);
- coworking use: +20 % more use, judged by difference-in-differences against the two meeting
  rooms;
- hall use: the main hall, +15 % more use, against the same controls (its events are days the
  controls do not share);
- sorting rate: the yard's bins, 10 more points of waste sorted, judged by the rate's
  before/after change.

Reported per metric: of the runs with the effect, how many were judged and how many of those
90 % intervals contain the true effect; of the runs without (on seeds of their own, independent
of the effect runs), how many intervals contain zero and how many claim an effect; the refused
runs (`baseline_inadequate`) of each; the mean estimate; and the calibration of the points
metrics (the standard deviation of (estimate - truth) / standard error, 1 when the intervals
are as wide as the errors they must cover). The true energy effects are the injected factors;
the true use and sorting effects are measured: the same seed run with and without the pilots.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from devices import Registry, parse_site
from devices.pilots import Metric, Pilot
from devices.site import default_site_text
from devstack.services import InfluxDB
from firmware_sim import MemorySink, run
from firmware_sim.pilots import parse_pilot
from ingest.evaluation.rollups import EmissionFactors, Rollups
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from pilots.data import MIN_TEMPERATURE_HOURS, open_hours
from pilots.evaluate import PilotData, evaluate
from pilots.fmi import fill_days
from pilots.stats import t_quantile

TZ = ZoneInfo("Europe/Helsinki")
# Three seasons: mid-winter, where eight baseline weeks see the temperatures of the four pilot
# weeks; spring (issue 30): a baseline of February and March, the pilot's weeks in April, warmer
# than the baseline's days; and late summer into autumn, the pilot's weeks colder.
SEASONS = {
    "heating": date(2026, 11, 2), "spring": date(2026, 2, 2), "autumn": date(2026, 8, 3),
}  # Mondays  # fmt: skip
# The no-effect runs are judged on seeds of their own (seed + PLACEBO_SEED_OFFSET): other
# weather and other draws than the effect runs', so the two counts are independent trials.
# The effect run's own no-pilot twin (same seed) still gives the true utilisation and sorting
# effects.
PLACEBO_SEED_OFFSET = 10_000
START = SEASONS["heating"]
PILOT_START = START + timedelta(weeks=8)
WEEKS = 12
# The simulation starts this long before the baseline: the bins' first fill levels, the rooms'
# first states are a simulator's guess, not a building's steady state, and a collection of a
# bin filled since before the simulation would count in the baseline's first week.
WARM_UP = timedelta(weeks=1)
# The metrics judged: (pilot, metric, injected change, unit of the truth and the estimate).
METRICS = {
    "heat": ("cafe-heat-control", Metric.HEAT_KWH, "-12%", "pct"),
    "electricity": ("hall-electricity", Metric.ELECTRICITY_KWH, "-7%", "pct"),
    "coworking_use": ("coworking-booking", Metric.UTILISATION_PCT, "+20%", "points"),
    "hall_use": ("hall-use", Metric.UTILISATION_PCT, "+15%", "points"),
    "sorting_rate": ("yard-sorting-nudge", Metric.SORTING_RATE_PCT, "+10", "points"),
}
PILOTS = [f"{pilot}:{metric.value}={change}" for pilot, metric, change, _ in METRICS.values()]
BINS = ("bin-mixed-1", "bin-bio-1", "bin-cardboard-1", "bin-plastic-1", "bin-glass-1",
        "bin-metal-1")  # fmt: skip
CONTROLS = ["meeting-room-1", "meeting-room-2"]


def bench_site() -> str:
    """The bundled site's café heat meter, main supply meter, weather station, four rooms and
    the yard's bins, with the pilots starting in week 9; longer intervals than the real
    devices', to keep many seeds quick (a day's sums and shares do not depend on them)."""
    raw = yaml.safe_load(default_site_text())
    keep = {"ws-roof": 600, "hm-cafe": 600, "em-main": 600, "occ-coworking": 300,
            "occ-main-hall": 300, "occ-meeting-1": 300, "occ-meeting-2": 300,
            **dict.fromkeys(BINS, 1800)}  # fmt: skip
    start = PILOT_START.isoformat()
    site = {
        "site": "bench",
        "timezone": raw["timezone"],
        "impact": {"opening_hours": raw["impact"]["opening_hours"]},
        "devices": [
            {**d, "interval_s": keep[d["id"]]} for d in raw["devices"] if d["id"] in keep
        ],
        "pilots": [
            {"id": "cafe-heat-control", "title": "heat", "partner": "bench",
             "scope": {"devices": ["hm-cafe"]}, "metrics": ["heat_kwh"], "start": start},
            {"id": "hall-electricity", "title": "electricity", "partner": "bench",
             "scope": {"devices": ["em-main"]}, "metrics": ["electricity_kwh"], "start": start},
            {"id": "coworking-booking", "title": "booking", "partner": "bench",
             "scope": {"spaces": ["coworking"]}, "control_spaces": CONTROLS,
             "metrics": ["utilisation_pct"], "start": start},
            {"id": "hall-use", "title": "hall", "partner": "bench",
             "scope": {"spaces": ["main-hall"]}, "control_spaces": CONTROLS,
             "metrics": ["utilisation_pct"], "start": start},
            {"id": "yard-sorting-nudge", "title": "sorting", "partner": "bench",
             "scope": {"spaces": ["yard"]}, "metrics": ["sorting_rate_pct"], "start": start},
        ],
    }  # fmt: skip
    return yaml.safe_dump(site, sort_keys=False)


Rows = dict[tuple[str, str], tuple[int, dict[str, str]]]  # (line head, ts) -> (ts, fields)


BUSY_WEEKS = 0.0  # --busy-weeks


def simulate(registry: Registry, seed: int, pilots: list[str]) -> dict[str, Any]:
    """The run's rollup points as InfluxDB would hold them, and the weather station's hourly
    means."""
    sink = MemorySink()
    first = START - WARM_UP
    start_ms = int(datetime.combine(first, datetime.min.time(), TZ).timestamp() * 1000)
    span_s = (WEEKS * 7 + WARM_UP.days) * 86400.0
    run(
        registry, sink, seed=seed, start_ms=start_ms, duration_s=span_s, speed=0,
        pilots=[parse_pilot(p, registry.site) for p in pilots], busy_weeks=BUSY_WEEKS,
    )  # fmt: skip
    points: Rows = {}

    def keep(lines: list[str]) -> None:
        for line in lines:
            head, _, rest = line.partition(" ")
            fields, _, ts = rest.rpartition(" ")
            # A rewrite of the same hour or day replaces it, as in InfluxDB.
            points[(head, ts)] = (int(ts), dict(f.split("=", 1) for f in fields.split(",")))

    written: list[str] = []  # every line, in the order the ingestor would write them

    def store(lines: list[str]) -> None:
        written.extend(lines)
        keep(lines)

    rollups = Rollups(registry, store, EmissionFactors())
    pipeline = Pipeline(registry, Stats(), 65536, 300, 400 * 86400, observe=rollups.observe)
    hours: dict[int, list[float]] = defaultdict(list)
    next_flush = start_ms + 3_600_000
    for event, device_id, topic, payload in sink.events:
        if event != "publish":
            continue
        body = json.loads(payload)
        if body["ts"] >= next_flush:
            rollups.flush()
            next_flush = body["ts"] + 3_600_000
        stored = pipeline.handle(topic, payload, body["ts"])
        if isinstance(stored, list):
            written.extend(stored)
        if device_id == "ws-roof":
            hours[body["ts"] // 3_600_000 * 3_600_000].append(body["temperature_c"])
    rollups.flush()
    hourly = {h: statistics.fmean(v) for h, v in hours.items()}
    return {"points": points, "hours": hourly, "lines": written}


def _tag(head: str, name: str) -> str | None:
    for part in head.split(",")[1:]:
        key, _, value = part.partition("=")
        if key == name:
            return value
    return None


def _local(ts: int) -> date:
    return datetime.fromtimestamp(ts / 1000, UTC).astimezone(TZ).date()


def _whole_days() -> set[date]:
    """The days judged: from the baseline's first to the last whole day (the last is cut by the
    run's end)."""
    return {START + timedelta(i) for i in range(WEEKS * 7 - 1)}


def _energy(points: Rows, measurement: str, devices: set[str]) -> dict[date, float]:
    series: dict[date, float] = defaultdict(float)
    for (head, _), (ts, fields) in points.items():
        if head.startswith(measurement + ",") and _tag(head, "device") in devices:
            series[_local(ts)] += float(fields["kwh"])
    days = _whole_days()
    return {d: v for d, v in series.items() if d in days}


def _sorting(points: Rows) -> dict[date, tuple[float, float]]:
    waste: dict[date, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (head, _), (ts, fields) in points.items():
        if head.startswith("waste_daily,") and "volume_l" in fields:
            litres = float(fields["volume_l"])
            waste[_local(ts)][1] += litres
            if _tag(head, "fraction") != "mixed":
                waste[_local(ts)][0] += litres
    return {d: (waste[d][0], waste[d][1]) for d in _whole_days()}


def _per_space(points: Rows, spaces: list[str]) -> dict[date, float]:
    values: dict[date, list[float]] = defaultdict(list)
    for (head, _), (ts, fields) in points.items():
        in_scope = head.startswith("space_daily,") and _tag(head, "space") in spaces
        if in_scope and "utilisation_pct" in fields:
            values[_local(ts)].append(float(fields["utilisation_pct"]))
    days = _whole_days()
    return {d: statistics.fmean(v) for d, v in values.items()
            if len(v) == len(spaces) and d in days}  # fmt: skip


def pilot_data(run_: dict[str, Any], pilot: Pilot, registry: Registry) -> PilotData:
    """What `pilots.data.load` reads for `pilot`: energy summed over the scope's meters per
    day, use averaged over the scope's (and the controls') spaces on days every space has,
    the sorting rate's (sorted, collected) litres, and the temperature's daily means from the
    station's hourly means (days with at least MIN_TEMPERATURE_HOURS hours); the site's
    opening hours."""
    data = PilotData(open_hours=open_hours(registry, START, START + timedelta(weeks=WEEKS)))
    points: Rows = run_["points"]
    metric = pilot.metrics[0]
    if metric.energy:
        measurement = "heat_daily" if metric is Metric.HEAT_KWH else "energy_daily"
        data.scope[metric] = _energy(points, measurement, set(pilot.scope.devices))
        daily, hourly, _ = fill_days(run_["hours"], {}, TZ, MIN_TEMPERATURE_HOURS)
        data.temperature, data.temperature_hourly = daily, hourly
    elif metric is Metric.SORTING_RATE_PCT:
        data.sorting = _sorting(points)
    else:
        data.scope[metric] = _per_space(points, sorted(pilot.scope.spaces))
        data.control[metric] = _per_space(points, list(pilot.control_spaces))
    return data


def judge(registry: Registry, run_: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each metric's effect as `kera-dashboards pilot` judges it on the pilot's last day."""
    pilots = {p.id: p for p in registry.site.pilots}
    today = _today()
    tz = ZoneInfo(registry.site.timezone)
    out = {}
    for name, (pilot_id, _, _, unit) in METRICS.items():
        pilot = pilots[pilot_id]
        [result] = evaluate(pilot, pilot_data(run_, pilot, registry), tz, today)
        e = result.effect
        pct = unit == "pct"
        value = e.estimate_pct if pct else e.estimate
        low, high = (e.low_pct, e.high_pct) if pct else (e.low, e.high)
        out[name] = {"value": value, "low": low, "high": high, "verdict": e.verdict.value,
                     "method": e.method, "days": [e.baseline_days, e.reporting_days],
                     "why": e.notes[0] if e.estimate is None and e.notes else None}  # fmt: skip
        if METRICS[name][1].energy:
            out[name]["model"] = next((n for n in e.notes if n.startswith("model:")), None)
    return out


def _today() -> date:
    """The day after the last day judged: the run's last whole day."""
    return START + timedelta(weeks=WEEKS) - timedelta(days=1)


def _post(url: str, body: bytes) -> None:
    """A POST to the bench's own InfluxDB on loopback."""
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 - http, loopback
    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
        answer.read()


class Cli:
    """Judging through `kera-dashboards pilot`, from an InfluxDB of the bench's own."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.influx = InfluxDB(work / "influxdb").start()
        self.site = work / "site.yaml"
        self.site.write_text(bench_site())
        self.runs = 0

    def judge(self, run_: dict[str, Any]) -> dict[str, dict[str, Any]]:
        self.runs += 1
        database = f"run{self.runs}"
        url = self.influx.url
        _post(f"{url}/query?" + urllib.parse.urlencode({"q": f"CREATE DATABASE {database}"}), b"")
        lines: list[str] = run_["lines"]
        for i in range(0, len(lines), 5000):
            _post(
                f"{url}/write?db={database}&precision=ms", "\n".join(lines[i : i + 5000]).encode()
            )
        done = subprocess.run(
            [str(Path(sys.executable).with_name("kera-dashboards")), "pilot", "--all", "--json",
             "--today", str(_today()), "--config", str(self.site)],
            env={"KERA_INFLUX_URL": url, "KERA_INFLUX_DB": database, "PATH": "/usr/bin:/bin",
                 # A worktree's code (PYTHONPATH, for a before/after) judges its own runs.
                 **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}},
            check=False, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"kera-dashboards pilot failed: {done.stderr[-2000:]}")
        _post(f"{url}/query?" + urllib.parse.urlencode({"q": f"DROP DATABASE {database}"}), b"")
        by_pilot = {(r["pilot"], r["metric"]): r for r in map(json.loads, done.stdout.splitlines())}
        out = {}
        for name, (pilot_id, metric, _, unit) in METRICS.items():
            r = by_pilot[(pilot_id, metric.value)]
            pct = unit == "pct"
            out[name] = {
                "value": r["estimate_pct" if pct else "estimate"],
                "low": r["low_pct" if pct else "low"], "high": r["high_pct" if pct else "high"],
                "verdict": r["verdict"], "method": r["method"],
                "days": [r["baseline_days"], r["reporting_days"]],
                "why": r["notes"][0] if r["estimate"] is None and r["notes"] else None,
            }  # fmt: skip
            if metric.energy:
                out[name]["model"] = next((n for n in r["notes"] if n.startswith("model:")), None)
        return out

    def close(self) -> None:
        self.influx.stop()


def _mean_use(run_: dict[str, Any], pilot: Pilot, registry: Registry) -> float:
    use = pilot_data(run_, pilot, registry).scope[Metric.UTILISATION_PCT]
    return statistics.fmean(v for d, v in use.items() if d >= PILOT_START)


def _rate(run_: dict[str, Any], pilot: Pilot, registry: Registry) -> float:
    """The pilot weeks' sorting rate, in percent."""
    rows = [v for d, v in pilot_data(run_, pilot, registry).sorting.items() if d >= PILOT_START]
    return float(100 * sum(r[0] for r in rows) / sum(r[1] for r in rows))


def truths(registry: Registry, piloted: dict[str, Any], twin: dict[str, Any]) -> dict[str, float]:
    """The true effect of each metric: the injected factor for energy (every kWh scales), the
    same seed's change with and without the pilots for use and the sorting rate."""
    pilots = {p.id: p for p in registry.site.pilots}
    out = {}
    for name, (pilot_id, metric, change, _) in METRICS.items():
        pilot = pilots[pilot_id]
        if metric.energy:
            out[name] = float(change.rstrip("%"))
        elif metric is Metric.SORTING_RATE_PCT:
            out[name] = _rate(piloted, pilot, registry) - _rate(twin, pilot, registry)
        else:
            out[name] = _mean_use(piloted, pilot, registry) - _mean_use(twin, pilot, registry)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument(
        "--first-seed", type=int, default=1,
        help="seeds first..first+N-1: name a held-out set (e.g. 201) fixed before a method "
        "change, to judge the change on seeds it was not tuned on",
    )  # fmt: skip
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--season", choices=sorted(SEASONS), default="heating")
    ap.add_argument(
        "--busy-weeks", type=float, default=0.0,
        help="week effects: the standard deviation of each week's log factor on how busy the "
        "house is (kera-sim --busy-weeks); 0: every week alike",
    )  # fmt: skip
    ap.add_argument(
        "--judge", choices=["cli", "library"], default="cli",
        help="cli: through InfluxDB and kera-dashboards pilot (as operators run it); library: "
        "pilots.evaluate in-process on the same series (quicker)",
    )  # fmt: skip
    args = ap.parse_args()
    global START, PILOT_START, BUSY_WEEKS  # noqa: PLW0603 - one scenario per run
    START = SEASONS[args.season]
    BUSY_WEEKS = args.busy_weeks
    PILOT_START = START + timedelta(weeks=8)
    registry = Registry(parse_site(bench_site(), "<bench site>"))
    rows = []
    t0 = time.monotonic()
    # Stopped with SIGTERM (kill, a timeout): clean up the InfluxDB it started, as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="kera-pilot-bench-") as tmp:
        cli = Cli(Path(tmp)) if args.judge == "cli" else None
        try:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                twin = simulate(registry, seed, [])  # for the true use and sorting effects only
                piloted = simulate(registry, seed, PILOTS)
                placebo = simulate(registry, seed + PLACEBO_SEED_OFFSET, [])
                judged = [
                    cli.judge(r) if cli is not None else judge(registry, r)
                    for r in (piloted, placebo)
                ]
                row = {"seed": seed, "placebo_seed": seed + PLACEBO_SEED_OFFSET,
                       "with": judged[0], "without": judged[1],
                       "truth": truths(registry, piloted, twin)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            if cli is not None:
                cli.close()
    summary = summarise(rows)
    summary["season"] = f"{args.season}: baseline from {START}, pilot from {PILOT_START}"
    summary["busy_weeks"] = BUSY_WEEKS
    summary["judged_by"] = (
        "kera-dashboards pilot --all --json, from InfluxDB" if args.judge == "cli"
        else "pilots.evaluate in-process"
    )  # fmt: skip
    summary["seeds_used"] = (
        f"{args.first_seed}-{args.first_seed + args.seeds - 1} (effect), the same plus "
        f"{PLACEBO_SEED_OFFSET} (no effect)"
    )
    summary["seconds"] = round(time.monotonic() - t0)
    summary["machine"] = f"{platform.machine()}, Python {platform.python_version()}"
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps({"summary": summary, "seeds": rows}, indent=2) + "\n")


def _inside(r: dict[str, Any], truth: float) -> bool:
    return r["low"] is not None and r["low"] <= truth <= r["high"]


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": len(rows)}
    for name, (_, _, _, unit) in METRICS.items():
        with_ = [(r["with"][name], r["truth"][name]) for r in rows]
        without = [r["without"][name] for r in rows]
        judged = [(r, t) for r, t in with_ if r["low"] is not None]
        judged_without = [r for r in without if r["low"] is not None]
        summary: dict[str, Any] = {
            "unit": "% of the expected" if unit == "pct" else "points",
            "mean_truth": round(statistics.fmean(t for _, t in with_), 2),
            "effect_runs_judged": len(judged),
            "covered": sum(_inside(r, t) for r, t in judged),
            "mean_estimate": _mean([r["value"] for r, _ in judged]),
            "no_effect_runs_judged": len(judged_without),
            "no_effect_contains_zero": sum(_inside(r, 0.0) for r in judged_without),
            "no_effect_false_effects": sum(r["verdict"] == "effect" for r in judged_without),
            "refused": {
                "with": _reasons([r for r, _ in with_]),
                "without": _reasons(without),
            },
        }
        if unit == "points":
            summary["calibration_sd"] = _calibration(judged, judged_without)
        out[name] = summary
    return out


def _reasons(runs: list[dict[str, Any]]) -> dict[str, int]:
    """Refused or unjudged runs by verdict."""
    counts: dict[str, int] = defaultdict(int)
    for r in runs:
        if r["low"] is None:
            counts[r["verdict"]] += 1
    return dict(counts)


def _mean(values: list[float | None]) -> float | None:
    """The mean of the numbers given (None: every run was refused, e.g. baseline_inadequate)."""
    numbers = [v for v in values if v is not None]
    return round(statistics.fmean(numbers), 2) if numbers else None


def _calibration(
    with_: list[tuple[dict[str, Any], float]], without: list[dict[str, Any]]
) -> float | None:
    """The standard deviation of (estimate - truth) / standard error over every judged run."""
    q = t_quantile(0.95, 30)  # the intervals' own quantile varies with their df; near this
    z = [(r["value"] - t) / ((r["high"] - r["low"]) / 2 / q) for r, t in with_]
    z += [r["value"] / ((r["high"] - r["low"]) / 2 / q) for r in without]
    return round(statistics.pstdev(z), 2) if len(z) > 1 else None


if __name__ == "__main__":
    main()
