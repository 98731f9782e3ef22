"""The live-publish method: readings are published while the subscriber consumes, as a user
meets the ingestor, and the clock stops when the last one is counted (docs/performance.md).

    .venv/bin/python bench/live.py [--messages 50000] [--rounds 2]

Contestants, in interleaved rounds on one fresh Mosquitto and InfluxDB (a database per run):
- `bare_3.1.1`, `bare_5`, `bare_5_lean`: a paho-mqtt subscriber in its own process (QoS 1,
  paho's automatic PUBACK, stores nothing) on MQTT 3.1.1, on MQTT 5, and on MQTT 5 with paho's
  per-PUBLISH properties object trimmed (what decoding properties costs). `bare_3.1.1` is the
  baseline: the cheapest way a Python program receives these readings with paho;
- `default`: `kera-ingest run` with default settings (MQTT 5, alerts and rollups on);
- `default_3.1.1`: the same on MQTT 3.1.1 (KERA_MQTT_PROTOCOL), the baseline's protocol;
- `evaluate_off`: KERA_EVALUATE=false, as a writing replica runs.
The publisher (`--publisher raw`, the default) builds N QoS 1 native readings of 1,000 energy
meters as MQTT 3.1.1 packets before the clock starts, then writes them as fast as the broker
acknowledges them (1,000 in flight); its own CPU per reading is reported beside each run. The
subscriber is connected first; the clock runs from the first publish to the last reading
counted (by the bare subscriber, or in InfluxDB with InfluxQL, which must then hold exactly N
points a second later: no loss, no duplicate). CPU per reading is the subscriber process's
utime+stime over the run (/proc, psutil) divided by N; peak RSS is sampled every 50 ms (the
bare subscriber's at its end). The median round by CPU is reported. Also used by
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

# The default publisher, as a child process: every PUBLISH packet (MQTT 3.1.1, QoS 1) is built
# before the clock starts, then written in runs of up to 100 with at most 1,000 unacknowledged,
# PUBACKs counted by their bytes. Its own CPU is a few µs a reading (reported), so it leaves the
# two cores to the broker and the subscriber, unlike a paho publisher (about 30 µs a reading).
_RAW_PUBLISHER = r"""
import socket, struct, sys
port, n, base_ms, devices = (int(a) for a in sys.argv[1:5])
site = sys.argv[5]
def packet(first, body):
    rl, head = len(body), bytearray([first])
    while True:
        rl, digit = divmod(rl, 128)
        head.append(digit | (0x80 if rl else 0))
        if not rl:
            return bytes(head) + body
def s16(b):
    return struct.pack("!H", len(b)) + b
packets = []
for i in range(n):
    topic = ("kera/%s/em-%05d/telemetry" % (site, i % devices)).encode()
    body = ('{"ts":%d,"power_w":%d.5,"energy_kwh":%.3f,"voltage_v":230.1,"current_a":4.35}'
            % (base_ms + i // devices * 1000, 1000 + i % 977, i / 1000)).encode()
    packets.append(packet(0x32, s16(topic) + struct.pack("!H", i % 65535 + 1) + body))
s = socket.create_connection(("127.0.0.1", port))
s.sendall(packet(0x10, s16(b"MQTT") + bytes([4, 2]) + struct.pack("!H", 60) + s16(b"bench-pub")))
assert s.recv(4) == bytes([0x20, 2, 0, 0]), "no CONNACK"
print("ready", flush=True)
sys.stdin.readline()
sent = acked = got = 0
while acked < n:
    while sent < n and sent - acked < 1000:
        k = min(100, n - sent, 1000 - (sent - acked))
        s.sendall(b"".join(packets[sent:sent + k]))
        sent += k
    data = s.recv(65536)
    if not data:
        raise SystemExit("the broker closed the connection")
    got += len(data)
    acked = got // 4  # PUBACKs of MQTT 3.1.1: 4 bytes each, nothing else comes
s.sendall(bytes([0xE0, 0]))
s.close()
"""

# The paho publisher of earlier figures: 1,000 meters' topics, 1,000 in flight.
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
print("ready", flush=True)
sys.stdin.readline()
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

# The bare ceiling, as a child process: a paho subscriber (QoS 1, paho's automatic PUBACK) that
# prints "ready" once subscribed and "done" after N messages. argv[4] is the protocol: "3.1.1",
# "5", or "5-lean" (MQTT 5 with paho's per-PUBLISH properties object trimmed to what the
# packet holds: what decoding them costs, shown apart).
_BARE = r"""
import sys
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
port, n, topic, proto = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if proto == "5-lean":
    from paho.mqtt import _packet
    from paho.mqtt.packettypes import PacketTypes
    template = _packet.Properties(PacketTypes.PUBLISH)
    tables = {k: getattr(template, k) for k in ("types", "names", "properties")}
    class Lean(_packet.Properties):
        def __init__(self, packetType):
            object.__setattr__(self, "packetType", packetType)
            for k, v in tables.items():
                object.__setattr__(self, k, v)
    _packet.Properties = Lean
count = 0
def on_message(c, u, m):
    global count
    count += 1
    if count == n:
        print("done", flush=True)
version = paho.MQTTv311 if proto == "3.1.1" else paho.MQTTv5
c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-live-bare-" + proto,
                protocol=version)
c.on_message = on_message
c.on_subscribe = lambda *a: print("ready", flush=True)
c.on_connect = lambda cl, *a: cl.subscribe(topic, qos=1)
c.connect("127.0.0.1", port)
c.loop_forever()
"""

# Contestants: name -> bare protocol, or the ingestor's settings.
BARE = {"bare_3.1.1": "3.1.1", "bare_5": "5", "bare_5_lean": "5-lean"}
INGESTORS: dict[str, dict[str, str]] = {
    "default": {},
    "default_3.1.1": {"KERA_MQTT_PROTOCOL": "3.1.1"},
    "evaluate_off": {"KERA_EVALUATE": "false"},
}
BASELINE = "bare_3.1.1"


def write_site(path: Path) -> None:
    lines = [f"site: {SITE}", "devices:"]
    lines += [
        f"  - {{id: em-{i:05d}, kind: energy_meter, space: floor-{i % 20}}}" for i in range(DEVICES)
    ]
    path.write_text("\n".join(lines) + "\n")


# Which publisher sends the readings: "raw" (pre-built packets, 1,000 meters' topics), "python"
# (paho, 1,000 meters' topics) or "mosquitto_pub" (the C client from Debian's mosquitto-clients,
# `-q 1 -l`: one topic, so one meter).
PUBLISHER = "raw"


class Publisher:
    """The publisher child process: raw and python are started, connected and ready before
    the clock, and `go()` tells them to publish; mosquitto_pub (which publishes as soon as it
    runs) has its lines written before the clock and is started by `go()`."""

    def __init__(self, broker: Mosquitto, n: int) -> None:
        self._port = broker.port
        self._lines: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.cpu0 = 0.0
        if PUBLISHER == "mosquitto_pub":
            self._lines = _publisher_lines(n)
            return
        # Each meter's readings a second apart, ending a minute ago.
        base = int(time.time() * 1000) - (n // DEVICES + 1) * 1000 - 60_000
        script = _RAW_PUBLISHER if PUBLISHER == "raw" else _PUBLISHER
        argv = [str(broker.port), str(n), str(base), str(DEVICES), SITE]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("the publisher did not connect")
        self.cpu0 = _cpu(psutil.Process(self.proc.pid))  # building its packets is not counted

    def go(self) -> None:
        if self._lines is not None:
            argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self._port), "-q", "1", "-l"]
            argv += ["-t", f"kera/{SITE}/em-00000/telemetry"]
            with open(self._lines, "rb") as stdin:
                self.proc = subprocess.Popen(argv, stdin=stdin)
            os.unlink(self._lines)
            return
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finish(self, n: int) -> float:
        """Wait for the publisher; its CPU µs per reading (from the kernel's account of the
        child when it is reaped)."""
        assert self.proc is not None
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        if self.proc.returncode != 0:
            raise RuntimeError("the publisher failed")
        cpu = usage.ru_utime + usage.ru_stime - self.cpu0
        return round(cpu / n * 1e6, 1)


def _publisher_lines(n: int) -> str:
    """mosquitto_pub's input: one meter's readings 10 ms apart, ending a minute ago."""
    base = int(time.time() * 1000) - n * 10 - 60_000
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as lines:
        for i in range(n):
            lines.write(
                f'{{"ts":{base + i * 10},"power_w":{1000 + i % 977}.5,'
                f'"energy_kwh":{i / 1000:.3f},"voltage_v":230.1,"current_a":4.35}}\n'
            )
    return lines.name


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return float(t.user + t.system)


def run_bare(broker: Mosquitto, n: int, proto: str) -> dict[str, float]:
    topic = f"kera/{SITE}/+/telemetry"
    sub = subprocess.Popen(
        [sys.executable, "-c", _BARE, str(broker.port), str(n), topic, proto],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sub.stdout is not None
        assert sub.stdout.readline().strip() == "ready", "bare subscriber did not subscribe"
        ps = psutil.Process(sub.pid)
        pub = Publisher(broker, n)
        cpu0, t0 = _cpu(ps), time.perf_counter()
        pub.go()
        # Before `done`, so the publisher's CPU is read while it still runs.
        assert sub.stdout.readline().strip() == "done", "bare subscriber stopped early"
        elapsed, cpu1, rss = time.perf_counter() - t0, _cpu(ps), ps.memory_info().rss
        pub_cpu = pub.finish(n)
    finally:
        sub.kill()
        sub.wait(10)
    return {**_figures(n, elapsed, cpu1 - cpu0, rss), "stored": n, "publisher_cpu_us": pub_cpu}


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
    broker: Mosquitto, db: InfluxDB, site: Path, work: Path, n: int, name: str,
    settings: dict[str, str],
) -> dict[str, float]:  # fmt: skip
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
    env.update(settings)
    exe = str(Path(sys.executable).with_name("kera-ingest"))
    with (work / f"{name}.log").open("w") as log:
        proc = subprocess.Popen([exe, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_connected(health, proc)
            ps = psutil.Process(proc.pid)
            pub = Publisher(broker, n)
            cpu0, t0, peak = _cpu(ps), time.perf_counter(), 0
            pub.go()
            deadline = time.monotonic() + 600
            while (stored := _count(db, name)) < n:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{name} stalled; see {work / (name + '.log')}")
                peak = max(peak, ps.memory_info().rss)
                time.sleep(0.05)
            elapsed, cpu1 = time.perf_counter() - t0, _cpu(ps)
            pub_cpu = pub.finish(n)
            time.sleep(1.0)  # a late duplicate would show as more than n points
            stored = _count(db, name)
        finally:
            proc.terminate()
            proc.wait(30)
    figures = _figures(n, elapsed, cpu1 - cpu0, peak)
    return {**figures, "stored": stored, "publisher_cpu_us": pub_cpu}


def wait_connected(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the ingestor exited at start")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                h = json.load(r)
                # Started: connected, and the rollups' history loaded (while it loads, live
                # readings wait in memory: a restart's cost, not the steady state's).
                if h["broker_connected"] and not h.get("rollups_loading"):
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
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in [*BARE, *INGESTORS]}
    try:
        for r in range(rounds):
            for name, proto in BARE.items():
                console.print(f"round {r + 1}/{rounds}: {name}")
                runs[name].append(run_bare(broker, n, proto))
            for i, (name, settings) in enumerate(INGESTORS.items()):
                console.print(f"round {r + 1}/{rounds}: {name}")
                db_name = f"live_{r}_{i}"
                runs[name].append(run_ingestor(broker, db, site, work, n, db_name, settings))
    finally:
        broker.stop()
        db.stop()
    result: dict[str, Any] = {"messages": n, "rounds": rounds, "baseline": BASELINE}
    for name, figures in runs.items():
        ordered = sorted(figures, key=lambda f: f["cpu_us_per_reading"])
        result[name] = {**ordered[len(ordered) // 2], "all_rounds": figures}
    base = result[BASELINE]
    for name in runs:
        f = result[name]
        f["cpu_of_baseline"] = round(f["cpu_us_per_reading"] / base["cpu_us_per_reading"], 3)
        f["rate_of_baseline"] = round(f["readings_per_s"] / base["readings_per_s"], 3)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here as well")
    ap.add_argument(
        "--contestants",
        nargs="+",
        choices=[*BARE, *INGESTORS],
        default=None,
        help=f"only these (default: all); {BASELINE} always runs, as the baseline",
    )
    ap.add_argument(
        "--publisher",
        choices=["raw", "python", "mosquitto_pub"],
        default="raw",
        help="raw: pre-built MQTT 3.1.1 packets of 1,000 meters; python: a paho publisher; "
        "mosquitto_pub: Debian's mosquitto-clients, one topic, so one meter",
    )
    args = ap.parse_args()
    global PUBLISHER  # noqa: PLW0603 - one setting for the whole run
    PUBLISHER = args.publisher
    if args.contestants:
        keep = {BASELINE, *args.contestants}
        for contestants in (BARE, INGESTORS):
            for name in [k for k in contestants if k not in keep]:
                del contestants[name]
    with tempfile.TemporaryDirectory(prefix="kera-live-") as tmp:
        result = live(Path(tmp), args.messages, args.rounds)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    result["publisher"] = args.publisher
    table = Table(title=f"live publish, {args.messages:,} QoS 1 readings, {args.publisher}")
    columns = ["contestant", "readings/s", "CPU µs/reading", "peak RSS MiB", "stored"]
    columns += [f"CPU of {BASELINE}", f"rate of {BASELINE}", "publisher µs"]
    for col in columns:
        table.add_column(col, justify="right")
    for name in [*BARE, *INGESTORS]:
        f = result[name]
        table.add_row(
            name, f"{f['readings_per_s']:,}", str(f["cpu_us_per_reading"]), str(f["rss_mib"]),
            f"{f['stored']:,}", str(f["cpu_of_baseline"]), str(f["rate_of_baseline"]),
            str(f["publisher_cpu_us"]),
        )  # fmt: skip
    console.print(table)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
