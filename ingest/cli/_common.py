"""What every `kera-ingest` command shares: the Typer app, the stderr console, `--json`."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer
from rich.logging import RichHandler

from devices import terminal

app = typer.Typer(add_completion=False, help="Kera ingestor: MQTT readings into InfluxDB.")
console = terminal.console(stderr=True)


JsonOut = Annotated[
    bool, typer.Option("--json", help="One JSON object per line instead of a table")
]


def json_lines(rows: list[dict[str, object]]) -> None:
    for row in rows:
        print(json.dumps(row, default=str))


def setup_logging(level: str) -> None:
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
