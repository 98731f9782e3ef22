"""What the ingestors ignored, quarantined or rolled up: `unknown-fields`, `quarantine`,
`rollups`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from devices import Registry, SiteConfigError, terminal
from ingest.cli._common import JsonOut, console, json_lines


def unknown_fields(
    days: Annotated[float, typer.Option(help="How far back to look")] = 7.0,
    settings_file: Annotated[Path | None, typer.Option("--settings")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Vendor fields the ingestors ignored (neither a contract field nor mapped), per device
    and field: what a firmware update added, or what a field_map should name."""

    from devices.contract import UNKNOWN_FIELDS_MEASUREMENT
    from ingest.settings import load_settings
    from ingest.storage.influxql import ident
    from ingest.storage.query import influxql_sync

    settings = load_settings(settings_file)
    token = settings.influx_token.get_secret_value() if settings.influx_token else None
    query = (
        f'SELECT sum("count") FROM {ident(UNKNOWN_FIELDS_MEASUREMENT)} '
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
        json_lines(
            [
                {"device": c.device_id, "dev_eui": c.dev_eui, "messages": c.messages,
                 "first_ms": c.first_ms, "last_ms": c.last_ms, "fields": sorted(c.fields),
                 "announced": sorted(c.announced),
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
            ", ".join(sorted(c.fields or c.announced)),
            c.kind or "?",
        )
    out = terminal.console()
    out.print(table)
    out.print("\nTo adopt, check these, fill in the space, and add them under `devices:`:\n")
    out.print("\n".join(c.site_entry() for c in candidates), markup=False, highlight=False)


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
    shards: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="the site's days per shard, as evaluators with KERA_EVALUATION_SHARD=k/N write "
            "them (default: N of KERA_EVALUATION_SHARD, else 1)",
        ),
    ] = None,
) -> None:
    """Recompute the impact rollups of whole local days from the readings in InfluxDB, and
    write them over the stored ones: for readings later than the live rollups repair (48 h),
    a changed emission factor or site file, or rollups of data from before they existed."""
    import asyncio
    from datetime import date
    from zoneinfo import ZoneInfo

    from rich.progress import Progress

    from ingest.evaluation.rollups import day_bounds, recompute, week_bounds
    from ingest.settings import load_settings
    from ingest.storage.transports import WriteError, make_transport

    settings = load_settings(settings_file, site_config=config)

    def bounds(tz: ZoneInfo) -> tuple[int, int]:
        if week is not None:
            return week_bounds(week, tz)
        if start is None or end is None:
            raise ValueError("give --week, or --from and --to")
        lo, hi = (
            day_bounds(date.fromisoformat(start), tz)[0],
            day_bounds(date.fromisoformat(end), tz)[0],
        )
        if hi <= lo:
            raise ValueError("--to must come after --from")
        return lo, hi

    try:
        registry = Registry.load(settings.site_config)
        lo, hi = bounds(ZoneInfo(registry.site.timezone))
    except (SiteConfigError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    token = settings.influx_token.get_secret_value() if settings.influx_token else None
    target = settings.influx_target()
    shard = settings.shard()

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
                    shards=shards or (shard.count if shard is not None else 1),
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
