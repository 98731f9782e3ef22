"""`kera-ingest`: run the ingestor, check and extend a site file, inspect what was ignored,
quarantined or rolled up.

One module per group of commands; each registers its commands on the one Typer app when imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from devices import SiteConfigError
from ingest.cli import device, inspection, site
from ingest.cli._common import app, console, setup_logging


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
    from ingest.storage.spool import SpoolLocked

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
    setup_logging(settings.log_level)
    if workers > 1:
        from ingest.workers import run_workers

        raise typer.Exit(run_workers(settings, workers))
    try:
        run_forever(settings)
    except (SiteConfigError, ValueError, SpoolLocked, OSError) as exc:
        console.print(f"[red]cannot start:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None


# The commands in the order `--help` lists them: running, the site file, what was stored.
app.command("check-site")(site.check_site)
app.command()(site.kinds)
app.command()(site.profiles)
app.command("unknown-fields")(inspection.unknown_fields)
app.command()(inspection.quarantine)
app.command()(inspection.rollups)
app.add_typer(device.device_app, name="device")


def main() -> None:
    app()
