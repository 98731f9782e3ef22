"""The operators' dashboards, built with grafana-foundation-sdk, InfluxQL only (docs/operators.md).

Every query filters on the template variables `$site`, `$space` and `$device` and uses Grafana's
`$timeFilter` and `$__interval`, so one dashboard serves every site and time range. The uids are
stable: provisioning and `kera-dashboards push` update dashboards in place.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from grafana_foundation_sdk.builders import (
    barchart,
    piechart,
    stat,
    statetimeline,
    table,
    text,
    timeseries,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.text import TextMode

from dashboards.influxql import DATASOURCE_TYPE, InfluxQL
from dashboards.provisioning import DATASOURCE_UID
from devices.contract import DEVICE_DAILY, ENERGY_HOURLY, IMPACT_DAILY, SPACE_DAILY, WASTE_DAILY
from devices.factor_source import ELECTRICITY_HOW_TO, HEAT_HOW_TO
from ingest.evaluation.rollups import qualified

DS = dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)
TZ = "tz('Europe/Helsinki')"

SITE = '"site" =~ /^$site$/'
SPACE = '"space" =~ /^$space$/'
DEVICE = '"device" =~ /^$device$/'
WHERE = f"{SITE} AND {SPACE} AND {DEVICE} AND $timeFilter"

Panel = Any  # a panel builder of any kind


def _thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def _var(name: str, label: str, query: str) -> db.QueryVariable:
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
        _var("site", "Site", 'SHOW TAG VALUES WITH KEY = "site"'),
        _var(
            "space",
            "Space",
            f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "space" WHERE {SITE}',
        ),
        _var(
            "device",
            "Device",
            f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "device" WHERE {SITE} AND {SPACE}',
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


class _AnnotationBuilder(db.AnnotationQuery):
    def build(self) -> dm.AnnotationQuery:
        base = super().build()
        return InfluxAnnotation(**{k: v for k, v in vars(base).items()})


def _alerts_annotation() -> db.AnnotationQuery:
    return (
        _AnnotationBuilder()
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


def _board(uid: str, title: str, measurement: str, tags: list[str]) -> db.Dashboard:
    d = (
        db.Dashboard(title)
        .uid(uid)
        .tags(["kera", *tags])
        .time("now-24h", "now")
        .refresh("1m")
        .timezone("browser")
        .editable()
        .annotation(_alerts_annotation())
    )
    for v in variables(measurement):
        d.with_variable(v)
    return d


def _ts(title: str, unit: str, *queries: str) -> timeseries.Panel:
    p = timeseries.Panel().title(title).datasource(DS).unit(unit)
    for i, q in enumerate(queries):
        p.with_target(InfluxQL(q).ref_id("ABCDEFGH"[i]))
    return p


def _stat(title: str, unit: str, query: str) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .datasource(DS)
        .unit(unit)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(InfluxQL(query))
    )


def _table(title: str, *queries: str) -> table.Panel:
    p = table.Panel().title(title).datasource(DS)
    for i, q in enumerate(queries):
        p.with_target(InfluxQL(q).ref_id("ABCDEFGH"[i]).table())
    return p


# -- the dashboards -----------------------------------------------------------------------------


def overview() -> db.Dashboard:
    """Site overview: how the place is doing right now."""
    d = _board("kera-overview", "Kera: site overview", "occupancy", ["overview"])
    lay = Layout()
    panels = [
        (
            _stat(
                "People on site now",
                "none",
                'SELECT sum("last") FROM (SELECT last("people") FROM "occupancy" '
                f'WHERE {SITE} AND $timeFilter GROUP BY "device")',
            ),
            4,
            5,
        ),
        (
            _stat(
                "Power now",
                "watt",
                'SELECT sum("last") FROM (SELECT last("power_w") FROM "energy" '
                f'WHERE {SITE} AND "role" = \'main-supply\' AND $timeFilter GROUP BY "device")',
            ),
            4,
            5,
        ),
        (
            _stat(
                "Energy today",
                "kwatth",
                f'SELECT spread("energy_kwh") FROM "energy" WHERE {SITE} '
                "AND \"role\" = 'main-supply' AND $timeFilter",
            ).time_from("now/d"),
            4,
            5,
        ),
        (
            _stat(
                "Bins over 80 %",
                "none",
                'SELECT count("last") FROM (SELECT last("fill_pct") FROM "waste_bin" '
                f'WHERE {SITE} AND $timeFilter GROUP BY "device") WHERE "last" >= 80',
            ).thresholds(_thresholds((None, "green"), (1, "orange"))),
            4,
            5,
        ),
        (
            _stat(
                "Alerts firing",
                "none",
                'SELECT count("last") FROM (SELECT last("firing") FROM "alerts" '
                f'WHERE {SITE} AND $timeFilter GROUP BY "rule", "device") WHERE "last" = true',
            ).thresholds(_thresholds((None, "green"), (1, "red"))),
            4,
            5,
        ),
        (
            _stat(
                "Devices offline",
                "none",
                'SELECT count("last") FROM (SELECT last("online") FROM "device_status" '
                f'WHERE {SITE} AND $timeFilter GROUP BY "device") WHERE "last" = false',
            ).thresholds(_thresholds((None, "green"), (1, "red"))),
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
            _ts(
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
            _ts(
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


def energy() -> db.Dashboard:
    """Energy: where the power goes, per meter, per day and per space."""
    d = _board("kera-energy", "Kera: energy", "energy", ["energy"])
    lay = Layout()
    d.with_panel(
        lay.place(
            _ts(
                "Power per meter",
                "watt",
                f'SELECT mean("power_w") FROM "energy" WHERE {WHERE} '
                'GROUP BY time($__interval), "device" fill(null)',
            ).legend(
                cb.VizLegendOptions()
                .show_legend(True)
                .display_mode(cm.LegendDisplayMode.TABLE)
                .placement(cm.LegendPlacement.RIGHT)
                .calcs(["mean", "max"])
            ),
            24,
            9,
        )
    )
    d.with_panel(
        lay.place(
            barchart.Panel()
            .title("Energy per day per meter")
            .datasource(DS)
            .unit("kwatth")
            .with_target(
                InfluxQL(
                    f'SELECT spread("energy_kwh") FROM "energy" WHERE {WHERE} '
                    f'GROUP BY time(1d), "device" fill(none) {TZ}'
                ).alias("$tag_device")
            ),
            16,
            9,
        )
    )
    d.with_panel(
        lay.place(
            piechart.Panel()
            .title("Share per space (sub-meters)")
            .datasource(DS)
            .unit("kwatth")
            .with_target(
                InfluxQL(
                    f'SELECT spread("energy_kwh") FROM "energy" WHERE {WHERE} '
                    "AND \"role\" != 'main-supply' AND \"role\" != 'pv-production' "
                    'GROUP BY "space"'
                ).alias("$tag_space")
            ),
            8,
            9,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Exported energy per day",
                "kwatth",
                f'SELECT spread("energy_export_kwh") FROM "energy" WHERE {WHERE} '
                f'GROUP BY time(1d), "device" fill(none) {TZ}',
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Voltage per phase",
                "volt",
                f'SELECT mean("voltage_v") AS "mean", mean("voltage_l1_v") AS "L1", '
                f'mean("voltage_l2_v") AS "L2", mean("voltage_l3_v") AS "L3" FROM "energy" '
                f'WHERE {WHERE} GROUP BY time($__interval), "device" fill(null)',
            ),
            12,
            8,
        )
    )
    return d


def air() -> db.Dashboard:
    """Indoor air and occupancy, per room."""
    d = _board("kera-air", "Kera: indoor air and occupancy", "occupancy", ["air", "occupancy"])
    lay = Layout()
    per_room = 'GROUP BY time($__interval), "space" fill(null)'
    d.with_panel(
        lay.place(
            _ts(
                "People per room",
                "none",
                f'SELECT mean("people") FROM "occupancy" WHERE {WHERE} {per_room}',
            ),
            12,
            9,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "CO₂",
                "ppm",
                f'SELECT mean("co2_ppm") FROM "occupancy" WHERE {WHERE} {per_room}',
            )
            .thresholds(_thresholds((None, "green"), (800, "orange"), (1200, "red")))
            .thresholds_style(
                cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE_AND_AREA)
            ),
            12,
            9,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Temperature",
                "celsius",
                f'SELECT mean("temperature_c") FROM "occupancy" WHERE {WHERE} {per_room}',
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Relative humidity",
                "humidity",
                f'SELECT mean("humidity_pct") FROM "occupancy" WHERE {WHERE} {per_room}',
            ).thresholds(_thresholds((None, "orange"), (25, "green"), (60, "orange"))),
            12,
            8,
        )
    )
    # Rooms whose sensor counts no people (kind indoor_air): their own measurement, filtered
    # by site and time only, since the space and device lists come from the occupancy sensors.
    air_only = f'{SITE} AND $timeFilter GROUP BY time($__interval), "space" fill(null)'
    d.with_panel(
        lay.place(
            _ts(
                "CO₂, rooms without people counting",
                "ppm",
                f'SELECT mean("co2_ppm") FROM "indoor_air" WHERE {air_only}',
            ).thresholds(_thresholds((None, "green"), (800, "orange"), (1200, "red"))),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Particles and TVOC",
                "conμgm3",
                f'SELECT mean("pm2_5_ugm3") AS "PM2.5" FROM "indoor_air" WHERE {air_only}',
                f'SELECT mean("pm10_ugm3") AS "PM10" FROM "indoor_air" WHERE {air_only}',
                f'SELECT mean("tvoc_ugm3") AS "TVOC" FROM "indoor_air" WHERE {air_only}',
            ),
            12,
            8,
        )
    )
    counted = f'{SITE} AND $timeFilter GROUP BY time($__interval), "device" fill(null)'
    d.with_panel(
        lay.place(
            _ts(
                "People counters: in the area, in and out",
                "none",
                f'SELECT last("people") AS "people" FROM "people_counter" WHERE {counted}',
                f'SELECT sum("count_in") AS "in" FROM "people_counter" WHERE {counted}',
                f'SELECT sum("count_out") AS "out" FROM "people_counter" WHERE {counted}',
            ),
            24,
            8,
        )
    )
    return d


def building() -> db.Dashboard:
    """District heat, water and the weather that heating is compared against."""
    d = _board("kera-building", "Kera: heat, water and weather", "heat", ["heat", "water"])
    lay = Layout()
    by_device = 'GROUP BY time($__interval), "device" fill(null)'
    d.with_panel(
        lay.place(
            _ts(
                "District heat power",
                "kwatt",
                f'SELECT mean("heat_power_kw") FROM "heat" WHERE {WHERE} {by_device}',
            ),
            12,
            9,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Heat per hour (from the counter)",
                "kwatth",
                f'SELECT non_negative_difference(last("heat_energy_kwh")) FROM "heat" '
                f'WHERE {WHERE} GROUP BY time(1h), "device" fill(null)',
            ),
            12,
            9,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Supply and return temperature",
                "celsius",
                f'SELECT mean("supply_temp_c") AS "supply" FROM "heat" WHERE {WHERE} {by_device}',
                f'SELECT mean("return_temp_c") AS "return" FROM "heat" WHERE {WHERE} {by_device}',
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Cooling (ΔT): low means heat is wasted",
                "kelvin",
                f'SELECT mean("delta_t_k") FROM "heat" WHERE {WHERE} {by_device}',
            ).thresholds(_thresholds((None, "red"), (20, "orange"), (30, "green"))),
            12,
            8,
        )
    )
    site_only = f"{SITE} AND $timeFilter"
    d.with_panel(
        lay.place(
            _ts(
                "Water per hour",
                "m3",
                f'SELECT non_negative_difference(last("volume_m3")) FROM "water" '
                f'WHERE {site_only} GROUP BY time(1h), "device" fill(null)',
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Outdoor temperature",
                "celsius",
                f'SELECT mean("temperature_c") FROM "weather" WHERE {site_only} '
                "GROUP BY time($__interval) fill(null)",
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Sun and wind",
                "none",
                f'SELECT mean("solar_irradiance_wm2") AS "W/m²" FROM "weather" WHERE {site_only} '
                "GROUP BY time($__interval) fill(null)",
                f'SELECT mean("wind_speed_ms") AS "wind m/s" FROM "weather" WHERE {site_only} '
                "GROUP BY time($__interval) fill(null)",
            ),
            24,
            8,
        )
    )
    return d


def waste() -> db.Dashboard:
    """Waste: how full each bin is, when it will be full, when it was emptied."""
    d = _board("kera-waste", "Kera: waste", "waste_bin", ["waste"])
    lay = Layout()
    d.with_panel(
        lay.place(
            _ts(
                "Fill level per bin",
                "percent",
                f'SELECT mean("fill_pct") FROM "waste_bin" WHERE {WHERE} '
                'GROUP BY time($__interval), "device", "fraction" fill(null)',
            )
            .min(0)
            .max(100)
            .thresholds(_thresholds((None, "green"), (80, "orange"), (95, "red")))
            .thresholds_style(
                cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
            ),
            24,
            9,
        )
    )
    d.with_panel(
        lay.place(
            _table(
                "Now, and hours to full at the last 6 hours' rate",
                'SELECT last("fill_pct") AS "fill_pct", '
                '(100 - last("fill_pct")) / ((last("fill_pct") - first("fill_pct")) / 6) '
                'AS "hours_to_full" FROM "waste_bin" '
                f"WHERE {SITE} AND {SPACE} AND {DEVICE} AND time > now() - 6h "
                'GROUP BY "device", "fraction"',
            ),
            12,
            9,
        )
    )
    d.with_panel(
        lay.place(
            _table(
                "Emptying events",
                'SELECT "drop" FROM (SELECT difference(max("fill_pct")) AS "drop" '
                f'FROM "waste_bin" WHERE {WHERE} GROUP BY time(30m), "device") '
                'WHERE "drop" < -30 GROUP BY "device"',
            ),
            12,
            9,
        )
    )
    return d


def devices() -> db.Dashboard:
    """Devices: which are alive, on what battery and signal, and which send rubbish."""
    d = _board("kera-devices", "Kera: devices", "device_status", ["devices"])
    lay = Layout()
    d.with_panel(
        lay.place(
            _table(
                "Last seen (last reading per device)",
                f'SELECT last("power_w") AS "power_w" FROM "energy" WHERE {WHERE} '
                'GROUP BY "device"',
                f'SELECT last("people") AS "people" FROM "occupancy" WHERE {WHERE} '
                'GROUP BY "device"',
                f'SELECT last("fill_pct") AS "fill_pct" FROM "waste_bin" WHERE {WHERE} '
                'GROUP BY "device"',
            ),
            12,
            10,
        )
    )
    d.with_panel(
        lay.place(
            _table(
                "Offline now",
                'SELECT "last" FROM (SELECT last("online") FROM "device_status" '
                f'WHERE {WHERE} GROUP BY "device") WHERE "last" = false GROUP BY "device"',
            ),
            12,
            10,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Battery",
                "percent",
                f'SELECT mean("battery_pct") FROM "waste_bin" WHERE {WHERE} '
                'GROUP BY time($__interval), "device" fill(null)',
            ).thresholds(_thresholds((None, "red"), (15, "orange"), (30, "green"))),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Radio signal (LoRaWAN)",
                "dBm",
                f'SELECT mean("rssi_dbm") FROM "device_status" WHERE {WHERE} '
                'GROUP BY time($__interval), "device" fill(null)',
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Readings rejected per device",
                "none",
                f'SELECT sum("rejected") FROM "rejections" WHERE {SITE} AND {DEVICE} '
                'AND $timeFilter GROUP BY time($__interval), "device" fill(0)',
            ).draw_style(cm.GraphDrawStyle.BARS),
            24,
            8,
        )
    )
    return d


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
    d.with_variable(_var("site", "Site", 'SHOW TAG VALUES FROM "pipeline" WITH KEY = "site"'))
    d.with_variable(
        _var(
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
        d.with_panel(lay.place(_ts(title, unit, query), w, 8))
    return d


def impact(rollups_rp: str | None = None) -> db.Dashboard:
    """Impact: the figures partners and the city quote, from the rollups (docs/impact.md), so
    they stay available after the raw readings expire. `rollups_rp`: the retention policy they
    are written to (KERA_ROLLUPS_RP), if not the database's default."""

    def m(measurement: str) -> str:
        return qualified(measurement, rollups_rp)

    d = (
        db.Dashboard("Kera: impact")
        .uid("kera-impact")
        .tags(["kera", "impact"])
        .time("now-30d", "now")
        .refresh("5m")
        .timezone("browser")
        .editable()
        .annotation(_alerts_annotation())
        .with_variable(_var("site", "Site", 'SHOW TAG VALUES WITH KEY = "site"'))
        .with_variable(
            _var(
                "space",
                "Space",
                f'SHOW TAG VALUES FROM {m(SPACE_DAILY)} WITH KEY = "space" WHERE {SITE}',
            )
        )
    )
    site_days = f"{SITE} AND $timeFilter"
    space_days = f"{SITE} AND {SPACE} AND $timeFilter"
    lay = Layout()
    # First, what the emissions below rest on: every factor the range's days were computed
    # with (stored beside them), so an example factor is seen before any figure is quoted.
    for title, field in (
        ("Electricity emission factor", "factor_source"),
        ("District-heat emission factor", "heat_factor_source"),
    ):
        d.with_panel(
            lay.place(
                _table(
                    f"{title} in this range",
                    f'SELECT distinct("{field}") AS "source" FROM {m(IMPACT_DAILY)} '
                    f"WHERE {site_days}",
                ).description(
                    "Each source the days in the time range were rolled up with: a publication "
                    "(publisher, year: where) or an EXAMPLE factor, not a published statistic"
                ),
                8,
                4,
            )
        )
    d.with_panel(
        lay.place(
            text.Panel()
            .title("About the emission factors")
            .mode(TextMode.MARKDOWN)
            .content(
                "A factor marked **EXAMPLE** is not a published statistic: emissions computed "
                "with it are an illustration, not a figure to report.\n\n"
                f"Electricity: {ELECTRICITY_HOW_TO}.\n\nDistrict heat: {HEAT_HOW_TO}. Then "
                "recompute the days with `kera-ingest rollups --week W`."
            ),
            8,
            4,
        )
    )
    for title, unit, q in (
        (
            "Grid energy",
            "kwatth",
            f'SELECT sum("supply_kwh") FROM {m(IMPACT_DAILY)} WHERE {site_days}',
        ),
        ("Emissions", "masskg", f'SELECT sum("kgco2e") FROM {m(IMPACT_DAILY)} WHERE {site_days}'),
        (
            "Solar produced",
            "kwatth",
            f'SELECT sum("pv_kwh") FROM {m(IMPACT_DAILY)} WHERE {site_days}',
        ),
        (
            "Sorting rate",
            "percent",
            'SELECT sum("sorted_l") / sum("waste_l") * 100 '
            f"FROM {m('impact_daily')} WHERE {site_days}",
        ),
        (
            "Space utilisation",
            "percent",
            f'SELECT sum("occupied_open_s") / sum("open_s") * 100 FROM {m(SPACE_DAILY)} '
            f"WHERE {space_days}",
        ),
        (
            "Good air (CO2 < 1000 ppm)",
            "percent",
            f'SELECT sum("co2_good_s") / sum("co2_occupied_s") * 100 FROM {m(SPACE_DAILY)} '
            f"WHERE {space_days}",
        ),
    ):
        panel = _stat(title, unit, q).reduce_options(cb.ReduceDataOptions().calcs(["sum"]))
        d.with_panel(lay.place(panel, 4, 4))
    d.with_panel(
        lay.place(
            barchart.Panel()
            .title("Energy per day")
            .datasource(DS)
            .unit("kwatth")
            .with_target(
                InfluxQL(
                    'SELECT sum("supply_kwh") AS "grid", sum("pv_kwh") AS "solar" '
                    f"FROM {m('impact_daily')} WHERE {site_days} GROUP BY time(1d) fill(0) {TZ}"
                )
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _ts(
                "Emissions per hour (grid supply)",
                "masskg",
                f'SELECT sum("kgco2e") FROM {m(ENERGY_HOURLY)} WHERE {site_days} '
                "AND \"role\" = 'main-supply' GROUP BY time(1h) fill(null)",
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _table(
                "Energy and emissions per space",
                'SELECT sum("kwh") AS "kWh", sum("kgco2e") AS "kgCO2e", '
                'sum("supply_kwh") AS "supply kWh", sum("pv_kwh") AS "solar kWh" '
                f'FROM {m(SPACE_DAILY)} WHERE {space_days} GROUP BY "space"',
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            piechart.Panel()
            .title("Waste collected per fraction")
            .datasource(DS)
            .unit("litre")
            .with_target(
                InfluxQL(
                    f'SELECT sum("volume_l") FROM {m(WASTE_DAILY)} WHERE {space_days} '
                    'GROUP BY "fraction"'
                ).alias("$tag_fraction")
            ),
            6,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _table(
                "Emptyings: too early (< 50 %) and too late (overflowing)",
                'SELECT sum("emptyings") AS "emptyings", sum("too_early") AS "too early", '
                'sum("too_late") AS "too late", sum("volume_l") AS "litres" '
                f'FROM {m(WASTE_DAILY)} WHERE {space_days} GROUP BY "device"',
            ),
            6,
            8,
        )
    )
    d.with_panel(
        lay.place(
            barchart.Panel()
            .title("Hours of use per space per week")
            .datasource(DS)
            .unit("h")
            .with_target(
                InfluxQL(
                    f'SELECT sum("occupied_s") / 3600 FROM {m(SPACE_DAILY)} '
                    f'WHERE {space_days} GROUP BY time(1w, 4d), "space" fill(0) {TZ}'
                ).alias("$tag_space")
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _table(
                "Space use while open",
                'SELECT sum("occupied_open_s") / sum("open_s") * 100 AS "utilisation %", '
                'sum("people_open_s") / sum("measured_open_s") AS "mean people", '
                'max("people_peak") AS "peak people", '
                'sum("co2_good_s") / sum("co2_occupied_s") * 100 AS "good air %" '
                f'FROM {m(SPACE_DAILY)} WHERE {space_days} GROUP BY "space"',
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            _table(
                "Data completeness per device",
                'SELECT sum("readings") / sum("expected") * 100 AS "completeness %", '
                'sum("readings") AS "readings" '
                f'FROM {m(DEVICE_DAILY)} WHERE {space_days} GROUP BY "device"',
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            barchart.Panel()
            .title("District heat per day, and its emissions")
            .datasource(DS)
            .unit("kwatth")
            .with_target(
                InfluxQL(
                    'SELECT sum("heat_kwh") AS "heat kWh", sum("heat_kgco2e") AS "heat kgCO2e" '
                    f"FROM {m('impact_daily')} WHERE {site_days} GROUP BY time(1d) fill(0) {TZ}"
                )
            ),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            barchart.Panel()
            .title("Water per day")
            .datasource(DS)
            .unit("m3")
            .with_target(
                InfluxQL(
                    'SELECT sum("water_m3") AS "water" '
                    f"FROM {m('impact_daily')} WHERE {site_days} GROUP BY time(1d) fill(0) {TZ}"
                )
            ),
            12,
            8,
        )
    )
    return d


DASHBOARDS: list[Callable[[], db.Dashboard]] = [
    overview,
    energy,
    air,
    building,
    waste,
    devices,
    pipeline,
    impact,
]


def dashboard_json(builder: db.Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model."""
    out: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))
    return out
