"""`kera-sim`: a simulated Kera fleet, and a field technician's commissioning helpers."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Group
from rich.live import Live
from rich.table import Table

from devices import Registry, terminal
from devices.contract import telemetry_topic
from firmware_sim.faults import Faults
from firmware_sim.formats import Format
from firmware_sim.links import Links
from firmware_sim.pilots import PilotSpecError, parse_pilot
from firmware_sim.runner import Summary, run

if TYPE_CHECKING:
    pass
from firmware_sim._cli_common import (
    BusyWeeksOpt,
    Config,
    MqttUrl,
    PilotOpt,
    backfill_start,
    console,
    load_registry,
    mqtt_target,
    parse_start,
    unreachable,
)
from firmware_sim.serial_cli import serial_app
from ingest.mqtt import MqttTarget

app = typer.Typer(add_completion=False, help="Kera device simulator and commissioning helpers.")
app.add_typer(serial_app, name="serial")


# -- run and backfill ---------------------------------------------------------------------------


def _view(s: Summary, rates: dict[str, float], clock: str) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]sim time[/bold] {clock}",
        f"[bold]devices online[/bold] {s.online}/{s.devices}",
        f"[bold]published[/bold] {s.published}",
    )
    kinds = Table(title="readings by kind", min_width=36)
    kinds.add_column("kind")
    kinds.add_column("total", justify="right")
    kinds.add_column("per s", justify="right")
    for kind, n in sorted(s.by_kind.items()):
        kinds.add_row(kind, str(n), f"{rates.get(kind, 0.0):.0f}")
    parts: list[Any] = [head, kinds]
    if s.faults or s.status.get("will"):
        faults = Table(title="faults injected", min_width=36)
        faults.add_column("fault")
        faults.add_column("count", justify="right")
        for name, n in sorted(s.faults.items()):
            faults.add_row(name, str(n))
        parts.append(faults)
    return Group(*parts)


def _simulate(
    registry: Registry,
    target: MqttTarget,
    *,
    seed: int,
    start_ms: int,
    duration_s: float,
    speed: float,
    faults: Faults,
    fmt: Format,
    record: Path | None,
    quiet: bool,
    pilots: list[str] | None = None,
    busy_weeks: float = 0.0,
) -> Summary:
    try:
        injected = [parse_pilot(spec, registry.site) for spec in pilots or ()]
    except PilotSpecError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    links = Links(target, registry.site_id, client_prefix=f"kera-sim-{os.getpid()}")
    rec = record.open("w", encoding="utf-8") if record is not None else None
    last: dict[str, Any] = {"t": time.monotonic(), "by_kind": Counter()}
    rates: dict[str, float] = {}
    t0 = time.monotonic()
    live = Live(console=console, transient=True, refresh_per_second=4)

    def on_progress(s: Summary) -> None:
        now = time.monotonic()
        dt = now - last["t"]
        if dt >= 1.0:
            for kind, n in s.by_kind.items():
                rates[kind] = (n - last["by_kind"][kind]) / dt
            last["t"], last["by_kind"] = now, Counter(s.by_kind)
        sim_ms = s.sim_start_ms + (now - t0) * speed * 1000 if speed > 0 else s.sim_end_ms
        clock = datetime.fromtimestamp(min(sim_ms, s.sim_end_ms) / 1000, UTC).strftime(
            "%Y-%m-%d %H:%M UTC"
        )
        if not quiet:
            live.update(_view(s, rates, clock))

    try:
        if not quiet:
            live.start()
        return run(
            registry,
            links,
            seed=seed,
            start_ms=start_ms,
            duration_s=duration_s,
            speed=speed,
            faults=faults,
            fmt=fmt,
            record=rec,
            on_progress=on_progress,
            pilots=injected,
            busy_weeks=busy_weeks,
        )
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        if not quiet:
            live.stop()
        if rec is not None:
            rec.close()


def _report(summary: Summary, json_out: bool) -> None:
    if json_out:
        print(json.dumps(summary.as_dict()))
        return
    table = Table(title=f"kera-sim: {summary.published} readings from {summary.devices} devices")
    table.add_column("")
    table.add_column("count", justify="right")
    for kind, n in sorted(summary.by_kind.items()):
        table.add_row(kind, str(n))
    for name, n in sorted(summary.faults.items()):
        table.add_row(f"[yellow]fault: {name}[/yellow]", str(n))
    for name, n in sorted(summary.status.items()):
        table.add_row(f"status: {name}", str(n))
    for name, n in sorted(summary.network.items()):
        if n:
            table.add_row(f"network: {name}", str(n))
    terminal.console().print(table)


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
    scale: Annotated[int, typer.Option(min=1, help="Repeat every device N times")] = 1,
    fmt: Annotated[Format, typer.Option("--format", help="What devices publish")] = Format.NATIVE,
    mqtt_url: MqttUrl = None,
    config: Config = None,
    record: Annotated[
        Path | None, typer.Option(help="Also write every published message to this JSONL file")
    ] = None,
    drop: Annotated[float, typer.Option(help="Fault: share of readings lost")] = 0.0,
    outage: Annotated[
        float, typer.Option(help="Fault: per reading, chance the device drops off (last will)")
    ] = 0.0,
    outage_s: Annotated[float, typer.Option(help="Mean outage, simulated seconds")] = 900.0,
    stuck: Annotated[float, typer.Option(help="Fault: per reading, chance a sensor freezes")] = 0.0,
    spike: Annotated[float, typer.Option(help="Fault: share with an impossible value")] = 0.0,
    outlier: Annotated[float, typer.Option(help="Fault: share with a plausible x3 value")] = 0.0,
    malformed: Annotated[
        float, typer.Option(help="Fault: share with broken JSON, wrong type or missing field")
    ] = 0.0,
    clock_skew: Annotated[
        float, typer.Option(help="Fault: skewed clocks are this many s off")
    ] = 0.0,
    skewed_share: Annotated[float, typer.Option(help="Share of devices with a skewed clock")] = 0.0,
    battery_drain: Annotated[
        bool, typer.Option(help="Fault: batteries drain in days; empty devices go silent")
    ] = False,
    duplicate: Annotated[float, typer.Option(help="Fault: share delivered twice")] = 0.0,
    faulty: Annotated[
        list[str] | None, typer.Option(help="Faults only for this device (repeatable)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary")] = False,
    quiet: Annotated[bool, typer.Option(help="No live view")] = False,
    pilot: PilotOpt = None,
    busy_weeks: BusyWeeksOpt = 0.0,
) -> None:
    """Publish plausible readings for every device of the site, optionally with faults."""
    faults = Faults(
        drop=drop,
        outage=outage,
        outage_s=outage_s,
        stuck=stuck,
        spike=spike,
        outlier=outlier,
        malformed=malformed,
        clock_skew_s=clock_skew,
        skewed_share=skewed_share,
        battery_drain=battery_drain,
        duplicate=duplicate,
        only=frozenset(faulty or ()),
    )
    summary = _simulate(
        load_registry(config, scale),
        mqtt_target(mqtt_url),
        seed=seed,
        start_ms=parse_start(start),
        duration_s=duration,
        speed=speed,
        faults=faults,
        fmt=fmt,
        record=record,
        quiet=quiet,
        pilots=pilot,
        busy_weeks=busy_weeks,
    )
    _report(summary, json_out)


@app.command()
def backfill(
    days: Annotated[
        float, typer.Option(min=0.001, help="Days of history: ending now, or from --start")
    ] = 7.0,
    start: Annotated[
        str | None,
        typer.Option(
            help="First day of the history (2026-03-02: midnight in the site's time zone; an "
            "ISO date-time with offset; or -90d): a season of its own, for a pilot's study"
        ),
    ] = None,
    seed: Annotated[int, typer.Option()] = 1,
    scale: Annotated[int, typer.Option(min=1)] = 1,
    mqtt_url: MqttUrl = None,
    config: Config = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
    quiet: Annotated[bool, typer.Option()] = False,
    pilot: PilotOpt = None,
    busy_weeks: BusyWeeksOpt = 0.0,
) -> None:
    """Publish `days` of history as fast as the broker and the ingestor take it.

    The ingestor refuses readings older than KERA_MAX_AGE_S (30 days by default): a history
    that reaches further back is refused here first, naming the value the ingestor (and this
    command, which reads the same variable) needs."""
    registry = load_registry(config, scale)
    span_s = days * 86400
    now_ms = time.time_ns() // 1_000_000
    start_ms = backfill_start(start, registry.site.timezone, now_ms, span_s)
    summary = _simulate(
        registry,
        mqtt_target(mqtt_url),
        seed=seed,
        start_ms=start_ms,
        duration_s=span_s,
        speed=0,
        faults=Faults(),
        fmt=Format.NATIVE,
        record=None,
        quiet=quiet,
        pilots=pilot,
        busy_weeks=busy_weeks,
    )
    _report(summary, json_out)


# -- commissioning ------------------------------------------------------------------------------


@app.command()
def send(
    device: Annotated[str, typer.Argument(help="Device id from the site file")],
    values: Annotated[list[str], typer.Argument(help="field=value ...")],
    ts: Annotated[str | None, typer.Option(help="Reading time: now (default), ISO, or -5m")] = None,
    mqtt_url: MqttUrl = None,
    config: Config = None,
) -> None:
    """Publish one reading as DEVICE: does a new sensor's data arrive?"""
    from firmware_sim.commission import parse_assignment
    from firmware_sim.commission import send as send_one
    from ingest.judge import Judge

    registry = load_registry(config)
    try:
        fields = dict(parse_assignment(v) for v in values)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    time_ms = parse_start(ts)
    body = {"ts": time_ms, **fields}
    topic, payload = telemetry_topic(registry.site_id, device), json.dumps(body).encode()
    # The verdict is this command's output; the ingestor's own rejection log would repeat it.
    logging.getLogger("ingest.rejected").disabled = True
    verdict = Judge(registry).judge(topic, payload, time.time_ns() // 1_000_000)
    target = mqtt_target(mqtt_url)
    try:
        topic, payload = send_one(target, registry.site_id, device, body)
    except (OSError, TimeoutError) as exc:
        unreachable(target, exc)
    console.print(f"published [bold]{topic}[/bold] {payload.decode()}")
    rejected = verdict.rejected
    if rejected is None:
        console.print("[green]the ingestor will accept it:[/green]")
        for line in verdict.lines:
            console.print(f"  {line}", markup=False, highlight=False)
    else:
        console.print(
            f"[red]the ingestor will reject it: {rejected.reason.value}[/red]: {rejected.detail}"
        )
        raise typer.Exit(1)


@app.command()
def watch(
    device: Annotated[str | None, typer.Argument(help="Only this device")] = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many messages")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds")] = None,
    mqtt_url: MqttUrl = None,
    config: Config = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per message")] = False,
) -> None:
    """Show what arrives on the site's topics, with the ingestor's verdict for each message."""
    from firmware_sim.commission import Seen
    from firmware_sim.commission import watch as watch_topics

    out = terminal.console()

    def show(seen: Seen) -> None:
        ok = seen.rejected is None
        if json_out:
            item: dict[str, Any] = {
                "topic": seen.topic,
                "payload": seen.payload.decode("utf-8", "replace"),
                "accepted": ok,
            }
            if seen.rejected is not None:
                item["reason"] = seen.rejected.reason.value
                item["detail"] = seen.rejected.detail
            else:
                item["lines"] = seen.lines
            if seen.ignored:
                item["ignored"] = list(seen.ignored)
            print(json.dumps(item), flush=True)
            return
        at = datetime.fromtimestamp(seen.received_ms / 1000, UTC).strftime("%H:%M:%S")
        text = seen.payload.decode("utf-8", "replace")[:200]
        ignored = (
            f"\n    [yellow]ignored (not mapped)[/yellow]: {', '.join(seen.ignored)}"
            if seen.ignored
            else ""
        )
        if ok:
            out.print(
                f"[green]✓[/green] {at} [bold]{seen.topic}[/bold] {text}{ignored}",
                highlight=False,
            )
        else:
            assert seen.rejected is not None
            out.print(
                f"[red]✗[/red] {at} [bold]{seen.topic}[/bold] {text}\n"
                f"    [red]{seen.rejected.reason.value}[/red]: {seen.rejected.detail}{ignored}",
                highlight=False,
            )

    logging.getLogger("ingest.rejected").disabled = True  # each verdict is shown above
    target = mqtt_target(mqtt_url)
    try:
        watch_topics(target, load_registry(config), show, device, count, timeout)
    except (OSError, TimeoutError) as exc:
        unreachable(target, exc)


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="JSON Lines (--record output) or CSV")],
    speed: Annotated[float, typer.Option(help="x recorded pace; 0 = as fast as possible")] = 1.0,
    restamp: Annotated[
        bool, typer.Option(help="Move the readings so the first one is now")
    ] = False,
    mqtt_url: MqttUrl = None,
    config: Config = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Publish recorded readings again, at their recorded pace or faster."""
    from firmware_sim.commission import read_recording
    from firmware_sim.commission import replay as replay_records

    registry = load_registry(config)
    try:
        records = list(read_recording(file, registry.site_id))
    except (OSError, ValueError, KeyError) as exc:
        console.print(f"[red]cannot read {file}: {exc}[/red]")
        raise typer.Exit(2) from None
    first = next((r.time_ms for r in records if r.time_ms is not None), None)
    shift = time.time_ns() // 1_000_000 - first if restamp and first is not None else 0
    sent = replay_records(mqtt_target(mqtt_url), records, speed, shift)
    if json_out:
        print(json.dumps({"sent": sent}))
    else:
        console.print(f"replayed {sent} messages from {file}")


@app.command()
def site(
    scale: Annotated[int, typer.Option(min=1, help="Repeat every device N times")] = 1,
    config: Config = None,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
) -> None:
    """The site file as the simulator sees it; with --scale, the file to give the ingestor."""
    registry = load_registry(config, scale)
    text = yaml.safe_dump(
        registry.site.model_dump(mode="json", exclude_defaults=True), sort_keys=False
    )
    if out is None:
        print(text, end="")
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"{len(registry)} devices written to {out}")


def main() -> None:
    app()
