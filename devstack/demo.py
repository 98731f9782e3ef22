"""`kera-demo`: the whole pipeline on one machine with embedded defaults.

Starts a local Mosquitto and InfluxDB (data in demo/ of the state directory, ingest.settings.
state_dir), the ingestor and the simulator, shows live progress, and ends with the points written
per measurement.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from devices import KINDS, Registry, terminal
from devices.contract import DEVICE_STATUS_MEASUREMENT
from devices.environment import env
from devstack.services import InfluxDB, Mosquitto, free_port, missing_binaries
from firmware_sim.links import Links
from firmware_sim.runner import Summary
from firmware_sim.runner import run as run_sim
from ingest.evaluation.rollups import ROLLUP_MEASUREMENTS
from ingest.mqtt import parse_mqtt_url
from ingest.service import Ingestor
from ingest.settings import IngestSettings, state_dir
from ingest.storage.query import influxql

console = terminal.console()
app = typer.Typer(add_completion=False, help=__doc__)


def ensure_packages() -> None:
    missing = missing_binaries()
    if not missing:
        return
    if os.geteuid() != 0:
        console.print(
            "[red]The demo needs Mosquitto and InfluxDB from Debian.[/red] Install them with:\n"
            f"    sudo apt-get update && sudo apt-get install -y {' '.join(missing)}"
        )
        raise typer.Exit(1)
    console.print(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
    )


# A field every simulated point of a measurement has (the kind's first), to count points.
COUNT_FIELD = {spec.measurement: next(iter(spec.fields)) for spec in KINDS.values()}
COUNT_FIELD[DEVICE_STATUS_MEASUREMENT] = "online"


async def points_per_measurement(url: str, database: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for measurement, field in COUNT_FIELD.items():
        series = await influxql(url, f'SELECT count("{field}") FROM "{measurement}"', database)
        counts[measurement] = int(series[0]["values"][0][1]) if series else 0
    return counts


async def rollup_points(url: str, database: str) -> dict[str, int]:
    """Points per impact rollup measurement (their fields vary by space, so the most-counted)."""
    counts: dict[str, int] = {}
    for measurement in ROLLUP_MEASUREMENTS:
        series = await influxql(url, f'SELECT count(*) FROM "{measurement}"', database)
        counts[measurement] = max(series[0]["values"][0][1:]) if series else 0
    return counts


def _view(ingestor: Ingestor, sim: Summary, counts: dict[str, int], left: float) -> Group:
    s = ingestor.stats
    top = Table.grid(padding=(0, 2))
    top.add_row(
        f"[bold]simulator[/bold] {sim.published} readings from {sim.devices} devices",
        f"[bold]ingestor[/bold] {s.messages} messages, {s.accepted} accepted, "
        f"{sum(s.rejected.values())} rejected, {s.points_written} points written",
        f"{left:4.0f} s left",
    )
    table = Table(title="InfluxDB points", min_width=40)
    table.add_column("measurement")
    table.add_column("points", justify="right")
    for m, n in counts.items():
        table.add_row(m, str(n))
    return Group(top, table)


async def _demo(
    data: Path, duration: float, speed: float, seed: int
) -> tuple[dict[str, int], dict[str, int]]:
    registry = Registry.load(env("KERA_SITE_CONFIG"))
    broker = Mosquitto(data / "mosquitto").start()
    db = InfluxDB(data / "influxdb").start()
    console.print(f"Mosquitto on {broker.url}, InfluxDB on {db.url} (data in {data})")
    try:
        settings = IngestSettings(
            mqtt_url=broker.url,
            influx_url=db.url,
            influx_db="kera",
            mqtt_client_id="kera-demo-ingest",
            stats_interval_s=3600,
            spool_dir=data / "spool",
            dev_mode=True,  # the demo's broker is local and anonymous
            health_port=free_port(),
        )
        ingestor = Ingestor(settings, registry)
        stop = asyncio.Event()
        ingest_task = await ingestor.start(stop)
        console.print(
            f"Ingestor health on http://127.0.0.1:{settings.health_port}/healthz and /metrics"
        )

        summary = Summary(devices=len(registry))
        start_ms = time.time_ns() // 1_000_000 - round(duration * speed * 1000)

        def simulate() -> None:
            links = Links(parse_mqtt_url(broker.url), registry.site_id, "kera-demo-sim")
            result = run_sim(
                registry,
                links,
                seed=seed,
                start_ms=start_ms,
                duration_s=duration,
                speed=speed,
                on_progress=lambda s: setattr(summary, "published", s.published),
            )
            summary.published = result.published

        sim_thread = threading.Thread(target=simulate, name="simulator", daemon=True)
        sim_thread.start()
        t0 = time.monotonic()
        counts = await points_per_measurement(db.url, "kera")
        with Live(
            _view(ingestor, summary, counts, duration), console=console, transient=True
        ) as live:
            while sim_thread.is_alive():
                await asyncio.sleep(0.5)
                counts = await points_per_measurement(db.url, "kera")
                left = max(0.0, duration - (time.monotonic() - t0))
                live.update(_view(ingestor, summary, counts, left))
            # Let the last partial batch reach InfluxDB before the final count.
            stop.set()
            await ingest_task
            counts = await points_per_measurement(db.url, "kera")
            live.update(_view(ingestor, summary, counts, 0))
        return counts, await rollup_points(db.url, "kera")
    finally:
        broker.stop()
        db.stop()


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="Wall-clock seconds to run")] = 30.0,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second")] = 120.0,
    seed: Annotated[int, typer.Option(help="Simulator seed")] = 1,
    data: Annotated[
        Path | None, typer.Option(help="Data folder; default: demo/ in the state directory")
    ] = None,
    fresh: Annotated[bool, typer.Option(help="Delete earlier demo data first")] = False,
) -> None:
    """Run broker, database, ingestor and simulator together, then print what landed."""
    ensure_packages()
    if data is None:
        data = state_dir() / "demo"
    if fresh and data.exists():
        shutil.rmtree(data)
    counts, rollups = asyncio.run(_demo(data.resolve(), duration, speed, seed))
    table = Table(title="Points written per measurement")
    table.add_column("measurement")
    table.add_column("points", justify="right")
    for m, n in counts.items():
        table.add_row(m, str(n))
    table.add_section()
    for m, n in rollups.items():  # docs/impact.md
        table.add_row(m, str(n))
    console.print(table)
    if not all(counts.values()):
        console.print("[red]some measurements received no points[/red]")
        sys.exit(1)


def main() -> None:
    app()
