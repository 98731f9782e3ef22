"""`kera-dashboards`: Grafana provisioning for the Kera pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dashboards.provisioning import write_datasource

app = typer.Typer(add_completion=False, help="Grafana provisioning for the Kera pipeline.")


@app.callback()
def _root() -> None:
    """Grafana provisioning for the Kera pipeline."""


@app.command()
def build(
    out: Annotated[Path, typer.Option(help="Provisioning folder to write")] = Path("provisioning"),
    database: Annotated[str, typer.Option(help="InfluxDB database (KERA_INFLUX_DB)")] = "kera",
) -> None:
    """Write the Grafana datasource provisioning file (InfluxQL; credentials from Grafana's
    environment). Dashboards and alert rules join it in the dashboards issue."""
    path = write_datasource(out, database)
    typer.echo(f"wrote {path}")


def main() -> None:
    app()
