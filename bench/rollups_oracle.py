"""The rollups of this checkout against another's on the same data (docs/performance.md):

    .venv/bin/python bench/rollups_oracle.py --against /path/to/older/checkout [--scale 5 20]

Per scale: the bundled site repeated N times is simulated for `--hours` (seeded, the same start
for both), every message goes through the checkout's own Pipeline into its Rollups, with a flush
every 20,000 readings as under a backfill, and the final points (the last write of each series
and time, as InfluxDB keeps them) of the two checkouts are compared field by field. For a
refactor of the rollups: issue 19 replaced the 48-hour window with a one-hour window and repairs,
and this found every point of two days at 125 and 500 devices equal to commit 4e9aff7's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
FLUSH_EVERY = 20_000


def final_points(scale: int, hours: float, start_ms: int) -> dict[str, Any]:
    """Runs in the checkout under test (PYTHONPATH): its simulator, pipeline and rollups."""
    from devices import Registry
    from firmware_sim import run, scale_site
    from firmware_sim.runner import MemorySink
    from ingest.evaluation.rollups import EmissionFactors, Rollups
    from ingest.observability.counters import Stats
    from ingest.pipeline import Pipeline

    try:
        from ingest.storage.lineproto import parse_line
    except ImportError:  # a checkout from before it, whose rollups wrote no string fields

        def parse_line(line: str) -> tuple[str, dict[str, str], int]:
            key, fields, t = line.split(" ")
            return key, dict(f.split("=", 1) for f in fields.split(",")), int(t)

    registry = Registry(scale_site(Registry.load().site, scale))
    sink = MemorySink()
    run(registry, sink, seed=7, start_ms=start_ms, duration_s=hours * 3600, speed=0)
    points: dict[str, str] = {}

    def write(lines: list[str]) -> None:
        for line in lines:
            key, fields, t = parse_line(line)
            points[f"{key} {t}"] = ",".join(f"{k}={v}" for k, v in fields.items())

    rollups = Rollups(registry, write, EmissionFactors.from_impact(registry.site.impact))
    pipeline = Pipeline(registry, Stats(), 65536, 300, 60 * 86400, observe=rollups.observe)
    n = 0
    for event, _, topic, payload in sink.events:
        if event == "publish":
            pipeline.handle(topic, payload, int(time.time() * 1000))
            n += 1
            if n % FLUSH_EVERY == 0:
                rollups.flush()
    rollups.flush()
    return {"readings": n, "too_late": rollups.too_late, "points": points}


def in_checkout(checkout: Path, scale: int, hours: float, start_ms: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    done = subprocess.run(
        [sys.executable, str(HERE), "--worker", str(scale), str(hours), str(start_ms)],
        cwd=checkout, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", type=Path, help="the other checkout (a git worktree)")
    ap.add_argument("--scale", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--hours", type=float, default=48.0)
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        scale, hours, start = args.worker
        print(json.dumps(final_points(int(scale), float(hours), int(start))))
        return
    if args.against is None or not (args.against / "ingest").is_dir():
        sys.exit("--against must name a checkout of this repository (git worktree add DIR REF)")
    start = (int(time.time()) - 3 * 86400) * 1000
    this = HERE.parent.parent
    ok = True
    for scale in args.scale:
        ours = in_checkout(this, scale, args.hours, start)
        theirs = in_checkout(args.against.resolve(), scale, args.hours, start)
        a, b = ours["points"], theirs["points"]
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        ok = ok and not differ
        print(json.dumps({
            "scale": scale, "readings": ours["readings"], "points": len(a),
            "too_late": [ours["too_late"], theirs["too_late"]], "differences": len(differ),
            "examples": [[k, a.get(k), b.get(k)] for k in differ[:5]],
        }))  # fmt: skip
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
