"""The Impact dashboard: the figures partners and the city quote, from the rollups
(docs/impact.md)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import (
    barchart,
    piechart,
    text,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models.text import TextMode

from dashboards.influxql import InfluxQL
from dashboards.panels import (
    DS,
    SITE,
    SPACE,
    TZ,
    Layout,
    alerts_annotation,
    query_variable,
    stat_panel,
    table_panel,
    ts_panel,
)
from devices.contract import DEVICE_DAILY, ENERGY_HOURLY, IMPACT_DAILY, SPACE_DAILY, WASTE_DAILY
from devices.factor_source import ELECTRICITY_HOW_TO, HEAT_HOW_TO
from ingest.evaluation.rollups import qualified
from ingest.storage.influxql import ident


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
        .annotation(alerts_annotation())
        .with_variable(query_variable("site", "Site", 'SHOW TAG VALUES WITH KEY = "site"'))
        .with_variable(
            query_variable(
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
                table_panel(
                    f"{title} in this range",
                    f'SELECT distinct({ident(field)}) AS "source" FROM {m(IMPACT_DAILY)} '
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
        panel = stat_panel(title, unit, q).reduce_options(cb.ReduceDataOptions().calcs(["sum"]))
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
            ts_panel(
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
            table_panel(
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
            table_panel(
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
            table_panel(
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
            table_panel(
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
