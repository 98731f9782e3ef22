"""District scale, measured as an operator growing the site would (docs/performance.md):

    .venv/bin/python bench/district.py [--scales 5 20] [--days 2] [--out FILE]

Per scale: the bundled site repeated with `kera-sim site --scale N`, a fresh Mosquitto and
InfluxDB, one `kera-ingest run` with default settings (it evaluates alerts and keeps the
rollups), and `kera-sim backfill --days D --scale N` publishing as fast as the broker takes it.
From outside the ingestor, a poller asks `/healthz` every 0.2 s (10 s timeout) and samples the
process's RSS; the run ends when InfluxDB holds every reading the simulator published.

Reported per scale: devices, readings, seconds to store them all, readings per second, the
ingestor's CPU per reading, RSS before the backfill, its peak and at the end, and the longest and
99th-percentile `/healthz` answer. Between scales: the memory cost per device (the difference of
the end RSS over the difference of devices). Then the ingestor is stopped (its last flush) and
its rollups are compared, point by point, with a recompute of the same days from every stored
reading (`kera-ingest rollups`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from live import wait_connected
from rich.console import Console
from rich.progress import Progress

from devices.contract import KINDS, ROLLUP_MEASUREMENTS
from devstack.services import InfluxDB, Mosquitto, free_port
from ingest.evaluation.rollups import RollupKey, read_rollups
from ingest.storage.influxql import ident
from ingest.storage.query import influxql_sync

console = Console(stderr=True)
BIN = Path(sys.executable).parent
POLL_S = 0.2


@dataclass
class Poller:
    """Asks /healthz every POLL_S from its own thread; samples the ingestor's RSS."""

    port: int
    process: psutil.Process
    answers: list[float] = field(default_factory=list)
    asked_at: list[float] = field(default_factory=list)  # perf_counter() of each question
    failures: int = 0
    rss: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)

    def _run(self) -> None:
        url = f"http://127.0.0.1:{self.port}/healthz"
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    r.read()
            except OSError as exc:
                # 503 while the spool or writer is unhappy still answers: only a timeout or a
                # refused connection is a failure to answer.
                if not isinstance(exc, urllib.error.HTTPError):
                    self.failures += 1
            self.answers.append(time.perf_counter() - t0)
            self.asked_at.append(t0)
            with contextlib.suppress(psutil.Error):
                self.rss.append(self.process.memory_info().rss)
            self._stop.wait(max(0.0, POLL_S - (time.perf_counter() - t0)))


def _stored(db: InfluxDB, by_kind: dict[str, int]) -> int:
    total = 0
    for kind in by_kind:
        spec = KINDS[kind]
        first = next(iter(spec.fields))
        try:
            q = f"SELECT count({ident(first)}) FROM {ident(spec.measurement)}"
            series = influxql_sync(db.url, q, "kera")
        except RuntimeError:
            return 0
        total += int(series[0]["values"][0][1]) if series else 0
    return total


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def _rollups(db: InfluxDB) -> dict[RollupKey, dict[str, Any]]:
    return asyncio.run(read_rollups(db.url, "kera"))


def _differences(
    live: dict[RollupKey, dict[str, Any]],
    again: dict[RollupKey, dict[str, Any]],
) -> list[str]:
    out = [f"only live: {k}" for k in live.keys() - again.keys()]
    out += [f"only recomputed: {k}" for k in again.keys() - live.keys()]
    for key in live.keys() & again.keys():
        for name, value in live[key].items():
            other = again[key].get(name)
            same = (
                isinstance(other, float) and abs(other - value) <= 1e-6 * max(1.0, abs(value))
                if isinstance(value, float)
                else other == value
            )
            if not same:
                out.append(f"{key} {name}: live {value}, recomputed {other}")
    return out


def check_rollups(db: InfluxDB, env: dict[str, str], days: float) -> dict[str, Any]:
    """The live rollups against a recompute of the same days from every stored reading (which
    holds every reading of a chunk in memory, as the rollups did before issue 19)."""
    live = _rollups(db)
    for m in ROLLUP_MEASUREMENTS:
        influxql_sync(db.url, f'DROP MEASUREMENT "{m}"', "kera")
    today = datetime.now(UTC).date()
    first = today - timedelta(days=int(days) + 2)
    t0 = time.perf_counter()
    subprocess.run(
        [str(BIN / "kera-ingest"), "rollups", "--from", first.isoformat(),
         "--to", (today + timedelta(days=2)).isoformat()],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    recomputed_s = time.perf_counter() - t0
    differences = _differences(live, _rollups(db))
    return {
        "rollup_points": len(live),
        "rollups_equal_to_recompute": not differences,
        "rollup_differences": len(differences),
        "rollup_difference_examples": sorted(differences)[:10],
        "recompute_s": round(recomputed_s, 1),
    }


def one_scale(work: Path, scale: int, days: float, ingest_from: Path | None) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    site = work / "site.yaml"
    site.write_text(subprocess.run([str(BIN / "kera-sim"), "site", "--scale", str(scale)],
                                   check=True, capture_output=True, text=True).stdout)  # fmt: skip
    broker = Mosquitto(work / "mosquitto").start()
    db = InfluxDB(work / "influxdb").start()
    health = free_port()
    env = dict(os.environ, KERA_MQTT_URL=broker.url, KERA_INFLUX_URL=db.url,
               KERA_SITE_CONFIG=str(site), KERA_STATE_DIR=str(work / "state"),
               KERA_HEALTH_PORT=str(health), KERA_DEV_MODE="true")  # fmt: skip
    # Only the ingestor may come from another checkout: the simulator stays this one.
    ingest_env = dict(env, PYTHONPATH=str(ingest_from)) if ingest_from else env
    log = (work / "ingest.log").open("w")
    proc = subprocess.Popen([str(BIN / "kera-ingest"), "run"], env=ingest_env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        ps = psutil.Process(proc.pid)
        try:
            wait_connected(health, proc, timeout_s=60)
        except RuntimeError:
            log.flush()
            console.print((work / "ingest.log").read_text()[-3000:])
            raise
        time.sleep(2)  # start-up work (the rollups' reload) is not the backfill's
        rss0, cpu0 = ps.memory_info().rss, _cpu(ps)
        poller = Poller(health, ps)
        poller.start()
        t0 = time.perf_counter()
        sim = subprocess.run(
            # The scaled file the ingestor was given, as it is (--scale would scale it again).
            [str(BIN / "kera-sim"), "backfill", "--days", str(days), "--config", str(site),
             "--json", "--quiet", "--mqtt-url", broker.url],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        summary = json.loads(sim.stdout.strip().splitlines()[-1])
        published, by_kind = int(summary["published"]), dict(summary["by_kind"])
        progressed, last = time.monotonic(), -1
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"scale {scale}: stored", total=published)
            while (stored := _stored(db, by_kind)) < published:
                progress.update(task, completed=stored)
                if stored > last:
                    progressed, last = time.monotonic(), stored
                if time.monotonic() - progressed > 120 or proc.poll() is not None:
                    log.flush()
                    console.print((work / "ingest.log").read_text()[-3000:])
                    raise RuntimeError(f"the ingestor stored {stored} of {published} and stalled")
                time.sleep(1)
        elapsed = time.perf_counter() - t0
        cpu = _cpu(ps) - cpu0
        poller.stop()
        rss_end = ps.memory_info().rss
        # A graceful stop writes the rollups of what came since the last flush.
        proc.terminate()
        proc.wait(120)
        with Progress(console=console, transient=True) as progress:
            progress.add_task(f"scale {scale}: live rollups against a recompute", total=None)
            checked = check_rollups(db, env, days)
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()
        broker.stop()
        db.stop()
    answers = sorted(poller.answers)
    slow = [(round(at - t0, 1), round(a, 3)) for at, a in zip(poller.asked_at, poller.answers,
                                                               strict=True) if a > 0.1]  # fmt: skip
    return {
        "scale": scale,
        "devices": int(summary["devices"]),
        "readings": published,
        "stored_s": round(elapsed, 1),
        "readings_per_s": round(published / elapsed),
        "cpu_us_per_reading": round(cpu / published * 1e6, 1),
        "rss_before_mb": round(rss0 / 2**20, 1),
        "rss_peak_mb": round(max(poller.rss, default=rss_end) / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1),
        "healthz_max_s": round(answers[-1], 3) if answers else None,
        "healthz_p99_s": round(answers[int(0.99 * (len(answers) - 1))], 3) if answers else None,
        "healthz_median_s": round(statistics.median(answers), 4) if answers else None,
        "healthz_polls": len(answers),
        "healthz_unanswered": poller.failures,
        # When the slow answers came (seconds into the backfill): periodic work shows here.
        "healthz_over_100ms": slow,
        "late_repairs": _logged(work / "ingest.log", "rollups: could not", "came later than"),
        **checked,
    }


def _logged(path: Path, *needles: str) -> list[str]:
    """The ingestor's log lines about late readings it could not roll up (none expected)."""
    return [line for line in path.read_text().splitlines() if any(n in line for n in needles)]


def per_device(runs: list[dict[str, Any]]) -> float | None:
    if len(runs) < 2:
        return None
    a, b = runs[0], runs[-1]
    grown = float(b["rss_end_mb"]) - float(a["rss_end_mb"])
    return round(grown / (int(b["devices"]) - int(a["devices"])), 4)


def markdown(runs: list[dict[str, Any]]) -> str:
    head = ("| devices | readings | stored in | readings/s | CPU per reading | RSS before / peak "
            "/ end | longest `/healthz` | p99 `/healthz` |")  # fmt: skip
    rows = [head, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        rows.append(
            f"| {r['devices']} (`--scale {r['scale']}`) | {r['readings']:,} | {r['stored_s']} s "
            f"| {r['readings_per_s']:,} | {r['cpu_us_per_reading']} µs | {r['rss_before_mb']} / "
            f"{r['rss_peak_mb']} / {r['rss_end_mb']} MB | {r['healthz_max_s']} s "
            f"| {r['healthz_p99_s']} s |"
        )
    for r in runs:
        if "rollup_points" in r:
            verdict = "equal" if r["rollups_equal_to_recompute"] else (
                f"{r['rollup_differences']} differences")  # fmt: skip
            rows.append(f"\n`--scale {r['scale']}`: {r['rollup_points']:,} rollup points, "
                        f"{verdict} to a recompute from every stored reading.")  # fmt: skip
    cost = per_device(runs)
    if cost is not None:
        rows.append(f"\nMemory per device (end RSS): {cost} MB.")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here as well")
    ap.add_argument(
        "--ingest-from", type=Path, default=None,
        help="run the ingestor from this checkout (a before/after comparison); the simulator "
        "is always this one",
    )  # fmt: skip
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="kera-district-") as tmp:
        for scale in args.scales:
            console.print(f"scale {scale}: backfilling {args.days:g} days")
            work = Path(tmp) / f"scale-{scale}"
            runs.append(one_scale(work, scale, args.days, args.ingest_from))
            console.print(runs[-1])
    result = {
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "days": args.days, "runs": runs, "mb_per_device": per_device(runs),
        "ingest_from": str(args.ingest_from or "this checkout"),
    }  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    console.print(markdown(runs), soft_wrap=True)


if __name__ == "__main__":
    main()
