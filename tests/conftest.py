"""Shared fixtures: a real InfluxDB per test session (a database per test) and a real Mosquitto
per test, on free loopback ports with temporary folders."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.services import InfluxDB, Mosquitto, missing_binaries
from ingest.settings import IngestSettings
from tests.helpers import local_settings

_counter = itertools.count()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = missing_binaries()
    if not missing:
        return
    # In CI a missing server is a broken set-up, not a reason to skip.
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI is missing Debian packages: {' '.join(missing)}")
    skip = pytest.mark.skip(reason=f"apt-get install {' '.join(missing)}")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    db = InfluxDB(tmp_path_factory.mktemp("influxdb")).start()
    yield db
    db.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "mosquitto").start()
    yield b
    b.stop()


@pytest.fixture
def database() -> str:
    """A database name of this test's own in the shared InfluxDB."""
    return f"t{os.getpid()}_{next(_counter)}"


@pytest.fixture
def settings(broker: Mosquitto, influx: InfluxDB, database: str, tmp_path: Path) -> IngestSettings:
    return local_settings(broker.url, influx.url, database, tmp_path)
