"""The Kera ingestor: MQTT readings, checked against the site registry, into InfluxDB.

The names below load their module on first use, so `import ingest.reading` (the simulator, the
dashboards, the tests) does not pull in the service, its MQTT client and its HTTP server."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest.observability.counters import Stats
    from ingest.reading import Decoded, Reading, Reason, Rejected
    from ingest.service import Ingestor
    from ingest.settings import IngestSettings, load_settings

_WHERE = {
    "Decoded": "ingest.reading",
    "Reading": "ingest.reading",
    "Reason": "ingest.reading",
    "Rejected": "ingest.reading",
    "Ingestor": "ingest.service",
    "IngestSettings": "ingest.settings",
    "load_settings": "ingest.settings",
    "Stats": "ingest.observability.counters",
}

__all__ = [
    "Decoded",
    "IngestSettings",
    "Ingestor",
    "Reading",
    "Reason",
    "Rejected",
    "Stats",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ingest' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
