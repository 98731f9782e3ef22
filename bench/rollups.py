"""What the impact rollups cost the evaluating ingestor (docs/performance.md).

    .venv/bin/python bench/rollups.py [--scale 1 10 50] [--hours 72]

For each scale (the Kera site's devices repeated N times, `kera-sim site --scale N`), simulated
readings go through the ingestor's Pipeline with the Rollups observing, with a flush every 30 s
of simulated time, as the live ingestor flushes every 30 s of wall time when readings arrive in
real time. Reported: observe() cost per reading, the mean and the longest flush after the first
two days (the raw window is an hour, five for slow devices, but the computed hours grow for nine
days; a flush runs on the event loop in slices, so this is its CPU, not one pause), the readings
the window holds, and the process's peak RSS (which includes the benchmark's own list of every
simulated message). Writes bench/results/rollups.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path
from typing import Any

from devices import Registry
from firmware_sim import run, scale_site
from firmware_sim.runner import MemorySink
from ingest.evaluation.rollups import EmissionFactors, Rollups
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline

FLUSH_EVERY_MS = 30_000


def measure(scale: int, hours: float) -> dict[str, Any]:
    base = Registry.load()
    registry = Registry(scale_site(base.site, scale))
    sink = MemorySink()
    start = int(time.time() * 1000) - round(hours * 3_600_000) - 60_000
    run(registry, sink, seed=1, start_ms=start, duration_s=hours * 3600, speed=0)
    written = [0]
    rollups = Rollups(
        registry,
        lambda lines: written.__setitem__(0, written[0] + len(lines)),
        EmissionFactors.from_impact(registry.site.impact),
    )
    pipeline = Pipeline(registry, Stats(), 65536, 300, 60 * 86400)
    messages = [(t, p) for e, _, t, p in sink.events if e == "publish"]
    # Observe cost alone: the pipeline with and without the observer.
    t0 = time.perf_counter()
    for topic, payload in messages:
        pipeline.handle(topic, payload, int(time.time() * 1000))
    bare = time.perf_counter() - t0
    pipeline.observe = rollups.observe
    flushes: list[float] = []
    full_from = start + 48 * 3_600_000  # steady: windows full, two days of computed hours
    next_flush = start + FLUSH_EVERY_MS
    t0 = time.perf_counter()
    flush_total = 0.0
    for topic, payload in messages:
        ts = json.loads(payload)["ts"]
        if ts >= next_flush:
            f0 = time.perf_counter()
            rollups.flush()
            took = time.perf_counter() - f0
            flush_total += took
            if ts >= full_from:
                flushes.append(took)
            next_flush = ts + FLUSH_EVERY_MS
        pipeline.handle(topic, payload, int(time.time() * 1000))
    observed = time.perf_counter() - t0 - flush_total
    window = rollups.window_readings
    return {
        "scale": scale,
        "devices": len(registry),
        "readings": len(messages),
        "observe_us_per_reading": round((observed - bare) / len(messages) * 1e6, 2),
        "flush_ms_mean": round(sum(flushes) / max(1, len(flushes)) * 1000, 2),
        "flush_ms_max": round(max(flushes, default=0.0) * 1000, 2),
        "flushes_measured": len(flushes),
        "points_written": written[0],
        "window_readings": window,
        "window_mib": round(window * 24 / 2**20, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, nargs="+", default=[1, 10])
    ap.add_argument(
        "--hours",
        type=float,
        default=52.0,
        help="simulated; flushes after the first 48 are measured",
    )
    args = ap.parse_args()
    results = []
    for scale in args.scale:
        r = measure(scale, args.hours)
        print(json.dumps(r), flush=True)
        results.append(r)
    out = Path(__file__).parent / "results" / "rollups.json"
    out.write_text(
        json.dumps(
            {"machine": f"{platform.machine()} {platform.processor()}".strip(),
             "python": platform.python_version(), "results": results},
            indent=2,
        ) + "\n"
    )  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
