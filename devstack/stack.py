"""`kera-stack up`: a local Mosquitto and InfluxDB that stay up, for trying every command.

The demo starts and stops its own servers; this keeps them running in the foreground with a
live status view until Ctrl-C, with their data in `stack/` of the state directory
(ingest.settings.state_dir), so readings survive a restart of the stack. It takes the default
ports (1883, 8086) when they are free, so the commands' defaults reach it; otherwise it takes
free ports and prints the `export` lines to use. `--ingest` and `--sim` also run the ingestor and
a real-time simulator of the site inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from devices import Registry, terminal
from devstack.demo import ensure_packages, points_per_measurement
from devstack.services import InfluxDB, Mosquitto, ServiceError, free_port

console = terminal.console()
app = typer.Typer(add_completion=False, help=__doc__)

MQTT_PORT = 1883
INFLUX_PORT = 8086
DATABASE = "kera"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick(port: int) -> int:
    return port if _port_free(port) else free_port()


@dataclass
class StackState:
    """What the status view shows."""

    broker: Mosquitto
    db: InfluxDB
    started: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=dict)
    ingest: Any = None  # the in-process Ingestor with --ingest
    sim_published: int = 0

    def exports(self, with_ingest: bool) -> list[str]:
        lines = [
            f"export KERA_MQTT_URL={self.broker.url}",
            f"export KERA_INFLUX_URL={self.db.url}",
            # The local broker is anonymous; the ingestor refuses that outside dev mode.
            "export KERA_DEV_MODE=true",
        ]
        if with_ingest:
            lines.append("# an ingestor already runs inside the stack: no `kera-ingest run` needed")
        return lines


def _view(state: StackState) -> Group:
    up = Table.grid(padding=(0, 2))
    for name, child, url in (
        ("Mosquitto", state.broker, state.broker.url),
        ("InfluxDB", state.db, state.db.url),
    ):
        alive = child.proc is not None and child.proc.poll() is None
        up.add_row(f"[bold]{name}[/bold]", url, "[green]up[/green]" if alive else "[red]down[/red]")
    if state.ingest is not None:
        s = state.ingest.stats
        up.add_row(
            "[bold]ingestor[/bold]",
            f"{s.messages} messages, {s.accepted} accepted, {sum(s.rejected.values())} rejected",
            f"{s.points_written} points written",
        )
    if state.sim_published:
        up.add_row("[bold]simulator[/bold]", f"{state.sim_published} readings published", "")
    table = Table(title=f"database {DATABASE}: points per measurement")
    table.add_column("measurement")
    table.add_column("points", justify="right")
    for m, n in state.counts.items():
        table.add_row(m, str(n))
    elapsed = time.monotonic() - state.started
    return Group(up, table, f"up {elapsed:.0f} s; Ctrl-C stops the stack (data is kept)")


async def _serve(
    state: StackState, ingest: bool, sim: bool, seconds: float | None, stop: asyncio.Event
) -> None:
    from ingest.service import Ingestor
    from ingest.settings import IngestSettings, state_dir
    from ingest.storage.query import influxql

    await influxql(state.db.url, f'CREATE DATABASE "{DATABASE}"')
    registry = Registry.load()
    ingest_task = None
    if ingest:
        settings = IngestSettings(
            mqtt_url=state.broker.url,
            influx_url=state.db.url,
            influx_db=DATABASE,
            mqtt_client_id="kera-stack-ingest",
            spool_dir=state_dir() / "stack" / "spool",
            dev_mode=True,  # the stack's broker is local and anonymous
            health_port=free_port(),
        )
        state.ingest = Ingestor(settings, registry)
        ingest_task = await state.ingest.start(stop)
    if sim:
        # Real time for as long as the stack runs (a week at most); a daemon, so Ctrl-C ends it.
        threading.Thread(
            target=_simulate, args=(state, registry, seconds or 7 * 86400.0), name="simulator",
            daemon=True,
        ).start()  # fmt: skip
    deadline = None if seconds is None else time.monotonic() + seconds
    with Live(_view(state), console=console) as live:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            with contextlib.suppress(Exception):  # a status view must not end the stack
                state.counts = await points_per_measurement(state.db.url, DATABASE)
            live.update(_view(state))
    stop.set()
    if ingest_task is not None:
        await ingest_task


def _simulate(state: StackState, registry: Registry, seconds: float) -> None:
    from firmware_sim.links import Links
    from firmware_sim.runner import run as run_sim
    from ingest.mqtt import parse_mqtt_url

    links = Links(parse_mqtt_url(state.broker.url), registry.site_id, "kera-stack-sim")
    run_sim(
        registry, links, seed=1, start_ms=time.time_ns() // 1_000_000, duration_s=seconds,
        speed=1.0, on_progress=lambda s: setattr(state, "sim_published", s.published),
    )  # fmt: skip


@app.callback()
def _commands() -> None:
    """A local Mosquitto and InfluxDB for trying every command (docs: README, "Try it")."""


@app.command()
def up(
    ingest: Annotated[bool, typer.Option(help="Also run the ingestor inside the stack")] = False,
    sim: Annotated[
        bool, typer.Option(help="Also run the simulator in real time (every site device)")
    ] = False,
    data: Annotated[
        Path | None, typer.Option(help="Data folder; default: stack/ in the state directory")
    ] = None,
    mqtt_port: Annotated[int, typer.Option(help="Broker port, if free")] = MQTT_PORT,
    influx_port: Annotated[int, typer.Option(help="InfluxDB port, if free")] = INFLUX_PORT,
    seconds: Annotated[
        float | None, typer.Option("--for", help="Stop by itself after this many seconds")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the addresses as one JSON line first")
    ] = False,
) -> None:
    """Start Mosquitto and InfluxDB (and optionally the ingestor and simulator) and keep them
    running with a live status view until Ctrl-C."""
    from ingest.settings import state_dir

    ensure_packages()
    folder = data or state_dir() / "stack"
    broker = Mosquitto(folder / "mosquitto", port=_pick(mqtt_port))
    db = InfluxDB(folder / "influxdb", port=_pick(influx_port))
    try:
        broker.start()
        db.start()
    except ServiceError as exc:
        broker.stop()
        db.stop()
        console.print(f"[red]could not start the stack: {exc}[/red]")
        raise typer.Exit(2) from None
    state = StackState(broker, db)
    exports = state.exports(ingest)
    if json_out:
        print(
            json.dumps({"mqtt_url": broker.url, "influx_url": db.url, "database": DATABASE,
                        "data": str(folder), "exports": exports}),
            flush=True,
        )  # fmt: skip
    defaults = broker.port == MQTT_PORT and db.port == INFLUX_PORT
    console.print(
        f"Mosquitto on {broker.url}, InfluxDB on {db.url} (database {DATABASE}); data in {folder}"
    )
    console.print(
        "The commands' defaults reach it. In another terminal:"
        if defaults
        else "A default port was taken. In another terminal:"
    )
    for line in exports:
        console.print(f"  {line}", markup=False, highlight=False)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await _serve(state, ingest, sim, seconds, stop)

    try:
        asyncio.run(main())
    finally:
        broker.stop()
        db.stop()
    console.print(f"\nstack stopped; its data stays in {folder}")


def main() -> None:
    app()
