"""What the `kera-sim` commands share (firmware_sim.cli, firmware_sim.serial_cli): the console,
the options every command takes, and how a site, a broker address and a start time are read."""

from __future__ import annotations

import time
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer

from devices import Registry, SiteConfigError, terminal
from devices.environment import env
from firmware_sim.fleet import scale_site

if TYPE_CHECKING:
    pass
from ingest.mqtt import MqttTarget, parse_mqtt_url
from ingest.settings import IngestSettings

console = terminal.console(stderr=True)

MqttUrl = Annotated[str | None, typer.Option(help="Broker (KERA_MQTT_URL)")]
Config = Annotated[Path | None, typer.Option("--config", help="Site file (KERA_SITE_CONFIG)")]
PilotOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="Inject a known pilot effect, ID:METRIC=CHANGE, for example "
        "cafe-heat-control:heat_kwh=-12% (repeatable; docs/pilots.md)"
    ),
]
BusyWeeksOpt = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Make some weeks busier than others (busy weeks, quiet ones, school holidays): the "
        "standard deviation of each week's log factor on how busy the house is, e.g. 0.2; 0: "
        "every week alike (docs/simulator.md)",
    ),
]


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


def max_age_s() -> float:
    """The ingestor's age limit as this environment sets it (KERA_MAX_AGE_S, else the
    ingestor's default), so that a backfill says what the ingestor will refuse before
    publishing it."""
    text = env("KERA_MAX_AGE_S")
    try:
        return float(text) if text else float(IngestSettings.model_fields["max_age_s"].default)
    except ValueError:
        raise typer.BadParameter(f"KERA_MAX_AGE_S={text!r} is not a number of seconds") from None


def backfill_start(text: str | None, timezone: str, now_ms: int, span_s: float) -> int:
    """Where a backfill of `span_s` starts: ending now without `text`; else at `text` (a date
    is its midnight in the site's zone). Refused (with how to fix it) when it would reach into
    the future or further back than the ingestor's age limit."""
    span_ms = round(span_s * 1000)
    if text is None:
        start_ms = now_ms - span_ms
    elif len(text) == 10 and text[4] == "-":
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise typer.BadParameter(f"--start {text!r}: {exc}") from None
        start_ms = round(datetime.combine(day, dtime(), ZoneInfo(timezone)).timestamp() * 1000)
    else:
        start_ms = parse_start(text)
    if start_ms + span_ms > now_ms + 60_000:
        ahead_d = (start_ms + span_ms - now_ms) / 86_400_000
        raise typer.BadParameter(
            f"the history would end {ahead_d:.1f} days in the future, and the ingestor refuses "
            "readings ahead of its clock: give an earlier --start or fewer --days"
        )
    age_s = (now_ms - start_ms) / 1000
    limit = max_age_s()
    if age_s > limit:
        need = int(age_s + 86400)
        raise typer.BadParameter(
            f"the oldest readings would be {age_s / 86400:.1f} days old, and an ingestor with "
            f"KERA_MAX_AGE_S={limit:.0f} refuses readings older than {limit / 86400:g} days "
            f"(ts_too_old). Run the ingestor and this command with KERA_MAX_AGE_S={need} (or "
            "more), or give a later --start"
        )
    return start_ms


def load_registry(config: Path | None, scale: int = 1) -> Registry:
    path = config or (Path(p) if (p := env("KERA_SITE_CONFIG")) else None)
    try:
        registry = Registry.load(path)
    except SiteConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    return Registry(scale_site(registry.site, scale)) if scale > 1 else registry


def unreachable(target: MqttTarget, exc: BaseException) -> NoReturn:
    """An expected failure, said in two lines instead of a traceback."""
    console.print(
        f"[red]could not reach the MQTT broker at {target.host}:{target.port}: "
        f"{exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}[/red]\n"
        "Is the broker running (scripts/stack, or your site's Mosquitto)? Give its address with "
        "--mqtt-url or KERA_MQTT_URL."
    )
    raise typer.Exit(2)


def mqtt_target(mqtt_url: str | None) -> MqttTarget:
    url = mqtt_url or env("KERA_MQTT_URL") or "mqtt://127.0.0.1:1883"
    try:
        # The ingestor's CA setting, so a technician's simulator trusts the same broker.
        return parse_mqtt_url(url, env("KERA_MQTT_CA_FILE"))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
