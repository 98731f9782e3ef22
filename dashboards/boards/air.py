"""The Air dashboard: indoor air and occupancy, per room."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm

from dashboards.panels import (
    SITE,
    WHERE,
    Layout,
    board,
    thresholds,
    ts_panel,
)


def air() -> db.Dashboard:
    """Indoor air and occupancy, per room."""
    d = board("kera-air", "Kera: indoor air and occupancy", "occupancy", ["air", "occupancy"])
    lay = Layout()
    per_room = 'GROUP BY time($__interval), "space" fill(null)'
    d.with_panel(
        lay.place(
            ts_panel(
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
            ts_panel(
                "CO₂",
                "ppm",
                f'SELECT mean("co2_ppm") FROM "occupancy" WHERE {WHERE} {per_room}',
            )
            .thresholds(thresholds((None, "green"), (800, "orange"), (1200, "red")))
            .thresholds_style(
                cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE_AND_AREA)
            ),
            12,
            9,
        )
    )
    d.with_panel(
        lay.place(
            ts_panel(
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
            ts_panel(
                "Relative humidity",
                "humidity",
                f'SELECT mean("humidity_pct") FROM "occupancy" WHERE {WHERE} {per_room}',
            ).thresholds(thresholds((None, "orange"), (25, "green"), (60, "orange"))),
            12,
            8,
        )
    )
    # Rooms whose sensor counts no people (kind indoor_air): their own measurement, filtered
    # by site and time only, since the space and device lists come from the occupancy sensors.
    air_only = f'{SITE} AND $timeFilter GROUP BY time($__interval), "space" fill(null)'
    d.with_panel(
        lay.place(
            ts_panel(
                "CO₂, rooms without people counting",
                "ppm",
                f'SELECT mean("co2_ppm") FROM "indoor_air" WHERE {air_only}',
            ).thresholds(thresholds((None, "green"), (800, "orange"), (1200, "red"))),
            12,
            8,
        )
    )
    d.with_panel(
        lay.place(
            ts_panel(
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
            ts_panel(
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
