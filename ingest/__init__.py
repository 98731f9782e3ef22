"""The Kera ingestor: MQTT readings, checked against the site registry, into InfluxDB."""

from ingest.reading import Decoded, Reading, Reason, Rejected
from ingest.service import Ingestor
from ingest.settings import IngestSettings, load_settings
from ingest.stats import Stats

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
