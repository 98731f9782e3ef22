"""Do the pilot methods find a known effect, and only a real one? (docs/pilots.md)

    .venv/bin/python bench/pilot_methods.py [--seeds 20] [--first-seed 1]
        [--season heating|spring|autumn] [--out FILE]

A statistical check, not a test. For each seed, 12 simulated weeks (8 of baseline, 4 with the
pilot; the season's weather, which wanders) of a small site go through the ingestor's real
Pipeline and impact Rollups, in-process:

- heat: the café's heat meter, with `--pilot`'s -12 % from week 9 or without it; judged by the
  CalTRACK daily model (OpenDSM) against the weather station's daily mean temperature;
- utilisation: the coworking room, with +20 % more use from week 9 or without it, judged by
  difference-in-differences against the two meeting rooms;
- sorting rate: the yard's bins, with 10 more points of waste sorted from week 9 or without it,
  judged by the rate's before/after change.

Reported per method: how many of the seeds' 90 % intervals contain the true effect, the mean
estimate, with no effect (runs on seeds of their own, independent of the effect runs) how many
intervals contain zero, and the calibration: the standard
deviation of (estimate - truth) / standard error over every run, which is 1 when the intervals
are as wide as the errors they must cover. The true heat effect is -12 % by construction. The
true utilisation and sorting effects are measured, not assumed: the same seed run with and
without the pilot gives the pilot's own change in percentage points.
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
from ingest.evaluation.rollups import EmissionFactors, Rollups
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from pilots.energy import weather_normalised_savings
from pilots.stats import diff_in_diff, ratio_before_after, t_quantile

TZ = ZoneInfo("Europe/Helsinki")
# Two seasons: the heating season, where eight baseline weeks see the temperatures of the four
# pilot weeks, and late summer into autumn, where they do not (the method must then refuse).
# And spring (issue 30): a baseline of February and March, the pilot's weeks in April, warmer
# than any baseline day.
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
HEAT = "cafe-heat-control:heat_kwh=-12%"
USE = "coworking-booking:utilisation_pct=+20%"
SORT = "yard-sorting-nudge:sorting_rate_pct=+10"
BINS = ("bin-mixed-1", "bin-bio-1", "bin-cardboard-1", "bin-plastic-1", "bin-glass-1",
        "bin-metal-1")  # fmt: skip


def bench_site() -> str:
    """The bundled site's café heat meter, weather station and three rooms, with the two pilots
    starting in week 9; longer intervals than the real devices', to keep 20 seeds quick."""
    raw = yaml.safe_load(default_site_text())
    keep = {"ws-roof": 600, "hm-cafe": 600, "occ-coworking": 300, "occ-meeting-1": 300,
            "occ-meeting-2": 300, **dict.fromkeys(BINS, 1800)}  # fmt: skip
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
            {"id": "yard-sorting-nudge", "title": "sorting", "partner": "bench",
             "scope": {"spaces": ["yard"]}, "metrics": ["sorting_rate_pct"],
             "start": PILOT_START.isoformat()},
        ],
    }  # fmt: skip
    return yaml.safe_dump(site, sort_keys=False)


def simulate(registry: Registry, seed: int, pilots: list[str]) -> dict[str, Any]:
    """Daily heat (kWh), utilisation per space (%), litres (sorted, collected) and mean outdoor
    temperature (°C)."""
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
    waste: dict[date, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (head, ts), fields in points.items():
        day = datetime.fromtimestamp(int(ts) / 1000, UTC).astimezone(TZ).date()
        values = dict(f.split("=", 1) for f in fields.split(","))
        if head.startswith("heat_daily,") and "device=hm-cafe" in head:
            heat[day] = float(values["kwh"])
        elif head.startswith("space_daily,") and "utilisation_pct" in values:
            space = next(t.split("=", 1)[1] for t in head.split(",") if t.startswith("space="))
            use[space][day] = float(values["utilisation_pct"])
        elif head.startswith("waste_daily,") and "volume_l" in values:
            litres = float(values["volume_l"])
            waste[day][1] += litres
            if "fraction=mixed" not in head:
                waste[day][0] += litres
    # Whole days only: the first and last are cut by the run's edges.
    days = [START + timedelta(i) for i in range(1, WEEKS * 7 - 1)]
    return {
        "heat": {d: heat[d] for d in days if d in heat},
        "use": {s: {d: v[d] for d in days if d in v} for s, v in use.items()},
        "temp": {d: statistics.fmean(temps[d]) for d in days if temps.get(d)},
        "waste": {d: (waste[d][0], waste[d][1]) for d in days},
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
    waste = data["waste"]
    rate = ratio_before_after(
        {d: v for d, v in waste.items() if d < PILOT_START},
        {d: v for d, v in waste.items() if d >= PILOT_START},
    )
    return {
        "heat": {"pct": heat.estimate_pct, "low": heat.low_pct, "high": heat.high_pct,
                 "verdict": heat.verdict.value, "cvrmse": fit.cvrmse if fit else None,
                 "why": heat.notes[0] if heat.estimate is None and heat.notes else None},
        "use": {"points": did.estimate, "low": did.low, "high": did.high,
                "verdict": did.verdict.value},
        "sorting": {"points": rate.estimate, "low": rate.low, "high": rate.high,
                    "verdict": rate.verdict.value},
    }  # fmt: skip


def _mean_use(data: dict[str, Any]) -> float:
    days = [d for d in data["use"]["coworking"] if d >= PILOT_START]
    return statistics.fmean(data["use"]["coworking"][d] for d in days)


def _rate(data: dict[str, Any]) -> float:
    """The pilot weeks' sorting rate, in percent."""
    rows = [v for d, v in data["waste"].items() if d >= PILOT_START]
    return float(100 * sum(r[0] for r in rows) / sum(r[1] for r in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument(
        "--first-seed", type=int, default=1,
        help="seeds first..first+N-1: name a held-out set (e.g. 101) fixed before a method "
        "change, to judge the change on seeds it was not tuned on",
    )  # fmt: skip
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--season", choices=sorted(SEASONS), default="heating")
    args = ap.parse_args()
    global START, PILOT_START  # noqa: PLW0603 - one scenario per run
    START = SEASONS[args.season]
    PILOT_START = START + timedelta(weeks=8)
    registry = Registry(parse_site(bench_site(), "<bench site>"))
    rows = []
    t0 = time.monotonic()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        twin = simulate(registry, seed, [])  # for the true effects only
        piloted = simulate(registry, seed, [HEAT, USE, SORT])
        placebo = simulate(registry, seed + PLACEBO_SEED_OFFSET, [])
        row = {"seed": seed, "placebo_seed": seed + PLACEBO_SEED_OFFSET,
               "with": judge(piloted), "without": judge(placebo),
               "true_use_points": _mean_use(piloted) - _mean_use(twin),
               "true_sorting_points": _rate(piloted) - _rate(twin)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = summarise(rows)
    summary["season"] = f"{args.season}: baseline from {START}, pilot from {PILOT_START}"
    summary["seeds_used"] = (
        f"{args.first_seed}-{args.first_seed + args.seeds - 1} (effect), the same plus "
        f"{PLACEBO_SEED_OFFSET} (no effect)"
    )
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
    sort_with = [(r["with"]["sorting"], r["true_sorting_points"]) for r in rows]
    sort_without = [r["without"]["sorting"] for r in rows]
    return {
        "seeds": n,
        "heat": {
            "true_pct": -12.0,
            "covered": sum(inside(h, -12.0) for h in heat_with),
            "mean_estimate_pct": _mean([h["pct"] for h in heat_with]),
            "no_effect_contains_zero": sum(inside(h, 0.0) for h in heat_without),
            "inadequate": sum(
                h["verdict"] == "baseline_inadequate" for h in heat_with + heat_without
            ),
        },
        "utilisation": _summary(use_with, use_without),
        "sorting_rate": _summary(sort_with, sort_without),
    }


def _mean(values: list[float | None]) -> float | None:
    """The mean of the numbers given (None: every run was refused, e.g. baseline_inadequate)."""
    numbers = [v for v in values if v is not None]
    return round(statistics.fmean(numbers), 2) if numbers else None


def _summary(
    with_: list[tuple[dict[str, Any], float]], without: list[dict[str, Any]]
) -> dict[str, Any]:
    """Coverage, mean, and calibration of a points metric's intervals (see the docstring)."""
    q = t_quantile(0.95, 30)  # the intervals' own quantile varies with their df; near this
    z = [(r["points"] - t) / ((r["high"] - r["low"]) / 2 / q)
         for r, t in with_ if r["low"] is not None]  # fmt: skip
    z += [r["points"] / ((r["high"] - r["low"]) / 2 / q) for r in without if r["low"] is not None]
    return {
        "mean_true_points": round(statistics.fmean(t for _, t in with_), 2),
        "covered": sum(r["low"] is not None and r["low"] <= t <= r["high"] for r, t in with_),
        "mean_estimate_points": _mean([r["points"] for r, _ in with_]),
        "no_effect_contains_zero": sum(
            r["low"] is not None and r["low"] <= 0 <= r["high"] for r in without
        ),
        "calibration_sd": round(statistics.pstdev(z), 2) if len(z) > 1 else None,
    }


if __name__ == "__main__":
    main()
