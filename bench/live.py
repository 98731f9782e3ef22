"""The live-publish method: readings are published while the subscriber consumes, as a user
meets the ingestor, and the clock stops when the last one is counted (docs/performance.md).

    .venv/bin/python bench/live.py [--messages 50000] [--rounds 2]

Contestants, in interleaved rounds on one fresh Mosquitto and InfluxDB (a database per run):
- `bare`: a paho-mqtt subscriber in its own process (QoS 1, automatic PUBACK, stores nothing),
  the ceiling any Python MQTT consumer meets on this machine;
- `default`: `kera-ingest run` with default settings (alerts and rollups on);
- `alerts_off`: the same with KERA_EVALUATE=false, as a writing replica runs.
A publisher process sends N QoS 1 native readings of 1,000 energy meters as fast as the broker
acknowledges them (1,000 in flight). The subscriber is connected first; the clock runs from the
first publish to the last reading counted (by the bare subscriber, or in InfluxDB with InfluxQL).
CPU per reading is the subscriber process's utime+stime over the run (/proc, psutil) divided by
N. Also used by
`bench/throughput.py`, which reports it beside the drain method.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from devstack.services import InfluxDB, Mosquitto, free_port
from ingest.storage.query import influxql_sync

console = Console(stderr=True)
SITE = "bench"
# As many meters as a large building has: the registry, validation and rollups see a fleet.
DEVICES = 1000

# Run as a child process, so its CPU is its own: publishes N QoS 1 readings, then exits.
_PUBLISHER = r"""
import sys, threading, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
port, n, base_ms, devices = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
site = sys.argv[5]
acked = threading.Semaphore(0)
pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-live-pub")
pub.max_inflight_messages_set(1000)
pub.on_publish = lambda *a: acked.release()
pub.connect("127.0.0.1", port)
pub.loop_start()
for i in range(n):
    if i >= 5000:
        acked.acquire()
    dev = i % devices
    body = ('{"ts":%d,"power_w":%d.5,"energy_kwh":%.3f,"voltage_v":230.1,"current_a":4.35}'
            % (base_ms + i // devices * 1000, 1000 + i % 977, i / 1000))
    pub.publish("kera/%s/em-%05d/telemetry" % (site, dev), body.encode(), qos=1)
for _ in range(min(n, 5000)):
    acked.acquire()
pub.disconnect()
pub.loop_stop()
"""

# The bare ceiling, as a child process: prints "ready" once subscribed, "done" after N messages.
_BARE = r"""
import sys, threading
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
port, n, topic = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
count = 0
def on_message(c, u, m):
    global count
    count += 1
    if count == n:
        print("done", flush=True)
c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-live-bare", protocol=paho.MQTTv5)
c.on_message = on_message
c.on_subscribe = lambda *a: print("ready", flush=True)
c.on_connect = lambda cl, *a: cl.subscribe(topic, qos=1)
c.connect("127.0.0.1", port)
c.loop_forever()
"""


def write_site(path: Path) -> None:
    lines = [f"site: {SITE}", "devices:"]
    lines += [
        f"  - {{id: em-{i:05d}, kind: energy_meter, space: floor-{i % 20}}}" for i in range(DEVICES)
    ]
    path.write_text("\n".join(lines) + "\n")


# Which publisher sends the readings: "python" (paho, 1,000 meters' topics) or "mosquitto_pub"
# (the C client from Debian's mosquitto-clients, `-q 1 -l`: one topic, so one meter, but a
# publisher that is never the bottleneck).
PUBLISHER = "python"


def _publish(broker: Mosquitto, n: int) -> subprocess.Popen[bytes]:
    # Each meter's readings a second apart (10 ms for the single mosquitto_pub meter), ending a
    # minute ago.
    if PUBLISHER == "mosquitto_pub":
        base = int(time.time() * 1000) - n * 10 - 60_000
        lines = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)  # noqa: SIM115
        with lines:
            for i in range(n):
                lines.write(
                    f'{{"ts":{base + i * 10},"power_w":{1000 + i % 977}.5,'
                    f'"energy_kwh":{i / 1000:.3f},"voltage_v":230.1,"current_a":4.35}}\n'
                )
        argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-l"]
        argv += ["-t", f"kera/{SITE}/em-00000/telemetry"]
        with open(lines.name, "rb") as stdin:
            proc = subprocess.Popen(argv, stdin=stdin)
        os.unlink(lines.name)
        return proc
    base = int(time.time() * 1000) - (n // DEVICES + 1) * 1000 - 60_000
    argv = [str(broker.port), str(n), str(base), str(DEVICES), SITE]
    return subprocess.Popen([sys.executable, "-c", _PUBLISHER, *argv])


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


def run_bare(broker: Mosquitto, n: int) -> dict[str, float]:
    sub = subprocess.Popen(
        [sys.executable, "-c", _BARE, str(broker.port), str(n), f"kera/{SITE}/+/telemetry"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sub.stdout is not None
        assert sub.stdout.readline().strip() == "ready", "bare subscriber did not subscribe"
        ps = psutil.Process(sub.pid)
        cpu0, t0 = _cpu(ps), time.perf_counter()
        pub = _publish(broker, n)
        assert sub.stdout.readline().strip() == "done", "bare subscriber stopped early"
        elapsed, cpu1, rss = time.perf_counter() - t0, _cpu(ps), ps.memory_info().rss
        pub.wait(60)
    finally:
        sub.kill()
        sub.wait(10)
    return _figures(n, elapsed, cpu1 - cpu0, rss)


def _figures(n: int, elapsed: float, cpu_s: float, rss: int) -> dict[str, float]:
    return {
        "readings_per_s": round(n / elapsed),
        "cpu_us_per_reading": round(cpu_s / n * 1e6, 1),
        "rss_mib": round(rss / 2**20, 1),
    }


def _count(db: InfluxDB, database: str) -> int:
    try:
        series = influxql_sync(db.url, "SELECT count(power_w) FROM energy", database)
    except RuntimeError:
        return 0
    return int(series[0]["values"][0][1]) if series else 0


def run_ingestor(
    broker: Mosquitto, db: InfluxDB, site: Path, work: Path, n: int, name: str, alerts: bool
) -> dict[str, float]:
    health = free_port()
    env = dict(
        os.environ,
        KERA_MQTT_URL=broker.url,
        KERA_INFLUX_URL=db.url,
        KERA_INFLUX_DB=name,
        KERA_MQTT_CLIENT_ID=name,
        KERA_SITE_CONFIG=str(site),
        KERA_STATE_DIR=str(work / "state" / name),
        KERA_HEALTH_PORT=str(health),
        KERA_DEV_MODE="true",
    )
    if not alerts:
        env["KERA_EVALUATE"] = "false"
    exe = str(Path(sys.executable).with_name("kera-ingest"))
    with (work / f"{name}.log").open("w") as log:
        proc = subprocess.Popen([exe, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_connected(health, proc)
            ps = psutil.Process(proc.pid)
            cpu0, t0, peak = _cpu(ps), time.perf_counter(), 0
            pub = _publish(broker, n)
            deadline = time.monotonic() + 600
            while _count(db, name) < n:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{name} stalled; see {work / (name + '.log')}")
                peak = max(peak, ps.memory_info().rss)
                time.sleep(0.05)
            elapsed, cpu1 = time.perf_counter() - t0, _cpu(ps)
            pub.wait(60)
        finally:
            proc.terminate()
            proc.wait(30)
    return _figures(n, elapsed, cpu1 - cpu0, peak)


def wait_connected(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the ingestor exited at start")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if json.load(r)["broker_connected"]:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the ingestor did not connect within {timeout_s:.0f} s")


def live(work: Path, n: int, rounds: int) -> dict[str, Any]:
    """Every contestant `rounds` times, interleaved; the median round of each is reported."""
    site = work / "live-site.yaml"
    write_site(site)
    broker = Mosquitto(work / "live-mosquitto").start()
    db = InfluxDB(work / "live-influxdb").start()
    runs: dict[str, list[dict[str, float]]] = {"bare": [], "default": [], "alerts_off": []}
    try:
        for r in range(rounds):
            console.print(f"live round {r + 1}/{rounds}: bare, default, alerts off")
            runs["bare"].append(run_bare(broker, n))
            runs["default"].append(run_ingestor(broker, db, site, work, n, f"live_d{r}", True))
            runs["alerts_off"].append(run_ingestor(broker, db, site, work, n, f"live_a{r}", False))
    finally:
        broker.stop()
        db.stop()
    result: dict[str, Any] = {"messages": n, "rounds": rounds}
    for name, figures in runs.items():
        ordered = sorted(figures, key=lambda f: f["readings_per_s"])
        result[name] = {**ordered[len(ordered) // 2], "all_rounds": figures}
    bare = result["bare"]["readings_per_s"]
    for name in ("default", "alerts_off"):
        result[name]["ratio_to_bare"] = round(result[name]["readings_per_s"] / bare, 3)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here as well")
    ap.add_argument(
        "--publisher",
        choices=["python", "mosquitto_pub"],
        default="python",
        help="mosquitto_pub needs Debian's mosquitto-clients; one topic, so one meter",
    )
    args = ap.parse_args()
    global PUBLISHER  # noqa: PLW0603 - one setting for the whole run
    PUBLISHER = args.publisher
    with tempfile.TemporaryDirectory(prefix="kera-live-") as tmp:
        result = live(Path(tmp), args.messages, args.rounds)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    result["publisher"] = args.publisher
    table = Table(title=f"live publish, {args.messages:,} QoS 1 readings")
    for col in ("contestant", "readings/s", "CPU µs/reading", "RSS MiB", "of bare"):
        table.add_column(col, justify="right")
    for name in ("bare", "default", "alerts_off"):
        f = result[name]
        table.add_row(
            name, f"{f['readings_per_s']:,}", str(f["cpu_us_per_reading"]), str(f["rss_mib"]),
            str(f.get("ratio_to_bare", 1.0)),
        )  # fmt: skip
    console.print(table)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
