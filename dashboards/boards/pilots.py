"""The Pilots dashboard: what each pilot changed so far, from the `pilot_results` points that
`kera-dashboards pilot ID --write` stores daily (docs/pilots.md). InfluxQL only, like the other
boards; the results live in the rollups' retention policy."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.panels import (
    DS,
    SITE,
    AnnotationBuilder,
    Layout,
    query_variable,
    stat_panel,
    table_panel,
    ts_panel,
)
from devices.contract import (
    METRIC_TAG,
    PILOT_DAILY_MEASUREMENT,
    PILOT_PERIODS_MEASUREMENT,
    PILOT_RESULTS_MEASUREMENT,
    PILOT_TAG,
)
from ingest.evaluation.rollups import qualified
from ingest.storage.influxql import ident

PILOT = f"{ident(PILOT_TAG)} =~ /^$pilot$/"
METRIC = f"{ident(METRIC_TAG)} =~ /^$metric$/"


def periods_annotation(rollups_rp: str | None = None) -> db.AnnotationQuery:
    """Pilot starts and ends, for every dashboard: a change on a graph may be a pilot's."""
    periods = qualified(PILOT_PERIODS_MEASUREMENT, rollups_rp)
    return (
        AnnotationBuilder()
        .name("Kera pilots")
        .datasource(DS)
        .enable(True)
        .icon_color("purple")
        .expr(f'SELECT "text" FROM {periods} WHERE {SITE} AND $timeFilter')
    )


def pilots(rollups_rp: str | None = None) -> db.Dashboard:
    results = qualified(PILOT_RESULTS_MEASUREMENT, rollups_rp)
    daily = qualified(PILOT_DAILY_MEASUREMENT, rollups_rp)
    where = f"{SITE} AND {PILOT} AND {METRIC} AND $timeFilter"
    per_metric = f"GROUP BY {ident(PILOT_TAG)}, {ident(METRIC_TAG)}"
    pilot_q = f"SHOW TAG VALUES FROM {results} WITH KEY = {ident(PILOT_TAG)} WHERE {SITE}"
    metric_q = (
        f"SHOW TAG VALUES FROM {results} WITH KEY = {ident(METRIC_TAG)} WHERE {SITE} AND {PILOT}"
    )
    d = (
        db.Dashboard("Kera: pilots")
        .uid("kera-pilots")
        .tags(["kera", "pilots", "impact"])
        .time("now-90d", "now")
        .refresh("1h")
        .timezone("browser")
        .editable()
        .annotation(periods_annotation(rollups_rp))
        .with_variable(
            query_variable("site", "Site", f'SHOW TAG VALUES FROM {results} WITH KEY = "site"')
        )
        .with_variable(query_variable("pilot", "Pilot", pilot_q))
        .with_variable(query_variable("metric", "Metric", metric_q))
    )
    lay = Layout()
    d.with_panel(
        lay.place(
            table_panel(
                "Effect so far, per pilot and metric (90 % interval; method and verdict)",
                f'SELECT last("estimate_pct") AS "change %", last("low_pct") AS "low %", '
                f'last("high_pct") AS "high %", last("estimate") AS "change", '
                f'last("reporting_days") AS "days", last("verdict") AS "verdict", '
                f'last("method") AS "method" FROM {results} WHERE {where} {per_metric}',
            ),
            24,
            8,
        )
    )
    d.with_panel(
        lay.place(
            ts_panel(
                "Baseline against actual: measured per day, and what the baseline expected "
                "without the pilot (baseline days: the model's fit)",
                "short",
                f'SELECT last("observed") AS "measured", last("expected") AS "expected" '
                f"FROM {daily} WHERE {where} "
                f"GROUP BY time(1d), {ident(PILOT_TAG)}, {ident(METRIC_TAG)} fill(none)",
            ),
            24,
            9,
        )
    )
    d.with_panel(
        lay.place(
            ts_panel(
                "Cumulative effect with its 90 % band (% of what the baseline expected)",
                "percent",
                f'SELECT last("estimate_pct") AS "change", last("low_pct") AS "low", '
                f'last("high_pct") AS "high" FROM {results} WHERE {where} '
                f"GROUP BY time(1d), {ident(PILOT_TAG)}, {ident(METRIC_TAG)} fill(none)",
            ),
            16,
            9,
        )
    )
    d.with_panel(
        lay.place(
            stat_panel(
                "Avoided emissions so far",
                "masskg",
                f'SELECT sum("last") FROM (SELECT last("avoided_kgco2e") FROM {results} '
                f"WHERE {where} {per_metric})",
            ),
            8,
            9,
        )
    )
    d.with_panel(
        lay.place(
            ts_panel(
                "Days of data judged",
                "d",
                f'SELECT last("reporting_days") AS "pilot days", last("baseline_days") AS '
                f'"baseline days" FROM {results} WHERE {where} '
                f"GROUP BY time(1d), {ident(PILOT_TAG)}, {ident(METRIC_TAG)} fill(none)",
            ),
            24,
            7,
        )
    )
    return d
