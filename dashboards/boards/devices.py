"""The Devices dashboard: which devices are alive, on what battery and signal, and which send
rubbish."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm

from dashboards.panels import (
    DEVICE,
    SITE,
    WHERE,
    Layout,
    board,
    table_panel,
    thresholds,
    ts_panel,
)


def devices() -> db.Dashboard:
    """Devices: which are alive, on what battery and signal, and which send rubbish."""
    d = board("kera-devices", "Kera: devices", "device_status", ["devices"])
    lay = Layout()
    d.with_panel(
        lay.place(
            table_panel(
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
            table_panel(
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
            ts_panel(
                "Battery",
                "percent",
                f'SELECT mean("battery_pct") FROM "waste_bin" WHERE {WHERE} '
                'GROUP BY time($__interval), "device" fill(null)',
            ).thresholds(thresholds((None, "red"), (15, "orange"), (30, "green"))),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            ts_panel(
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
            ts_panel(
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
