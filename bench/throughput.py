"""End-to-end throughput of one ingestor process against the bare paho-mqtt ceiling.

    .venv/bin/python bench/throughput.py [--messages 100000] [--devices 1000]

Method, the same for both subscribers so the ratio compares like with like: a persistent MQTT v5
session is created, N QoS 1 native readings (distinct device/timestamp pairs) are published
while the subscriber is away, then the subscriber connects and drains the broker's queue.
- ceiling: a bare paho-mqtt subscriber (loop_forever, automatic PUBACK, no processing) timed from
  its first to its last message;
- ingestor: `kera-ingest run` as its own process (decode, validate, line protocol, batched HTTP
  writes to InfluxDB, PUBACK after the write), timed from the first point visible in InfluxDB to
  the last, counted with InfluxQL.
Broker, database, publisher and subscribers share this machine. Prints a table and writes
bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from rich.console import Console
from rich.table import Table

from devstack.services import InfluxDB, Mosquitto
from ingest.influx import influxql_sync

console = Console()
SITE = "bench"


def write_site(path: Path, devices: int) -> None:
    lines = [f"site: {SITE}", "devices:"]
    for i in range(devices):
        lines.append(f"  - {{id: em-{i:05d}, kind: energy_meter, space: floor-{i % 20}}}")
    path.write_text("\n".join(lines) + "\n")


def session_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 65535
    return props


def create_session(broker: Mosquitto, client_id: str) -> None:
    """Subscribe once and leave, so the broker queues what is published next for this id."""
    done = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    c.on_subscribe = lambda *a: done.set()
    c.on_connect = lambda cl, *a: cl.subscribe(f"kera/{SITE}/+/telemetry", qos=1)
    c.connect("127.0.0.1", broker.port, clean_start=False, properties=session_props())
    c.loop_start()
    assert done.wait(10), "no SUBACK"
    c.disconnect()
    c.loop_stop()


def publish(broker: Mosquitto, messages: int, devices: int, base_ms: int) -> float:
    """QoS 1 readings as fast as the broker acknowledges them (a window of 1,000 in flight)."""
    acked = threading.Semaphore(0)
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
    pub.max_inflight_messages_set(1000)
    pub.on_publish = lambda *a: acked.release()
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    t0 = time.perf_counter()
    for i in range(messages):
        if i >= 5000:
            acked.acquire()  # bounded: at most 5,000 handed to paho and not yet acknowledged
        dev = i % devices
        ts = base_ms + i // devices * 1000
        payload = (
            f'{{"ts":{ts},"power_w":{1000 + i % 977}.5,"energy_kwh":{i / 1000:.3f},'
            f'"voltage_v":230.1,"current_a":4.35}}'
        )
        pub.publish(f"kera/{SITE}/em-{dev:05d}/telemetry", payload.encode(), qos=1)
    for _ in range(min(messages, 5000)):
        acked.acquire()
    rate = messages / (time.perf_counter() - t0)
    pub.disconnect()
    pub.loop_stop()
    return rate


def bare_ceiling(broker: Mosquitto, messages: int) -> float:
    count = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        nonlocal count, first, last
        count += 1
        if count == 1:
            first = time.perf_counter()
        if count == messages:
            last = time.perf_counter()
            done.set()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv5)
    c.on_message = on_message
    c.connect("127.0.0.1", broker.port, clean_start=False, properties=session_props())
    c.loop_start()
    assert done.wait(600), f"bare subscriber got {count}/{messages}"
    c.disconnect()
    c.loop_stop()
    return (messages - 1) / (last - first)


def ingestor_rate(
    broker: Mosquitto, db: InfluxDB, site: Path, messages: int, workdir: Path
) -> tuple[float, float, float]:
    env = dict(
        os.environ,
        KERA_MQTT_URL=broker.url,
        KERA_INFLUX_URL=db.url,
        KERA_INFLUX_DB="bench",
        KERA_MQTT_CLIENT_ID="bench-ingest",
        KERA_SITE_CONFIG=str(site),
        KERA_STATS_INTERVAL_S="3600",
        KERA_SPOOL_DIR=str(workdir / "spool"),
        KERA_HEALTH_PORT="0",
    )
    exe = str(Path(sys.executable).with_name("kera-ingest"))
    log = (workdir / "ingest.log").open("w")
    proc = subprocess.Popen([exe, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    peak_rss = 0
    first_t = 0.0
    first_n = 0
    n = 0
    cpu0 = None
    try:
        deadline = time.monotonic() + 900
        while n < messages:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"ingestor stalled at {n}/{messages}; see {log.name}")
            peak_rss = max(peak_rss, ps.memory_info().rss)
            try:
                series = influxql_sync(db.url, "SELECT count(power_w) FROM energy", "bench")
            except RuntimeError:
                series = []  # database not created yet
            n = int(series[0]["values"][0][1]) if series else 0
            if n and not first_t:
                first_t, first_n = time.perf_counter(), n
                cpu0 = ps.cpu_times()
            time.sleep(0.2)
        end_t = time.perf_counter()
        cpu1 = ps.cpu_times()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    rate = (messages - first_n) / (end_t - first_t)
    assert cpu0 is not None
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / max(1, messages - first_n)
    return rate, peak_rss / 2**20, cpu * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="kera-bench-") as tmp:
        work = Path(tmp)
        site = work / "site.yaml"
        write_site(site, args.devices)
        broker = Mosquitto(work / "mosquitto").start()
        db = InfluxDB(work / "influxdb").start()
        try:
            base = int(time.time() * 1000) - 86_400_000
            console.print(f"[bold]ceiling[/bold]: queueing {args.messages} readings for paho")
            create_session(broker, "bench-bare")
            pub_rate = publish(broker, args.messages, args.devices, base)
            bare = bare_ceiling(broker, args.messages)
            console.print(f"bare paho subscriber: {bare:,.0f} msg/s")

            console.print(f"[bold]ingestor[/bold]: queueing {args.messages} readings")
            create_session(broker, "bench-ingest")
            publish(broker, args.messages, args.devices, base)
            rate, rss, cpu_us = ingestor_rate(broker, db, site, args.messages, work)
            console.print(f"ingestor into InfluxDB: {rate:,.0f} readings/s")
        finally:
            broker.stop()
            db.stop()

    ratio = rate / bare
    report = {
        "messages": args.messages,
        "devices": args.devices,
        "publisher_msg_per_s": round(pub_rate),
        "bare_paho_qos1_msg_per_s": round(bare),
        "ingestor_end_to_end_per_s": round(rate),
        "ratio": round(ratio, 3),
        "target_ratio": 0.6,
        "ingestor_peak_rss_mib": round(rss, 1),
        "ingestor_cpu_us_per_reading": round(cpu_us, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
    }
    table = Table(title="Kera ingestor throughput (QoS 1, one process)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in report.items():
        table.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    verdict = "[green]meets[/green]" if ratio >= 0.6 else "[red]misses[/red]"
    console.print(f"ratio {ratio:.2f} {verdict} the 0.6 target")


if __name__ == "__main__":
    main()
