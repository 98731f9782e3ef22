"""The Waste dashboard: how full each bin is, when it will be full, when it was emptied."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm

from dashboards.panels import (
    DEVICE,
    SITE,
    SPACE,
    WHERE,
    Layout,
    board,
    table_panel,
    thresholds,
    ts_panel,
)


def waste() -> db.Dashboard:
    """Waste: how full each bin is, when it will be full, when it was emptied."""
    d = board("kera-waste", "Kera: waste", "waste_bin", ["waste"])
    lay = Layout()
    d.with_panel(
        lay.place(
            ts_panel(
                "Fill level per bin",
                "percent",
                f'SELECT mean("fill_pct") FROM "waste_bin" WHERE {WHERE} '
                'GROUP BY time($__interval), "device", "fraction" fill(null)',
            )
            .min(0)
            .max(100)
            .thresholds(thresholds((None, "green"), (80, "orange"), (95, "red")))
            .thresholds_style(
                cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
            ),
            24,
            9,
        )
    )
    d.with_panel(
        lay.place(
            table_panel(
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
            table_panel(
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
