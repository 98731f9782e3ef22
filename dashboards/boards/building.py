"""The Building dashboard: district heat, water, and the weather heating is compared against."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards.panels import (
    SITE,
    WHERE,
    Layout,
    board,
    thresholds,
    ts_panel,
)


def building() -> db.Dashboard:
    """District heat, water and the weather that heating is compared against."""
    d = board("kera-building", "Kera: heat, water and weather", "heat", ["heat", "water"])
    lay = Layout()
    by_device = 'GROUP BY time($__interval), "device" fill(null)'
    d.with_panel(
        lay.place(
            ts_panel(
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
            ts_panel(
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
            ts_panel(
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
            ts_panel(
                "Cooling (ΔT): low means heat is wasted",
                "kelvin",
                f'SELECT mean("delta_t_k") FROM "heat" WHERE {WHERE} {by_device}',
            ).thresholds(thresholds((None, "red"), (20, "orange"), (30, "green"))),
            12,
            8,
        )
    )
    site_only = f"{SITE} AND $timeFilter"
    d.with_panel(
        lay.place(
            ts_panel(
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
            ts_panel(
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
            ts_panel(
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
