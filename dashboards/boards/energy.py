"""The Energy dashboard: where the power goes, per meter, per day and per space."""

from __future__ import annotations

from grafana_foundation_sdk.builders import (
    barchart,
    piechart,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm

from dashboards.influxql import InfluxQL
from dashboards.panels import (
    DS,
    TZ,
    WHERE,
    Layout,
    board,
    ts_panel,
)


def energy() -> db.Dashboard:
    """Energy: where the power goes, per meter, per day and per space."""
    d = board("kera-energy", "Kera: energy", "energy", ["energy"])
    lay = Layout()
    d.with_panel(
        lay.place(
            ts_panel(
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
            ts_panel(
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
            ts_panel(
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
