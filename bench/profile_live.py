"""Where a reading's microseconds go in `kera-ingest run`, live: the ingestor runs under cProfile
with default settings while bench/live.py's publisher sends N readings of 1,000 meters; when
InfluxDB holds them all the ingestor is stopped (SIGTERM) and its profile summed by part of the
receive path (docs/performance.md, "Where the time goes").

    .venv/bin/python bench/profile_live.py [--messages 50000] [--evaluate false] [--top 20]

cProfile adds a cost per Python call, so the total per reading is higher than bench/live.py's
figure; read the shares. Time in a C function (a socket call, orjson, a dict method) is counted
in the part of the code that called it. The event loop's wait in epoll is left out: cProfile
counts wall time, and there the process waits without CPU.
"""

from __future__ import annotations

import argparse
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from live import DEVICES, Publisher, _count, wait_connected, write_site
from rich.console import Console
from rich.table import Table

from devstack.services import InfluxDB, Mosquitto, free_port

console = Console(stderr=True)

# Parts of the path, by where the code lives (first match wins).
PARTS: list[tuple[str, tuple[str, ...]]] = [
    # ingest/mqtt/ now; paho-mqtt, ingest/mqtt.py and ingest/_paho.py before issue 29.
    ("MQTT receive and PUBACKs", ("ingest/mqtt", "ingest/_paho.py", "paho/")),
    ("intake, decode, validate (pipeline, codecs, devices)", (
        "ingest/intake.py", "ingest/pipeline.py", "ingest/validate.py", "ingest/codecs/",
        "ingest/reading.py", "devices/",
    )),
    ("batch, line protocol, spool, write (ingest/storage)", ("ingest/storage/",)),
    ("alert engine (evaluation/alerts)", ("ingest/evaluation/alerts/",)),
    ("rollups (evaluation/rollups)", ("ingest/evaluation/rollups/",)),
    ("evaluator, its subscription's receiver", ("ingest/evaluation/",)),
    ("counters, health, own measurements", ("ingest/observability/",)),
    ("HTTP client to InfluxDB (aiohttp)", ("aiohttp/", "multidict/", "yarl/", "http/", "email/")),
    ("event loop, sockets (asyncio, selectors)", (
        "asyncio/", "selectors.py", "ssl.py", "socket.py",
    )),
    ("logging", ("logging/",)),
]  # fmt: skip


def part_of(path: str) -> str | None:
    for name, prefixes in PARTS:
        if any(p in path for p in prefixes):
            return name
    return None


def summarise(profile: Path, n: int) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """Own time per part, µs per reading; a C or unplaced function's time goes to its callers'
    parts in proportion to what each caller spent in it."""
    raw = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    parts: dict[str, float] = defaultdict(float)
    top: list[tuple[float, str]] = []
    for (path, line, name), (_, calls, own, _, callers) in raw.items():
        if "epoll" in name or "select" in name:
            continue  # the event loop waiting for the socket: wall time, not CPU
        top.append((own / n * 1e6, f"{calls:>9,}  {Path(path).name}:{line}({name})"))
        part = part_of(path)
        if part is not None:
            parts[part] += own
            continue
        given = 0.0
        for (cpath, _, _), caller in callers.items():
            cpart = part_of(cpath)
            if cpart is not None:
                parts[cpart] += caller[2]
                given += caller[2]
        parts["other: start-up (the site file), interpreter, stdlib"] += own - given
    top.sort(reverse=True)
    return {k: v / n * 1e6 for k, v in parts.items()}, top


def profile(work: Path, n: int, evaluate: bool) -> Path:
    site = work / "site.yaml"
    write_site(site)
    out = work / "ingest.prof"
    with Mosquitto(work / "mosquitto").start() as broker, InfluxDB(work / "influx").start() as db:
        health = free_port()
        env = dict(
            os.environ, KERA_MQTT_URL=broker.url, KERA_INFLUX_URL=db.url, KERA_INFLUX_DB="prof",
            KERA_MQTT_CLIENT_ID="prof", KERA_SITE_CONFIG=str(site), KERA_DEV_MODE="true",
            KERA_STATE_DIR=str(work / "state"), KERA_HEALTH_PORT=str(health),
            KERA_EVALUATE="true" if evaluate else "false",
        )  # fmt: skip
        exe = str(Path(sys.executable).with_name("kera-ingest"))
        argv = [sys.executable, "-m", "cProfile", "-o", str(out), exe, "run"]
        with (work / "ingest.log").open("w") as log:
            # In the temporary folder: `python -m` puts the working directory first on the
            # path, and a checkout there would shadow the one under test (PYTHONPATH).
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
            try:
                wait_connected(health, proc, timeout_s=60)
                pub = Publisher(broker, n)
                pub.go()
                console.print(f"publishing {n:,} readings of {DEVICES:,} meters")
                deadline = time.monotonic() + 600
                while _count(db, "prof") < n:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"the ingestor stalled; see {work / 'ingest.log'}")
                    time.sleep(0.1)
                pub.finish(n)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--evaluate", choices=["true", "false"], default="true")
    ap.add_argument("--top", type=int, default=20, help="functions listed by own time")
    ap.add_argument("--save", type=Path, default=None, help="keep the cProfile file here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kera-profile-") as tmp:
        n = args.messages
        prof = profile(Path(tmp), n, args.evaluate == "true")
        if args.save is not None:
            shutil.copyfile(prof, args.save)
        parts, top = summarise(prof, n)
    total = sum(parts.values())
    table = Table(title=f"kera-ingest run under cProfile, {n:,} live readings")
    for col in ("part of the path", "µs per reading", "share"):
        table.add_column(col, justify="right" if col != "part of the path" else "left")
    for name, us in sorted(parts.items(), key=lambda kv: -kv[1]):
        table.add_row(name, f"{us:.2f}", f"{us / total:.0%}")
    table.add_row("total", f"{total:.2f}", "100%")
    console.print(table)
    print(f"{'µs/reading':>10}  {'calls':>9}  function")
    for us, label in top[: args.top]:
        print(f"{us:>10.2f}  {label}")


if __name__ == "__main__":
    main()
