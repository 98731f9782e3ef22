"""The Overview dashboard: how the site is doing right now."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import (
    statetimeline,
)

from dashboards.influxql import InfluxQL
from dashboards.panels import (
    DS,
    SITE,
    Layout,
    board,
    stat_panel,
    thresholds,
    ts_panel,
)


def overview() -> db.Dashboard:
    """Site overview: how the place is doing right now."""
    d = board("kera-overview", "Kera: site overview", "occupancy", ["overview"])
    lay = Layout()
    panels = [
        (
            stat_panel(
                "People on site now",
                "none",
                'SELECT sum("last") FROM (SELECT last("people") FROM "occupancy" '
                f'WHERE {SITE} AND $timeFilter GROUP BY "device")',
            ),
            4,
            5,
        ),
        (
            stat_panel(
                "Power now",
                "watt",
                'SELECT sum("last") FROM (SELECT last("power_w") FROM "energy" '
                f'WHERE {SITE} AND "role" = \'main-supply\' AND $timeFilter GROUP BY "device")',
            ),
            4,
            5,
        ),
        (
            stat_panel(
                "Energy today",
                "kwatth",
                f'SELECT spread("energy_kwh") FROM "energy" WHERE {SITE} '
                "AND \"role\" = 'main-supply' AND $timeFilter",
            ).time_from("now/d"),
            4,
            5,
        ),
        (
            stat_panel(
                "Bins over 80 %",
                "none",
                'SELECT count("last") FROM (SELECT last("fill_pct") FROM "waste_bin" '
                f'WHERE {SITE} AND $timeFilter GROUP BY "device") WHERE "last" >= 80',
            ).thresholds(thresholds((None, "green"), (1, "orange"))),
            4,
            5,
        ),
        (
            stat_panel(
                "Alerts firing",
                "none",
                'SELECT count("last") FROM (SELECT last("firing") FROM "alerts" '
                f'WHERE {SITE} AND $timeFilter GROUP BY "rule", "device") WHERE "last" = true',
            ).thresholds(thresholds((None, "green"), (1, "red"))),
            4,
            5,
        ),
        (
            stat_panel(
                "Devices offline",
                "none",
                'SELECT count("last") FROM (SELECT last("online") FROM "device_status" '
                f'WHERE {SITE} AND $timeFilter GROUP BY "device") WHERE "last" = false',
            ).thresholds(thresholds((None, "green"), (1, "red"))),
            4,
            5,
        ),
        (
            statetimeline.Panel()
            .title("Alerts")
            .datasource(DS)
            .with_target(
                InfluxQL(
                    'SELECT last("firing") FROM "alerts" WHERE '
                    f'{SITE} AND $timeFilter GROUP BY time($__interval), "rule", "device" '
                    "fill(previous)"
                ).alias("$tag_rule $tag_device")
            ),
            24,
            8,
        ),
        (
            ts_panel(
                "People on site",
                "none",
                'SELECT sum("people") FROM (SELECT mean("people") AS "people" FROM "occupancy" '
                f'WHERE {SITE} AND $timeFilter GROUP BY time($__interval), "device") '
                "GROUP BY time($__interval)",
            ),
            12,
            8,
        ),
        (
            ts_panel(
                "Site power",
                "watt",
                f'SELECT mean("power_w") FROM "energy" WHERE {SITE} '
                "AND \"role\" = 'main-supply' AND $timeFilter "
                "GROUP BY time($__interval) fill(null)",
            ),
            12,
            8,
        ),
    ]
    for p, w, h in panels:
        d.with_panel(lay.place(p, w, h))
    return d
