"""`kera-ingest`: run the ingestor, or check a site file."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.logging import RichHandler
from rich.table import Table

from devices import Registry, SiteConfigError, terminal

app = typer.Typer(add_completion=False, help="Kera ingestor: MQTT readings into InfluxDB.")
console = terminal.console(stderr=True)


JsonOut = Annotated[
    bool, typer.Option("--json", help="One JSON object per line instead of a table")
]


def _json_lines(rows: list[dict[str, object]]) -> None:
    for row in rows:
        print(json.dumps(row, default=str))


def _setup_logging(level: str) -> None:
    if console.is_terminal:
        logging.basicConfig(
            level=level.upper(),
            format="%(name)s: %(message)s",
            handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=True)],
        )
    else:
        # Log collectors (journald, docker) want one plain line per record, never wrapped.
        logging.basicConfig(
            level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


@app.command()
def run(
    mqtt_url: Annotated[str | None, typer.Option(help="KERA_MQTT_URL")] = None,
    influx_url: Annotated[str | None, typer.Option(help="KERA_INFLUX_URL")] = None,
    influx_db: Annotated[str | None, typer.Option(help="KERA_INFLUX_DB")] = None,
    influx_api: Annotated[str | None, typer.Option(help="KERA_INFLUX_API: v1 or v2")] = None,
    influx_org: Annotated[str | None, typer.Option(help="KERA_INFLUX_ORG")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Site file (KERA_SITE_CONFIG)")
    ] = None,
    client_id: Annotated[str | None, typer.Option(help="KERA_MQTT_CLIENT_ID")] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="TOML settings file (KERA_SETTINGS_FILE)")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="KERA_LOG_LEVEL")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Processes on this host, sharing the readings (shared subscription)"
        ),
    ] = 1,
) -> None:
    """Subscribe to the site's readings and write them to InfluxDB until SIGTERM/SIGINT.

    The InfluxDB token is read from KERA_INFLUX_TOKEN only, never from a flag, so it does not
    show in the process list.
    """
    from ingest.service import run_forever
    from ingest.settings import load_settings
    from ingest.spool import SpoolLocked

    try:
        settings = load_settings(
            settings_file,
            mqtt_url=mqtt_url,
            influx_url=influx_url,
            influx_db=influx_db,
            influx_api=influx_api,
            influx_org=influx_org,
            site_config=config,
            mqtt_client_id=client_id,
            log_level=log_level,
        )
    except (ValidationError, FileNotFoundError) as exc:
        console.print(f"[red]invalid settings:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    _setup_logging(settings.log_level)
    if workers > 1:
        from ingest.workers import run_workers

        raise typer.Exit(run_workers(settings, workers))
    try:
        run_forever(settings)
    except (SiteConfigError, ValueError, SpoolLocked, OSError) as exc:
        console.print(f"[red]cannot start:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None


@app.command("check-site")
def check_site(
    config: Annotated[
        Path | None, typer.Argument(help="Site file; default: the bundled Kera site")
    ] = None,
    example: Annotated[
        Path | None,
        typer.Option(
            help="A JSON payload as the device's decoder emits it (or a bare LoRaWAN frame in "
            "hex, for a device with a codec): print the points the ingestor would write"
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="The device --example is from")] = None,
    json_out: JsonOut = False,
) -> None:
    """Validate a site file: every kind, mapping expression, profile and codec compiles, and
    the emission factor series reads; list the devices. With --example, run a device's mapping
    on a payload and print the line-protocol points it would write."""
    from ingest.codecs._js import CodecError, PayloadCodec
    from ingest.rollups import EmissionFactors

    try:
        registry = Registry.load(config)
        factors = EmissionFactors.from_impact(registry.site.impact)
        for d in registry:
            if d.codec_path is not None:
                PayloadCodec(d.codec_path)
    except (SiteConfigError, CodecError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if example is not None:
        raise typer.Exit(_run_example(registry, example, device))
    if json_out:
        _json_lines(
            [
                {"device": d.id, "kind": d.kind, "space": d.space,
                 "interval_s": d.expected_interval_s, "tags": d.extra_tags(),
                 "profile": d.profile,
                 "codec": str(d.codec_path) if d.codec_path is not None else None}
                for d in registry
            ]
        )  # fmt: skip
        return
    table = Table(title=f"site {registry.site_id}: {len(registry)} devices")
    for col in ("device", "kind", "space", "interval s", "details"):
        table.add_column(col)
    for d in registry:
        details = [f"{k}={v}" for k, v in d.extra_tags().items()]
        if d.profile:
            details.append(f"profile={d.profile}")
        if d.codec_path is not None:
            details.append(f"codec={d.codec_path.name}")
        table.add_row(d.id, d.kind, d.space, f"{d.expected_interval_s:g}", ", ".join(details))
    terminal.console().print(table)
    if factors.hourly:
        from datetime import UTC, datetime

        first, last = (
            datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
            for t in (min(factors.hourly), max(factors.hourly))
        )
        terminal.console().print(
            f"emission factors: {len(factors.hourly)} hours from the CSV, {first} to {last}; "
            f"other hours: {factors.constant} kg/kWh"
        )


def _run_example(registry: Registry, path: Path, device_id: str | None) -> int:
    """The points a device's payload becomes, on stdout as plain line protocol."""
    import json
    import time

    from ingest.lineproto import LineEncoder
    from ingest.reading import Decoded, NoReading, Rejected
    from ingest.validate import Validator

    if device_id is None or registry.get(device_id) is None:
        console.print(f"[red]--example needs --device, one of: {', '.join(d.id for d in registry)}")
        return 2
    try:
        text = path.read_text("utf-8").strip()
    except OSError as exc:
        console.print(f"[red]{path}: cannot read the example: {exc.strerror}[/red]")
        return 2
    now = time.time_ns() // 1_000_000
    decoded: Decoded
    if text.startswith("{"):
        try:
            values = json.loads(text)
        except ValueError as exc:
            console.print(f"[red]{path}: not JSON: {exc}[/red]")
            return 2
        decoded = Decoded(device_id, None, values)
    else:
        try:
            raw = bytes.fromhex(text.replace(" ", ""))
        except ValueError:
            console.print(f"[red]{path}: neither a JSON object nor a frame in hex[/red]")
            return 2
        decoded = Decoded(device_id, None, {}, frm_payload=raw, f_port=1)
    try:
        reading = Validator(registry).check(decoded, now)
    except NoReading as exc:
        console.print(f"no reading: {exc.detail}")
        return 0
    except Rejected as exc:
        console.print(f"[red]rejected {exc.reason.value}[/red]: {exc.detail}")
        return 1
    print(LineEncoder(registry.site_id).encode(reading))
    if reading.ignored:
        console.print(f"ignored (not mapped): {', '.join(reading.ignored)}")
    return 0


@app.command()
def kinds(
    markdown: Annotated[
        bool, typer.Option(help="The field tables of docs/data-model.md, as Markdown")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="Site file: its own kinds too")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """The device catalogue: every kind, its measurement and fields."""
    from devices.catalogue_doc import markdown_tables

    try:
        catalogue = Registry.load(config).site.catalogue
    except SiteConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if markdown:
        print(markdown_tables(catalogue), end="")
        return
    if json_out:
        _json_lines(
            [
                {"kind": spec.kind, "measurement": spec.measurement,
                 "extra_tags": list(spec.extra_tags), "default_interval_s": spec.default_interval_s,
                 "fields": {f.name: {"type": f.type, "unit": f.unit, "min": f.minimum,
                                     "max": f.maximum, "required": f.required}
                            for f in spec.fields.values()},
                 "derived": {d.spec.name: d.expr.source for d in spec.derived}}
                for spec in catalogue.values()
            ]
        )  # fmt: skip
        return
    table = Table(title="device kinds")
    for col in ("kind", "measurement", "fields", "derived"):
        table.add_column(col)
    for spec in catalogue.values():
        table.add_row(
            spec.kind,
            spec.measurement,
            ", ".join(spec.fields),
            ", ".join(d.spec.name for d in spec.derived),
        )
    terminal.console().print(table)


@app.command()
def profiles(json_out: JsonOut = False) -> None:
    """The bundled device profiles (`profile:` on a device in the site file)."""
    from devices.profiles import load_profile, profile_names

    if json_out:
        _json_lines([load_profile(n).model_dump(mode="json") for n in profile_names()])
        return

    table = Table(title="device profiles")
    for col in ("profile", "vendor", "model", "kind", "codec"):
        table.add_column(col)
    for name in profile_names():
        p = load_profile(name)
        table.add_row(name, p.vendor, p.model, p.kind, p.codec or "")
    terminal.console().print(table)


@app.command("unknown-fields")
def unknown_fields(
    days: Annotated[float, typer.Option(help="How far back to look")] = 7.0,
    settings_file: Annotated[Path | None, typer.Option("--settings")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Vendor fields the ingestors ignored (neither a contract field nor mapped), per device
    and field: what a firmware update added, or what a field_map should name."""
    import json

    from devices.contract import UNKNOWN_FIELDS_MEASUREMENT
    from ingest.influx import influxql_sync
    from ingest.settings import load_settings

    settings = load_settings(settings_file)
    token = settings.influx_token.get_secret_value() if settings.influx_token else None
    query = (
        f'SELECT sum("count") FROM "{UNKNOWN_FIELDS_MEASUREMENT}" '
        f'WHERE time > now() - {int(days * 86400)}s GROUP BY "device", "field"'
    )
    try:
        series = influxql_sync(settings.influx_url, query, settings.influx_db, token)
    except (OSError, RuntimeError) as exc:
        console.print(
            f"[red]could not query InfluxDB at {settings.influx_url} (database "
            f"{settings.influx_db}): {exc}[/red]\nCheck KERA_INFLUX_URL and KERA_INFLUX_DB."
        )
        raise typer.Exit(2) from None
    rows = sorted((s["tags"]["device"], s["tags"]["field"], int(s["values"][0][1])) for s in series)
    if json_out:
        for dev, name, count in rows:
            print(json.dumps({"device": dev, "field": name, "count": count}))
        return
    if not rows:
        terminal.console().print(f"no ignored fields in the last {days:g} days")
        return
    table = Table(title=f"ignored vendor fields, last {days:g} days")
    for col in ("device", "field", "messages"):
        table.add_column(col)
    for dev, name, count in rows:
        table.add_row(dev, name, str(count))
    terminal.console().print(table)


@app.command()
def quarantine(
    spool_dir: Annotated[
        Path | None, typer.Option(help="The ingestor's KERA_SPOOL_DIR (default from settings)")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Site file (KERA_SITE_CONFIG)")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Unknown devices recorded in quarantine mode, with a site-file entry to adopt each."""
    from datetime import UTC, datetime

    from ingest.quarantine import entries, summarise
    from ingest.settings import load_settings

    settings = load_settings(site_config=config, spool_dir=spool_dir)
    try:
        registry = Registry.load(settings.site_config)
    except SiteConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    folder = settings.spool_path()
    candidates = summarise(registry.site, entries(folder))
    if json_out:
        _json_lines(
            [
                {"device": c.device_id, "dev_eui": c.dev_eui, "messages": c.messages,
                 "first_ms": c.first_ms, "last_ms": c.last_ms, "fields": sorted(c.fields),
                 "kind": c.kind, "site_entry": c.site_entry()}
                for c in candidates
            ]
        )  # fmt: skip
        return
    if not candidates:
        terminal.console().print(f"no quarantined devices in {folder}")
        return
    table = Table(title=f"unknown devices seen ({folder})")
    for col in ("device", "dev_eui", "messages", "last seen (UTC)", "fields", "kind?"):
        table.add_column(col)
    for c in candidates:
        last = datetime.fromtimestamp(c.last_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            c.device_id or "-",
            c.dev_eui or "-",
            str(c.messages),
            last,
            ", ".join(sorted(c.fields)),
            c.kind or "?",
        )
    out = terminal.console()
    out.print(table)
    out.print("\nTo adopt, check these, fill in the space, and add them under `devices:`:\n")
    out.print("\n".join(c.site_entry() for c in candidates), markup=False, highlight=False)


@app.command()
def rollups(
    week: Annotated[
        str | None, typer.Option(help="an ISO week, e.g. 2026-W47 (site's local time)")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="first local day, YYYY-MM-DD (instead of --week)")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="the local day after the last, YYYY-MM-DD")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Site file (KERA_SITE_CONFIG)")
    ] = None,
    settings_file: Annotated[Path | None, typer.Option("--settings")] = None,
) -> None:
    """Recompute the impact rollups of whole local days from the readings in InfluxDB, and
    write them over the stored ones: for readings that came later than the live window (48 h),
    a changed emission factor or site file, or rollups of data from before they existed."""
    import asyncio
    from datetime import date
    from zoneinfo import ZoneInfo

    from rich.progress import Progress

    from ingest.influx import InfluxTarget, WriteError, make_transport
    from ingest.rollups import day_bounds, recompute, week_bounds
    from ingest.settings import load_settings

    settings = load_settings(settings_file, site_config=config)
    try:
        registry = Registry.load(settings.site_config)
        tz = ZoneInfo(registry.site.timezone)
        if week is not None:
            lo, hi = week_bounds(week, tz)
        elif start is not None and end is not None:
            lo, hi = (
                day_bounds(date.fromisoformat(start), tz)[0],
                day_bounds(date.fromisoformat(end), tz)[0],
            )
        else:
            raise ValueError("give --week, or --from and --to")
        if hi <= lo:
            raise ValueError("--to must come after --from")
    except (SiteConfigError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    token = settings.influx_token.get_secret_value() if settings.influx_token else None
    target = InfluxTarget(
        settings.influx_url, settings.influx_db, settings.influx_api, token, settings.influx_org
    )

    async def go() -> int:
        transport = make_transport(target)
        await transport.start()
        try:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("recomputing", total=hi - lo)

                async def write(lines: list[str]) -> None:
                    await transport.write("\n".join(lines).encode(), settings.rollups_rp)

                return await recompute(
                    registry,
                    settings.influx_url,
                    settings.influx_db,
                    lo,
                    hi,
                    write,
                    token,
                    on_day=lambda t: progress.update(task, completed=t - lo),
                )
        finally:
            await transport.close()

    try:
        n = asyncio.run(go())
    except (WriteError, RuntimeError, OSError) as exc:
        console.print(f"[red]recompute stopped: {exc}; the days written so far are done, run "
                      "it again for the rest[/red]")  # fmt: skip
        raise typer.Exit(1) from None
    days = (hi - lo) / 86_400_000
    if n == 0:
        console.print(
            f"no readings of this site's meters, room sensors or bins in those {days:.0f} days "
            f"in InfluxDB at {settings.influx_url.split('@')[-1]} (database "
            f"{settings.influx_db}): nothing to roll up. Check the dates (--week, or --from/--to "
            "in the site's local time) and KERA_INFLUX_URL / KERA_INFLUX_DB."
        )
        return
    console.print(f"wrote {n} rollup points for {days:.0f} days")


device_app = typer.Typer(add_completion=False, help="Commissioning devices: site file and broker.")
app.add_typer(device_app, name="device")


@device_app.command("add")
def device_add(
    device_id: Annotated[str, typer.Argument(help="The new device's id")],
    kind: Annotated[str, typer.Option(help="a kind of the catalogue (kera-ingest kinds)")],
    space: Annotated[str, typer.Option(help="Where it is (a tag)")],
    site_file: Annotated[Path, typer.Option(help="The site file to add it to")],
    passwd: Annotated[Path, typer.Option(help="The broker's password file")],
    dev_eui: Annotated[str | None, typer.Option(help="LoRaWAN DevEUI")] = None,
    depth_mm: Annotated[float | None, typer.Option(help="waste_bin: sensor to bottom")] = None,
    fraction: Annotated[str | None, typer.Option(help="waste_bin: sorting fraction")] = None,
    profile: Annotated[
        str | None, typer.Option(help="a device profile (kera-ingest profiles)")
    ] = None,
) -> None:
    """Add a device to the site file and give it broker credentials. The password is printed
    once, for the device's configuration; the broker keeps only its hash."""
    from devices.onboarding import add_device, new_password, set_password

    device: dict[str, object] = {"id": device_id, "kind": kind, "space": space}
    for key, value in (
        ("dev_eui", dev_eui),
        ("depth_mm", depth_mm),
        ("fraction", fraction),
        ("profile", profile),
    ):
        if value is not None:
            device[key] = value
    try:
        add_device(site_file, device)
    except SiteConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    generated = new_password()  # random per device, shown once, stored only as a hash
    set_password(passwd, device_id, generated)
    site = Registry.load(site_file).site_id
    console.print(f"added {device_id} to {site_file}; broker user {device_id} in {passwd}")
    console.print("Reload the broker (SIGHUP) and restart the ingestor. Give the device:")
    typer.echo(f"MQTT user:     {device_id}")
    typer.echo(f"MQTT password: {generated}")
    typer.echo(f"publish to:    kera/{site}/{device_id}/telemetry and /status")


@device_app.command("acl")
def device_acl(
    out: Annotated[Path, typer.Option(help="The broker's ACL file to write")],
    config: Annotated[Path | None, typer.Option("--config", help="Site file")] = None,
) -> None:
    """Write the broker ACL: devices publish only under their own topics, the ingestor reads."""
    from devices.onboarding import acl

    out.write_text(acl(Registry.load(config).site_id))
    console.print(f"wrote {out}")


@device_app.command("user")
def device_user(
    user: Annotated[str, typer.Argument(help="Broker user, e.g. kera-ingest")],
    passwd: Annotated[Path, typer.Option(help="The broker's password file")],
) -> None:
    """Set a broker user's password (e.g. the ingestor's) from KERA_NEW_PASSWORD, or a new
    random one, printed once."""
    import os

    from devices.onboarding import new_password, set_password

    password = os.environ.get("KERA_NEW_PASSWORD") or new_password()
    set_password(passwd, user, password)
    if "KERA_NEW_PASSWORD" not in os.environ:
        typer.echo(f"MQTT password for {user}: {password}")


def main() -> None:
    app()
