"""`kera-sim`: a simulated Kera fleet publishing native readings over MQTT."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from devices import Registry, SiteConfigError
from firmware_sim.runner import Publisher, Summary, run

app = typer.Typer(add_completion=False, help="Kera device simulator.")
console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Kera device simulator: a fleet from the site file, publishing over MQTT."""


def parse_start(text: str | None) -> int:
    """`now`, an ISO date-time (with offset), or a negative offset like -6h / -2d / -30m."""
    now_ms = time.time_ns() // 1_000_000
    if text is None or text == "now":
        return now_ms
    if text.startswith("-") and text[-1] in "smhd" and text[1:-1].isdigit():
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]
        return now_ms - int(text[1:-1]) * unit * 1000
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise typer.BadParameter("--start needs a UTC offset, e.g. 2026-11-02T08:00:00+02:00")
    return round(dt.timestamp() * 1000)


@app.command("run")
def run_cmd(
    duration: Annotated[
        float, typer.Option(help="Wall-clock seconds to run (simulated seconds with --speed 0)")
    ] = 60.0,
    seed: Annotated[int, typer.Option(help="Same seed, start and site: same readings")] = 1,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per real second; 0 = as fast as possible")
    ] = 1.0,
    start: Annotated[
        str | None, typer.Option(help="Simulated start: now, ISO date-time, or -6h/-2d")
    ] = None,
    mqtt_url: Annotated[str | None, typer.Option(help="KERA_MQTT_URL")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="KERA_SITE_CONFIG")] = None,
    record: Annotated[
        Path | None, typer.Option(help="Also write every published message to this JSONL file")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary")] = False,
    quiet: Annotated[bool, typer.Option(help="No live progress")] = False,
) -> None:
    """Publish plausible readings for every device of the site."""
    url = mqtt_url or os.environ.get("KERA_MQTT_URL", "mqtt://127.0.0.1:1883")
    site_path = config or (Path(p) if (p := os.environ.get("KERA_SITE_CONFIG")) else None)
    try:
        registry = Registry.load(site_path)
    except SiteConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    start_ms = parse_start(start)
    try:
        publisher = Publisher(url, client_id=f"kera-sim-{os.getpid()}")
    except OSError as exc:
        console.print(f"[red]cannot connect to the broker {url.split('@')[-1]}: {exc}[/red]")
        raise typer.Exit(1) from None
    rec = record.open("w", encoding="utf-8") if record is not None else None
    progress = Progress(
        TextColumn("[bold]sim[/bold] {task.fields[clock]}"),
        BarColumn(),
        TextColumn("{task.fields[published]} readings"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    )
    total = duration if speed > 0 else 1.0
    task = progress.add_task("sim", total=total, clock="", published=0)
    t0 = time.monotonic()

    def on_progress(s: Summary) -> None:
        clock = datetime.fromtimestamp(
            (s.sim_start_ms + (time.monotonic() - t0) * max(speed, 0) * 1000) / 1000
        ).strftime("%Y-%m-%d %H:%M")
        progress.update(
            task, completed=min(total, time.monotonic() - t0), clock=clock, published=s.published
        )

    try:
        with progress:
            summary = run(
                registry,
                publisher.publish,
                seed=seed,
                start_ms=start_ms,
                duration_s=duration,
                speed=speed,
                record=rec,
                on_progress=on_progress,
            )
    finally:
        publisher.close()
        if rec is not None:
            rec.close()
    if json_out:
        print(json.dumps(summary.as_dict()))
    else:
        table = Table(
            title=f"kera-sim: {summary.published} readings from {summary.devices} devices"
        )
        table.add_column("kind")
        table.add_column("readings", justify="right")
        for kind, n in sorted(summary.by_kind.items()):
            table.add_row(kind, str(n))
        Console().print(table)


def main() -> None:
    app()
