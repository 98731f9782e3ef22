"""What every dashboard is built from (grafana-foundation-sdk, InfluxQL only): the datasource,
the `$site`, `$space` and `$device` filters and variables, the alerts annotation, the layout and
the three panel kinds. Each board (dashboards/boards/) and the Pilots board use these.

Every query filters on the template variables and uses Grafana's `$timeFilter` and
`$__interval`, so one dashboard serves every site and time range.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import (
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.influxql import DATASOURCE_TYPE, InfluxQL
from dashboards.provisioning import DATASOURCE_UID
from ingest.storage.influxql import ident

DS = dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
TZ = "tz('Europe/Helsinki')"

SITE = '"site" =~ /^$site$/'
SPACE = '"space" =~ /^$space$/'
DEVICE = '"device" =~ /^$device$/'
WHERE = f"{SITE} AND {SPACE} AND {DEVICE} AND $timeFilter"

Panel = Any  # a panel builder of any kind


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def query_variable(name: str, label: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def variables(measurement: str) -> list[db.QueryVariable]:
    """site, then space within it, then device within those: each list narrows the next."""
    return [
        query_variable("site", "Site", 'SHOW TAG VALUES WITH KEY = "site"'),
        query_variable(
            "space",
            "Space",
            f'SHOW TAG VALUES FROM {ident(measurement)} WITH KEY = "space" WHERE {SITE}',
        ),
        query_variable(
            "device",
            "Device",
            f'SHOW TAG VALUES FROM {ident(measurement)} WITH KEY = "device" '
            f"WHERE {SITE} AND {SPACE}",
        ),
    ]


ALERTS_ANNOTATION_QUERY = (
    f'SELECT "message" FROM "alerts" WHERE {SITE} AND "firing" = true AND $timeFilter'
)


class InfluxAnnotation(dm.AnnotationQuery):
    """An InfluxQL annotation query. The SDK's model has no field for it (only Prometheus's
    `expr`), so this adds Grafana's `query` and `rawQuery` keys to the JSON."""

    def to_json(self) -> dict[str, object]:
        out = super().to_json()
        out["query"] = self.expr
        out["rawQuery"] = True
        return out


class AnnotationBuilder(db.AnnotationQuery):
    def build(self) -> dm.AnnotationQuery:
        base = super().build()
        return InfluxAnnotation(**{k: v for k, v in vars(base).items()})


def alerts_annotation() -> db.AnnotationQuery:
    return (
        AnnotationBuilder()
        .name("Kera alerts")
        .datasource(DS)
        .enable(True)
        .icon_color("red")
        .expr(ALERTS_ANNOTATION_QUERY)
    )


class Layout:
    """Panels left to right, 24 columns wide, wrapping to the next row."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0

    def place(self, panel: Panel, w: int, h: int) -> Panel:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel.grid_pos(dm.GridPos(h=h, w=w, x=self.x, y=self.y))
        self.x += w
        self.row_h = max(self.row_h, h)
        return panel


def board(uid: str, title: str, measurement: str, tags: list[str]) -> db.Dashboard:
    d = (
        db.Dashboard(title)
        .uid(uid)
        .tags(["kera", *tags])
        .time("now-24h", "now")
        .refresh("1m")
        .timezone("browser")
        .editable()
        .annotation(alerts_annotation())
    )
    for v in variables(measurement):
        d.with_variable(v)
    return d


def ts_panel(title: str, unit: str, *queries: str) -> timeseries.Panel:
    p = timeseries.Panel().title(title).datasource(DS).unit(unit)
    for i, q in enumerate(queries):
        p.with_target(InfluxQL(q).ref_id("ABCDEFGH"[i]))
    return p


def stat_panel(title: str, unit: str, query: str) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .datasource(DS)
        .unit(unit)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(InfluxQL(query))
    )


def table_panel(title: str, *queries: str) -> table.Panel:
    p = table.Panel().title(title).datasource(DS)
    for i, q in enumerate(queries):
        p.with_target(InfluxQL(q).ref_id("ABCDEFGH"[i]).table())
    return p


# -- the dashboards -----------------------------------------------------------------------------
