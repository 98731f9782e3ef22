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


@app.command()
def push(
    url: Annotated[str, typer.Option(help="Grafana base URL, e.g. https://grafana.kera.fi")],
    database: Annotated[str, typer.Option(help="InfluxDB database (KERA_INFLUX_DB)")] = "kera",
) -> None:
    """Upload datasource, dashboards, alert rules and contact point through Grafana's HTTP API,
    updating by uid. The token is read from GRAFANA_TOKEN only, never from a flag."""
    import os

    from dashboards.push import push as push_all

    token = os.environ.get("GRAFANA_TOKEN")
    if not token:
        typer.echo("set GRAFANA_TOKEN (a service account token with editor rights)", err=True)
        raise typer.Exit(2)
    done = push_all(url, token, all_dashboards(), database)
    for what, n in sorted(done.items()):
        typer.echo(f"{what}: {n}")


def main() -> None:
    app()
