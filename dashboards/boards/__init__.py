"""The operators' dashboards, one module each (docs/operators.md), built from dashboards.panels.
The uids are stable: provisioning and `kera-dashboards push` update dashboards in place."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.boards.air import air
from dashboards.boards.building import building
from dashboards.boards.devices import devices
from dashboards.boards.energy import energy
from dashboards.boards.impact import impact
from dashboards.boards.overview import overview
from dashboards.boards.pilots import periods_annotation, pilots
from dashboards.boards.pipeline import pipeline
from dashboards.boards.waste import waste

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


__all__ = [
    "DASHBOARDS",
    "air",
    "building",
    "dashboard_json",
    "devices",
    "energy",
    "impact",
    "overview",
    "periods_annotation",
    "pilots",
    "pipeline",
    "waste",
]
