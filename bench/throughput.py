"""The ingestor's benchmarks, in one run on one machine (docs/performance.md).

    .venv/bin/python bench/throughput.py [--messages 100000] [--soak-s 600]

- ceilings: a bare paho-mqtt subscriber's QoS 1 receive rate; InfluxDB's rate for pre-built
  5,000-line batches;
- one `kera-ingest run` process, and two on a shared subscription, draining the same number of
  queued readings into InfluxDB (counted there); CPU time per reading and peak RSS;
- latency from publish to queryable, p50 and p99, at 1,000 and 5,000 readings/s;
- the serial path's rate (concentrator lines framed and validated, in-process);
- RSS every 10 s over a soak at a steady rate.

Two methods. The live method (bench/live.py, run here too) is how a user meets the ingestor:
readings published while it consumes, with default settings and with alerts off, beside a bare
paho subscriber measured the same way. The drain method below measures the receive path alone.

Drain method, the same for both subscribers so the ratio compares like with like: a persistent
MQTT v5 session is created, N QoS 1 native readings (distinct device/timestamp pairs) are published
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
import asyncio
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
from live import BARE, INGESTORS, live
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from rich.console import Console
from rich.table import Table

from devstack.services import InfluxDB, Mosquitto
from ingest.storage.query import influxql_sync
from ingest.storage.transports import InfluxTarget, V1Transport

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


def create_session(broker: Mosquitto, client_id: str, group: str | None = None) -> None:
    """Subscribe once and leave, so the broker queues what is published next for this id; with
    `group`, as a member of that shared subscription, so the queued readings are split."""
    topic = f"kera/{SITE}/+/telemetry"
    if group:
        topic = f"$share/{group}/{topic}"
    done = threading.Event()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    c.on_subscribe = lambda *a: done.set()
    c.on_connect = lambda cl, *a: cl.subscribe(topic, qos=1)
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


def ingest_env(
    broker: Mosquitto, db: InfluxDB, site: Path, workdir: Path, name: str
) -> dict[str, str]:
    return dict(
        os.environ,
        KERA_MQTT_URL=broker.url,
        KERA_INFLUX_URL=db.url,
        KERA_INFLUX_DB="bench",
        KERA_MQTT_CLIENT_ID=name,
        KERA_SITE_CONFIG=str(site),
        KERA_STATS_INTERVAL_S="3600",
        KERA_SPOOL_DIR=str(workdir / "spool" / name),
        KERA_HEALTH_PORT="0",
        KERA_EVALUATE="false",
        KERA_DEV_MODE="true",
    )


def count_points(db: InfluxDB) -> int:
    try:
        series = influxql_sync(db.url, "SELECT count(power_w) FROM energy", "bench")
    except RuntimeError:
        return 0  # database not created yet
    return int(series[0]["values"][0][1]) if series else 0


def ingestor_rate(
    broker: Mosquitto,
    db: InfluxDB,
    site: Path,
    messages: int,
    workdir: Path,
    names: list[str],
    share: str | None = None,
) -> tuple[float, float, float]:
    """Start `kera-ingest run` per name (on a shared subscription if `share`), let them drain
    the queued readings, and return (readings/s, peak RSS MiB of one process, CPU us/reading)."""
    exe = str(Path(sys.executable).with_name("kera-ingest"))
    already = count_points(db)
    procs, logs = [], []
    for name in names:
        env = ingest_env(broker, db, site, workdir, name)
        if share:
            env["KERA_MQTT_SHARE_GROUP"] = share
        log = (workdir / f"{name}.log").open("w")
        logs.append(log)
        procs.append(subprocess.Popen([exe, "run"], env=env, stdout=log, stderr=subprocess.STDOUT))
    ps = [psutil.Process(p.pid) for p in procs]
    peak_rss = 0
    first_t = 0.0
    first_n = 0
    n = 0
    cpu0: list[Any] = []
    try:
        deadline = time.monotonic() + 900
        while n < messages:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"ingestor stalled at {n}/{messages}; see {workdir}")
            peak_rss = max([peak_rss, *(x.memory_info().rss for x in ps)])
            n = count_points(db) - already
            if n and not first_t:
                first_t, first_n = time.perf_counter(), n
                cpu0 = [x.cpu_times() for x in ps]
            time.sleep(0.2)
        end_t = time.perf_counter()
        cpu1 = [x.cpu_times() for x in ps]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        for log in logs:
            log.close()
    rate = (messages - first_n) / (end_t - first_t)
    cpu = sum(b.user + b.system - a.user - a.system for a, b in zip(cpu0, cpu1, strict=True))
    return rate, peak_rss / 2**20, cpu / max(1, messages - first_n) * 1e6


def influx_ceiling(db: InfluxDB, lines: int = 200_000, batch: int = 5000) -> float:
    """InfluxDB's rate for pre-built 5,000-line batches, written one after another."""

    async def go() -> float:
        t = V1Transport(InfluxTarget(db.url, "ceiling"))
        await t.start()
        await t.create_database()
        bodies = [
            "\n".join(
                f"energy,site=bench,device=em-{(b * batch + i) % 1000:05d} power_w={i}.5,"
                f"energy_kwh={i / 1000} {1_700_000_000_000 + b * batch + i}"
                for i in range(batch)
            ).encode()
            for b in range(lines // batch)
        ]
        t0 = time.perf_counter()
        for body in bodies:
            await t.write(body)
        elapsed = time.perf_counter() - t0
        await t.close()
        return lines / elapsed

    return asyncio.run(go())


def latency(
    broker: Mosquitto,
    db: InfluxDB,
    site: Path,
    workdir: Path,
    rate: float,
    seconds: float,
    devices: int,
) -> tuple[float, float]:
    """p50 and p99 seconds from publish to queryable at a fixed publish rate: the k-th reading
    is queryable once the point count reaches k (points land in publish order)."""
    exe = str(Path(sys.executable).with_name("kera-ingest"))
    env = ingest_env(broker, db, site, workdir, f"lat-{int(rate)}")
    env["KERA_INFLUX_DB"] = f"lat{int(rate)}"
    log = (workdir / f"lat-{int(rate)}.log").open("w")
    proc = subprocess.Popen([exe, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    seen: list[tuple[float, int]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                s = influxql_sync(
                    db.url, "SELECT count(power_w) FROM energy", env["KERA_INFLUX_DB"]
                )
                seen.append((time.perf_counter(), int(s[0]["values"][0][1]) if s else 0))
            except RuntimeError:
                pass
            time.sleep(0.02)

    try:
        time.sleep(2.0)  # subscribed
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"lat-pub-{int(rate)}")
        pub.max_inflight_messages_set(1000)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        sent: list[float] = []
        n = int(rate * seconds)
        t0 = time.perf_counter()
        for i in range(n):
            due = t0 + i / rate
            while (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            ts = int(time.time() * 1000)
            body = f'{{"ts":{ts},"power_w":{i % 5000}.5,"energy_kwh":{i / 1000:.3f}}}'
            pub.publish(f"kera/{SITE}/em-{i % devices:05d}/telemetry", body.encode(), qos=1)
            sent.append(time.perf_counter())
        deadline = time.perf_counter() + 30
        while (not seen or seen[-1][1] < n) and time.perf_counter() < deadline:
            time.sleep(0.1)
        stop.set()
        poller.join()
        pub.disconnect()
        pub.loop_stop()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    lat = []
    j = 0
    for k, t_sent in enumerate(sent, 1):
        while j < len(seen) and seen[j][1] < k:
            j += 1
        if j == len(seen):
            raise RuntimeError(f"reading {k} never became queryable")
        lat.append(seen[j][0] - t_sent)
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]


def serial_rate(lines: int = 50_000) -> float:
    """The serial path's CPU rate in-process: concentrator lines framed, checksummed,
    decoded, validated and encoded (the port itself is not the limit at 115200 baud)."""
    from collections import Counter

    from devices import Registry
    from ingest.observability.counters import Stats
    from ingest.pipeline import Pipeline
    from ingest.serial.lines import LineFramer, frame

    registry = Registry.load()
    pipeline = Pipeline(registry, Stats())
    framer = LineFramer(Counter())
    now = int(time.time() * 1000)
    data = b"".join(
        frame({"device": "em-main", "ts": now + i, "power_w": 100.5 + i % 50, "energy_kwh": 5.0})
        for i in range(lines)
    )
    t0 = time.perf_counter()
    done = 0
    for chunk in range(0, len(data), 4096):
        for device, payload in framer.feed(data[chunk : chunk + 4096]):
            pipeline.handle(f"kera/kera/{device}/telemetry", payload, now)
            done += 1
    assert done == lines
    return lines / (time.perf_counter() - t0)


def soak(
    broker: Mosquitto,
    db: InfluxDB,
    site: Path,
    workdir: Path,
    seconds: float,
    rate: float,
    devices: int,
) -> list[tuple[float, float]]:
    """(elapsed s, RSS MiB) every 10 s while `rate` readings/s flow for `seconds`."""
    exe = str(Path(sys.executable).with_name("kera-ingest"))
    env = ingest_env(broker, db, site, workdir, "soak")
    env["KERA_INFLUX_DB"] = "soak"
    log = (workdir / "soak.log").open("w")
    proc = subprocess.Popen([exe, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    samples: list[tuple[float, float]] = []
    try:
        time.sleep(2.0)
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="soak-pub")
        pub.max_inflight_messages_set(1000)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        t0 = time.perf_counter()
        i = 0
        next_sample = 0.0
        while (elapsed := time.perf_counter() - t0) < seconds:
            for _ in range(int(rate / 10)):
                ts = int(time.time() * 1000)
                body = f'{{"ts":{ts},"power_w":{i % 5000}.5,"energy_kwh":{i / 1000:.3f}}}'
                pub.publish(f"kera/{SITE}/em-{i % devices:05d}/telemetry", body.encode(), qos=1)
                i += 1
            if elapsed >= next_sample:
                samples.append((round(elapsed), ps.memory_info().rss / 2**20))
                console.print(
                    f"soak {elapsed:5.0f} s: RSS {samples[-1][1]:.1f} MiB", highlight=False
                )
                next_sample += 10
            time.sleep(max(0.0, t0 + (i / rate) - time.perf_counter()))
        pub.disconnect()
        pub.loop_stop()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--latency-s", type=float, default=20.0, help="per latency rate")
    ap.add_argument("--soak-s", type=float, default=600.0, help="0 skips the soak")
    ap.add_argument("--soak-rate", type=float, default=2000.0)
    ap.add_argument("--live-messages", type=int, default=50_000, help="0 skips the live method")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    report: dict[str, Any] = {
        "messages": args.messages,
        "devices": args.devices,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
    }

    with tempfile.TemporaryDirectory(prefix="kera-bench-") as tmp:
        work = Path(tmp)
        site = work / "site.yaml"
        write_site(site, args.devices)
        broker = Mosquitto(work / "mosquitto").start()
        db = InfluxDB(work / "influxdb").start()
        try:
            base = int(time.time() * 1000) - 86_400_000
            console.print(f"[bold]ceilings[/bold]: {args.messages} readings for a bare paho")
            create_session(broker, "bench-bare")
            report["publisher_msg_per_s"] = round(
                publish(broker, args.messages, args.devices, base)
            )
            bare = bare_ceiling(broker, args.messages)
            report["bare_paho_qos1_msg_per_s"] = round(bare)
            influx = influx_ceiling(db)
            report["influxdb_points_per_s_5000_batches"] = round(influx)
            console.print(f"bare paho {bare:,.0f} msg/s; InfluxDB {influx:,.0f} points/s")

            console.print("[bold]one ingestor process[/bold]")
            create_session(broker, "bench-one")
            publish(broker, args.messages, args.devices, base)
            one, rss, cpu_us = ingestor_rate(broker, db, site, args.messages, work, ["bench-one"])
            report["one_process_per_s"] = round(one)
            report["one_process_ratio_to_bare"] = round(one / bare, 3)
            report["one_process_peak_rss_mib"] = round(rss, 1)
            report["cpu_us_per_reading"] = round(cpu_us, 1)
            console.print(f"one process: {one:,.0f} readings/s ({one / bare:.2f} of bare)")

            console.print("[bold]two processes, shared subscription[/bold]")
            for name in ("bench-two-a", "bench-two-b"):
                create_session(broker, name, "bench")
            publish(broker, args.messages, args.devices, base + 3_600_000)
            two, _, _ = ingestor_rate(
                broker, db, site, args.messages, work, ["bench-two-a", "bench-two-b"], "bench"
            )
            report["two_processes_per_s"] = round(two)
            report["two_over_one"] = round(two / one, 2)
            console.print(f"two processes: {two:,.0f} readings/s ({two / one:.2f}x one)")

            for rate in (1000, 5000):
                p50, p99 = latency(broker, db, site, work, rate, args.latency_s, args.devices)
                report[f"latency_s_at_{rate}_per_s"] = {"p50": round(p50, 3), "p99": round(p99, 3)}
                console.print(f"latency at {rate}/s: p50 {p50:.3f} s, p99 {p99:.3f} s")

            report["serial_lines_per_s"] = round(serial_rate())
            if args.live_messages > 0:
                console.print("[bold]live publish[/bold]: bare, default, alerts off")
                report["live"] = live(work, args.live_messages, rounds=2)
            if args.soak_s > 0:
                samples = soak(broker, db, site, work, args.soak_s, args.soak_rate, args.devices)
                steady = [r for t, r in samples if t >= 60] or [r for _, r in samples]
                report["soak"] = {
                    "seconds": args.soak_s,
                    "rate_per_s": args.soak_rate,
                    "rss_mib_first_minute_end": round(steady[0], 1),
                    "rss_mib_max": round(max(steady), 1),
                    "rss_mib_last": round(steady[-1], 1),
                    "samples": samples,
                }
        finally:
            broker.stop()
            db.stop()

    table = Table(title="Kera ingestor benchmarks")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in report.items():
        if k == "live":
            for name in (*BARE, *INGESTORS):
                figures = {kk: vv for kk, vv in v[name].items() if kk != "all_rounds"}
                table.add_row(f"live {name}", str(figures))
            continue
        shown = {kk: vv for kk, vv in v.items() if kk != "samples"} if k == "soak" else v
        table.add_row(k, f"{shown:,}" if isinstance(shown, int) else str(shown))
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
