"""`kera-dashboards`: Grafana provisioning for the Kera pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dashboards.boards import DASHBOARDS, dashboard_json
from dashboards.provisioning import write_tree

app = typer.Typer(add_completion=False, help="Grafana provisioning for the Kera pipeline.")


@app.callback()
def _root() -> None:
    """Grafana provisioning for the Kera pipeline."""


def all_dashboards() -> dict[str, dict[str, object]]:
    boards = [dashboard_json(build()) for build in DASHBOARDS]
    return {str(b["uid"]): b for b in boards}


@app.command()
def build(
    out: Annotated[Path, typer.Option(help="Provisioning folder to write")] = Path("provisioning"),
    database: Annotated[str, typer.Option(help="InfluxDB database (KERA_INFLUX_DB)")] = "kera",
    dashboards_path: Annotated[
        str, typer.Option(help="Where Grafana sees the dashboard JSON files")
    ] = "/etc/grafana/provisioning/dashboards/kera",
) -> None:
    """Write a Grafana provisioning tree: datasource (InfluxQL; credentials as environment
    references), dashboard provider and dashboards, alert rules and a contact point."""
    for path in write_tree(out, all_dashboards(), database, dashboards_path):
        typer.echo(f"wrote {path}")


def main() -> None:
    app()
