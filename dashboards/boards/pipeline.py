"""The Pipeline dashboard: is the ingestor keeping up, and what does it refuse."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.panels import (
    SITE,
    Layout,
    query_variable,
    ts_panel,
)


def pipeline() -> db.Dashboard:
    """Pipeline: is the ingestor keeping up, and what does it refuse."""
    d = (
        db.Dashboard("Kera: pipeline")
        .uid("kera-pipeline")
        .tags(["kera", "pipeline"])
        .time("now-6h", "now")
        .refresh("30s")
        .editable()
    )
    d.with_variable(
        query_variable("site", "Site", 'SHOW TAG VALUES FROM "pipeline" WITH KEY = "site"')
    )
    d.with_variable(
        query_variable(
            "instance",
            "Ingestor",
            f'SHOW TAG VALUES FROM "pipeline" WITH KEY = "instance" WHERE {SITE}',
        )
    )
    where = f'{SITE} AND "instance" =~ /^$instance$/ AND $timeFilter'
    per = "GROUP BY time($__interval) fill(0)"
    lay = Layout()
    for title, unit, query, w in (
        (
            "Messages in and points written",
            "short",
            f'SELECT sum("messages") AS "messages", sum("points_written") AS "points written" '
            f'FROM "pipeline" WHERE {where} {per}',
            12,
        ),
        (
            "Rejected per reason",
            "short",
            f'SELECT sum(/^rejected_/) FROM "pipeline" WHERE {where} {per}',
            12,
        ),
        (
            "Write latency",
            "ms",
            f'SELECT mean("write_latency_ms_mean") AS "mean", max("write_latency_ms_max") AS "max" '
            f'FROM "pipeline" WHERE {where} GROUP BY time($__interval) fill(null)',
            12,
        ),
        (
            "Spool depth",
            "bytes",
            f'SELECT max("spool_bytes") FROM "pipeline" WHERE {where} '
            'GROUP BY time($__interval), "instance" fill(null)',
            12,
        ),
        (
            "Points per write",
            "short",
            f'SELECT mean("batch_points_mean") AS "mean", max("batch_points_max") AS "max" '
            f'FROM "pipeline" WHERE {where} GROUP BY time($__interval) fill(null)',
            24,
        ),
    ):
        d.with_panel(lay.place(ts_panel(title, unit, query), w, 8))
    return d
