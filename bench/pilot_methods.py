"""Do the pilot methods find a known effect, and only a real one? (docs/pilots.md)

    .venv/bin/python bench/pilot_methods.py [--seeds 20] [--out FILE]

A statistical check, not a test. For each seed, 12 simulated weeks (8 of baseline, 4 with the
pilot, autumn weather that cools and wanders) of a small site go through the ingestor's real
Pipeline and impact Rollups, in-process:

- heat: the café's heat meter, with `--pilot`'s -12 % from week 9 or without it; judged by the
  CalTRACK daily model (OpenDSM) against the weather station's daily mean temperature;
- utilisation: the coworking room, with +20 % more use from week 9 or without it, judged by
  difference-in-differences against the two meeting rooms.

Reported per method: how many of the seeds' 90 % intervals contain the true effect, the mean
estimate, and with no effect how many intervals contain zero. The true heat effect is -12 % by
construction. The true utilisation effect is measured, not assumed: the same seed run with and
without the pilot gives the pilot's own change in utilisation percentage points.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from devices import Registry, parse_site
from devices.site import default_site_text
from firmware_sim import MemorySink, run
from firmware_sim.pilots import parse_pilot
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from ingest.rollups import EmissionFactors, Rollups
from pilots.energy import weather_normalised_savings
from pilots.stats import diff_in_diff

TZ = ZoneInfo("Europe/Helsinki")
# Two seasons: the heating season, where eight baseline weeks see the temperatures of the four
# pilot weeks, and late summer into autumn, where they do not (the method must then refuse).
SEASONS = {"heating": date(2026, 11, 2), "autumn": date(2026, 8, 3)}  # Mondays
START = SEASONS["heating"]
PILOT_START = START + timedelta(weeks=8)
WEEKS = 12
HEAT = "cafe-heat-control:heat_kwh=-12%"
USE = "coworking-booking:utilisation_pct=+20%"


def bench_site() -> str:
    """The bundled site's café heat meter, weather station and three rooms, with the two pilots
    starting in week 9; longer intervals than the real devices', to keep 20 seeds quick."""
    raw = yaml.safe_load(default_site_text())
    keep = {"ws-roof": 600, "hm-cafe": 600, "occ-coworking": 300, "occ-meeting-1": 300,
            "occ-meeting-2": 300}  # fmt: skip
    site = {
        "site": "bench",
        "timezone": raw["timezone"],
        "impact": {"opening_hours": raw["impact"]["opening_hours"]},
        "devices": [
            {**d, "interval_s": keep[d["id"]]} for d in raw["devices"] if d["id"] in keep
        ],
        "pilots": [
            {"id": "cafe-heat-control", "title": "heat", "partner": "bench",
             "scope": {"devices": ["hm-cafe"]}, "metrics": ["heat_kwh"],
             "start": PILOT_START.isoformat()},
            {"id": "coworking-booking", "title": "booking", "partner": "bench",
             "scope": {"spaces": ["coworking"]},
             "control_spaces": ["meeting-room-1", "meeting-room-2"],
             "metrics": ["utilisation_pct"], "start": PILOT_START.isoformat()},
        ],
    }  # fmt: skip
    return yaml.safe_dump(site, sort_keys=False)


def simulate(registry: Registry, seed: int, pilots: list[str]) -> dict[str, Any]:
    """Daily heat (kWh), utilisation per space (%) and mean outdoor temperature (°C)."""
    sink = MemorySink()
    start_ms = int(datetime.combine(START, datetime.min.time(), TZ).timestamp() * 1000)
    run(
        registry, sink, seed=seed, start_ms=start_ms, duration_s=WEEKS * 7 * 86400.0, speed=0,
        pilots=[parse_pilot(p, registry.site) for p in pilots],
    )  # fmt: skip
    points: dict[tuple[str, str], str] = {}

    def keep(lines: list[str]) -> None:
        for line in lines:
            head, _, rest = line.partition(" ")
            fields, _, ts = rest.rpartition(" ")
            points[(head, ts)] = fields  # a rewrite of the same hour or day replaces it

    rollups = Rollups(registry, keep, EmissionFactors())
    pipeline = Pipeline(registry, Stats(), 65536, 300, 400 * 86400, observe=rollups.observe)
    temps: dict[date, list[float]] = defaultdict(list)
    next_flush = start_ms + 3_600_000
    for event, device_id, topic, payload in sink.events:
        if event != "publish":
            continue
        body = json.loads(payload)
        if body["ts"] >= next_flush:
            rollups.flush()
            next_flush = body["ts"] + 3_600_000
        pipeline.handle(topic, payload, body["ts"])
        if device_id == "ws-roof":
            local = datetime.fromtimestamp(body["ts"] / 1000, UTC).astimezone(TZ).date()
            temps[local].append(body["temperature_c"])
    rollups.flush()
    heat: dict[date, float] = {}
    use: dict[str, dict[date, float]] = defaultdict(dict)
    for (head, ts), fields in points.items():
        day = datetime.fromtimestamp(int(ts) / 1000, UTC).astimezone(TZ).date()
        values = dict(f.split("=", 1) for f in fields.split(","))
        if head.startswith("heat_daily,") and "device=hm-cafe" in head:
            heat[day] = float(values["kwh"])
        elif head.startswith("space_daily,") and "utilisation_pct" in values:
            space = next(t.split("=", 1)[1] for t in head.split(",") if t.startswith("space="))
            use[space][day] = float(values["utilisation_pct"])
    # Whole days only: the first and last are cut by the run's edges.
    days = [START + timedelta(i) for i in range(1, WEEKS * 7 - 1)]
    return {
        "heat": {d: heat[d] for d in days if d in heat},
        "use": {s: {d: v[d] for d in days if d in v} for s, v in use.items()},
        "temp": {d: statistics.fmean(temps[d]) for d in days if temps.get(d)},
    }


def judge(data: dict[str, Any]) -> dict[str, Any]:
    base = [d for d in data["heat"] if d < PILOT_START]
    rep = [d for d in data["heat"] if d >= PILOT_START]
    heat, fit = weather_normalised_savings(
        {d: data["heat"][d] for d in base}, {d: data["heat"][d] for d in rep}, data["temp"], TZ,
        is_electricity=False,
    )  # fmt: skip
    use = data["use"]
    control = {
        d: statistics.fmean(use[s][d] for s in ("meeting-room-1", "meeting-room-2"))
        for d in use["coworking"]
        if all(d in use[s] for s in ("meeting-room-1", "meeting-room-2"))
    }
    days = sorted(use["coworking"])
    did = diff_in_diff(
        use["coworking"], control,
        [d for d in days if d < PILOT_START], [d for d in days if d >= PILOT_START],
    )  # fmt: skip
    return {
        "heat": {"pct": heat.estimate_pct, "low": heat.low_pct, "high": heat.high_pct,
                 "verdict": heat.verdict.value, "cvrmse": fit.cvrmse if fit else None},
        "use": {"points": did.estimate, "low": did.low, "high": did.high,
                "verdict": did.verdict.value},
    }  # fmt: skip


def _mean_use(data: dict[str, Any]) -> float:
    days = [d for d in data["use"]["coworking"] if d >= PILOT_START]
    return statistics.fmean(data["use"]["coworking"][d] for d in days)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--season", choices=sorted(SEASONS), default="heating")
    args = ap.parse_args()
    global START, PILOT_START  # noqa: PLW0603 - one scenario per run
    START = SEASONS[args.season]
    PILOT_START = START + timedelta(weeks=8)
    registry = Registry(parse_site(bench_site(), "<bench site>"))
    rows = []
    t0 = time.monotonic()
    for seed in range(1, args.seeds + 1):
        plain = simulate(registry, seed, [])
        piloted = simulate(registry, seed, [HEAT, USE])
        row = {"seed": seed, "with": judge(piloted), "without": judge(plain),
               "true_use_points": _mean_use(piloted) - _mean_use(plain)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = summarise(rows)
    summary["season"] = f"{args.season}: baseline from {START}, pilot from {PILOT_START}"
    summary["seconds"] = round(time.monotonic() - t0)
    summary["machine"] = f"{platform.machine()}, Python {platform.python_version()}"
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps({"summary": summary, "seeds": rows}, indent=2) + "\n")


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def inside(r: dict[str, Any], truth: float) -> bool:
        return r["low"] is not None and r["low"] <= truth <= r["high"]

    n = len(rows)
    heat_with = [r["with"]["heat"] for r in rows]
    heat_without = [r["without"]["heat"] for r in rows]
    use_with = [(r["with"]["use"], r["true_use_points"]) for r in rows]
    use_without = [r["without"]["use"] for r in rows]
    return {
        "seeds": n,
        "heat": {
            "true_pct": -12.0,
            "covered": sum(inside(h, -12.0) for h in heat_with),
            "mean_estimate_pct": round(
                statistics.fmean(h["pct"] for h in heat_with if h["pct"] is not None), 2
            ),
            "no_effect_contains_zero": sum(inside(h, 0.0) for h in heat_without),
            "inadequate": sum(
                h["verdict"] == "baseline_inadequate" for h in heat_with + heat_without
            ),
        },
        "utilisation": {
            "mean_true_points": round(statistics.fmean(t for _, t in use_with), 2),
            "covered": sum(inside(u, t) for u, t in use_with),
            "mean_estimate_points": round(statistics.fmean(u["points"] for u, _ in use_with), 2),
            "no_effect_contains_zero": sum(inside(u, 0.0) for u in use_without),
        },
    }  # fmt: skip


if __name__ == "__main__":
    main()
