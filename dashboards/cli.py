"""`kera-dashboards`: Grafana provisioning for the Kera pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dashboards.boards import DASHBOARDS, dashboard_json, impact
from dashboards.provisioning import write_tree
from devices import terminal

app = typer.Typer(add_completion=False, help="Grafana provisioning for the Kera pipeline.")


@app.callback()
def _root() -> None:
    """Grafana provisioning for the Kera pipeline."""


RollupsRp = Annotated[
    str | None,
    typer.Option(
        envvar="KERA_ROLLUPS_RP",
        help="Retention policy the ingestor writes the rollups to (KERA_ROLLUPS_RP)",
    ),
]


def all_dashboards(rollups_rp: str | None = None) -> dict[str, dict[str, object]]:
    # The Impact and Pilots dashboards read the rollups' retention policy, which may be their own;
    # so do the pilot periods every other board shows as annotations.
    from dashboards.boards import periods_annotation, pilots

    boards = [
        dashboard_json(
            (impact(rollups_rp) if build is impact else build()).annotation(
                periods_annotation(rollups_rp)
            )
        )
        for build in DASHBOARDS
    ]
    boards.append(dashboard_json(pilots(rollups_rp)))
    return {str(b["uid"]): b for b in boards}


@app.command()
def build(
    out: Annotated[Path, typer.Option(help="Provisioning folder to write")] = Path("provisioning"),
    database: Annotated[str, typer.Option(help="InfluxDB database (KERA_INFLUX_DB)")] = "kera",
    dashboards_path: Annotated[
        str, typer.Option(help="Where Grafana sees the dashboard JSON files")
    ] = "/etc/grafana/provisioning/dashboards/kera",
    rollups_rp: RollupsRp = None,
) -> None:
    """Write a Grafana provisioning tree: datasource (InfluxQL; credentials as environment
    references), dashboard provider and dashboards, alert rules and a contact point."""
    for path in write_tree(out, all_dashboards(rollups_rp), database, dashboards_path):
        typer.echo(f"wrote {path}")


@app.command()
def push(
    url: Annotated[str, typer.Option(help="Grafana base URL, e.g. https://grafana.kera.fi")],
    database: Annotated[str, typer.Option(help="InfluxDB database (KERA_INFLUX_DB)")] = "kera",
    rollups_rp: RollupsRp = None,
) -> None:
    """Upload datasource, dashboards, alert rules and contact point through Grafana's HTTP API,
    updating by uid. The token is read from GRAFANA_TOKEN only, never from a flag."""
    import os

    from dashboards.push import push as push_all

    token = os.environ.get("GRAFANA_TOKEN")
    if not token:
        typer.echo("set GRAFANA_TOKEN (a service account token with editor rights)", err=True)
        raise typer.Exit(2)
    done = push_all(url, token, all_dashboards(rollups_rp), database)
    for what, n in sorted(done.items()):
        typer.echo(f"{what}: {n}")


@app.command()
def report(
    week: Annotated[str, typer.Option(help="ISO week, e.g. 2026-W48, in the site's time zone")],
    out: Annotated[Path, typer.Option(help="Folder for the HTML and PDF")],
    config: Annotated[
        Path | None, typer.Option("--config", help="Site file (KERA_SITE_CONFIG)")
    ] = None,
    settings_file: Annotated[Path | None, typer.Option("--settings")] = None,
    pdf: Annotated[bool, typer.Option(help="Also print the PDF with headless Chromium")] = True,
) -> None:
    """Write the week's impact report, a self-contained HTML file and a PDF, from the rollups
    in InfluxDB (KERA_INFLUX_URL, KERA_INFLUX_DB, KERA_INFLUX_TOKEN)."""
    import asyncio

    from rich.progress import Progress

    from dashboards.report import FIGURES, PdfError, load_week, write_report
    from devices import Registry, SiteConfigError
    from ingest.evaluation.rollups import parse_week
    from ingest.settings import load_settings

    console = terminal.console(stderr=True)
    settings = load_settings(settings_file, site_config=config)
    try:
        parse_week(week)
        registry = Registry.load(settings.site_config)
    except (ValueError, SiteConfigError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    token = settings.influx_token.get_secret_value() if settings.influx_token else None
    with Progress(console=console) as progress:
        steps = 7 + len(FIGURES) + 2
        task = progress.add_task(f"report {week}", total=steps)

        def step(name: str) -> None:
            progress.update(task, advance=1, description=f"report {week}: {name}")

        try:
            data = asyncio.run(
                load_week(
                    registry,
                    settings.influx_url,
                    settings.influx_db,
                    token,
                    week,
                    step,
                    rollups_rp=settings.rollups_rp,
                )
            )
        except (OSError, RuntimeError) as exc:
            console.print(f"[red]cannot read the rollups from {settings.influx_url}: {exc}[/red]")
            raise typer.Exit(1) from None
        try:
            html_path, pdf_path = write_report(data, out, step, pdf=pdf)
        except PdfError as exc:
            console.print(f"[red]{exc}[/red]")
            typer.echo(f"wrote {out / f'impact-{data.site}-{data.week}.html'}")
            raise typer.Exit(1) from None
    if all(v is None for v in data.totals.values()):
        console.print(f"[yellow]no rollups found for {week}: is it the right database?[/yellow]")
    if data.rollups_behind_h > 0:
        console.print(
            f"[yellow]the rollups are {data.rollups_behind_h:.0f} h behind the readings: the "
            "report is not final yet (wait, or run kera-ingest rollups, then report again)[/yellow]"
        )
    for notice in registry.site.impact.example_notices():
        console.print(f"[yellow]warning: {notice}[/yellow]", soft_wrap=True)
    typer.echo(f"wrote {html_path}")
    if pdf_path is not None:
        typer.echo(f"wrote {pdf_path}")


@app.command()
def pilot(
    pilot_id: Annotated[
        str | None, typer.Argument(help="A pilot of the site file (check-site lists them)")
    ] = None,
    all_pilots: Annotated[
        bool, typer.Option("--all", help="Every pilot of the site that has started")
    ] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="Site file (KERA_SITE_CONFIG)")
    ] = None,
    settings_file: Annotated[Path | None, typer.Option("--settings")] = None,
    today: Annotated[
        str | None, typer.Option(help="Judge the days before this date (default: today)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per metric")] = False,
    write: Annotated[
        bool,
        typer.Option(
            help="Also write the results to InfluxDB (pilot_results, pilot_daily, pilot_periods)"
        ),
    ] = False,
    every_h: Annotated[
        float | None,
        typer.Option(help="Run again every this many hours, until stopped (a daily job: 24)"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Also write each pilot's report here: HTML, and PDF with Chromium"),
    ] = None,
    pdf: Annotated[bool, typer.Option(help="With --out: also print the PDF")] = True,
) -> None:
    """What a pilot changed so far, per metric: the estimate, its 90 % interval, the method and
    the verdict, from the rollups in InfluxDB (docs/pilots.md)."""
    import time
    from datetime import date

    from devices import Registry, SiteConfigError
    from ingest.settings import load_settings

    console = terminal.console(stderr=True)
    settings = load_settings(settings_file, site_config=config)
    try:
        registry = Registry.load(settings.site_config)
        fixed_day = date.fromisoformat(today) if today else None
    except (ValueError, SiteConfigError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    pilots = {p.id: p for p in registry.site.pilots}
    if all_pilots == (pilot_id is not None):
        console.print("[red]name one pilot, or give --all[/red]")
        raise typer.Exit(2)
    if pilot_id is not None and pilot_id not in pilots:
        known = ", ".join(sorted(pilots)) or "none"
        console.print(f"[red]the site has no pilot {pilot_id!r} (it has: {known})[/red]")
        raise typer.Exit(2)
    while True:
        day = fixed_day or date.today()
        chosen = [pilots[pilot_id]] if pilot_id else [p for p in pilots.values() if p.start < day]
        try:
            for one in chosen:
                _judge_pilot(one, registry, settings, day, json_out=json_out, write=write,
                             report=(out, pdf) if out else None)  # fmt: skip
        except typer.Exit:
            if every_h is None:
                raise
            console.print(f"[yellow]trying again in {every_h:g} h[/yellow]")
        if every_h is None:
            return
        time.sleep(every_h * 3600)


def _judge_pilot(
    chosen: Any, registry: Any, settings: Any, day: Any, *, json_out: bool, write: bool,
    report: tuple[Path, bool] | None,
) -> None:  # fmt: skip
    import asyncio
    import json
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from pilots.data import load
    from pilots.energy import MissingExtra
    from pilots.evaluate import evaluate

    console = terminal.console(stderr=True)
    tz = ZoneInfo(registry.site.timezone)
    token = settings.influx_token.get_secret_value() if settings.influx_token else None
    try:
        data = asyncio.run(
            # The days before `day`: today is not over, and its hours are not all in.
            load(chosen, registry, settings.influx_url, settings.influx_db, token,
                 day - timedelta(days=1), settings.rollups_rp)
        )  # fmt: skip
        results = evaluate(chosen, data, tz, day, registry.site.impact)
    except MissingExtra as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    except (OSError, RuntimeError) as exc:
        console.print(f"[red]cannot read the rollups from {settings.influx_url}: {exc}[/red]")
        raise typer.Exit(1) from None
    for warning in data.warnings:
        console.print(f"[yellow]{chosen.id}: {warning}[/yellow]", soft_wrap=True)
    if write:
        _write_results(settings, registry.site.site, chosen, results, tz)
    if report is not None:
        _pilot_report(chosen, registry, settings, results, data, *report)
    if json_out:
        for r in results:
            e = r.effect
            print(json.dumps({
                "pilot": r.pilot, "metric": r.metric.value, "unit": r.unit, "method": e.method,
                "estimate": e.estimate, "low": e.low, "high": e.high,
                "estimate_pct": e.estimate_pct, "low_pct": e.low_pct, "high_pct": e.high_pct,
                "baseline_days": e.baseline_days, "reporting_days": e.reporting_days,
                "verdict": e.verdict.value, "notes": list(e.notes),
                "avoided_kgco2e": r.avoided_kgco2e, "factor_source": r.factor_source,
                "factor_example": r.factor_example,
                "weather": data.weather if r.metric.energy else None,
                "baseline": [str(r.baseline.start), str(r.baseline.end)],
                "reporting": [str(r.reporting.start), str(r.reporting.end)]
                if r.reporting else None,
            }), flush=True)  # fmt: skip
        return
    terminal.console().print(_pilot_table(chosen.title, results))


def _pilot_report(
    chosen: Any, registry: Any, settings: Any, results: list[Any], data: Any, out: Path, pdf: bool
) -> None:
    from dashboards.report import PdfError, PilotReport, write_pilot_report

    site = registry.site
    report = PilotReport(
        site.site, site.name or site.site, site.timezone, chosen, results, data,
        f"{settings.influx_url.rsplit('@', maxsplit=1)[-1]} database {settings.influx_db}",
    )  # fmt: skip
    # Progress and the paths go to stderr: stdout may be --json's.
    console = terminal.console(stderr=True)
    try:
        html_path, pdf_path = write_pilot_report(report, out, pdf=pdf)
    except PdfError as exc:
        console.print(f"[red]{exc}[/red]")
        console.print(f"wrote {out / f'pilot-{site.site}-{chosen.id}.html'}", soft_wrap=True)
        raise typer.Exit(1) from None
    for path in (html_path, pdf_path):
        if path is not None:
            console.print(f"wrote {path}", soft_wrap=True, highlight=False)


def _write_results(settings: Any, site: str, chosen: Any, results: list[Any], tz: Any) -> None:
    import asyncio

    from ingest.storage.transports import WriteError, make_transport
    from pilots.evaluate import period_lines, result_lines

    lines = period_lines(site, chosen, tz) + result_lines(site, results, tz)
    target = settings.influx_target()

    async def go() -> None:
        transport = make_transport(target)
        await transport.start()
        try:
            await transport.write("\n".join(lines).encode(), settings.rollups_rp)
        finally:
            await transport.close()

    try:
        asyncio.run(go())
    except (WriteError, OSError) as exc:
        terminal.console(stderr=True).print(
            f"[red]cannot write the pilot's results to {settings.influx_url.split('@')[-1]}: "
            f"{exc}[/red]"
        )
        raise typer.Exit(1) from None


def _pilot_table(title: str, results: list[Any]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for col in ("metric", "change", "90 % interval", "verdict", "method", "days", "notes"):
        table.add_column(col)
    for r in results:
        e = r.effect
        if e.estimate is None:
            change, interval = "-", "-"
        elif e.estimate_pct is not None and e.low_pct is not None and e.high_pct is not None:
            # The interval in the change's own units too, not only in percent.
            change = f"{e.estimate:+.2f} {r.unit} ({e.estimate_pct:+.1f} %)"
            interval = (
                f"{e.low:+.2f} .. {e.high:+.2f} {r.unit} ({e.low_pct:+.1f} .. {e.high_pct:+.1f} %)"
                if e.low is not None and e.high is not None
                else f"{e.low_pct:+.1f} .. {e.high_pct:+.1f} %"
            )
        else:
            change = f"{e.estimate:+.2f} {r.unit}"
            interval = f"{e.low:+.2f} .. {e.high:+.2f} {r.unit}"
        table.add_row(
            r.metric.value, change, interval, e.verdict.value, e.method,
            f"{e.baseline_days} + {e.reporting_days}",
            "; ".join([*e.notes, *([f"avoided {r.avoided_kgco2e:.0f} kgCO2e ({r.factor_source})"]
                                   if r.avoided_kgco2e is not None else [])]),
        )  # fmt: skip
    return table


def main() -> None:
    app()
