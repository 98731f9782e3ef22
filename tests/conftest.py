"""Shared fixtures: a real InfluxDB per test session (a database per test) and a real Mosquitto
per test, on free loopback ports with temporary folders."""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.services import InfluxDB, Mosquitto, missing_binaries
from ingest.settings import IngestSettings
from tests.helpers import local_settings

_counter = itertools.count()
_REPO = Path(__file__).resolve().parents[1]


def _git_status() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=all"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None  # not a checkout (an unpacked release): nothing to compare
    return out.stdout


def pytest_configure(config: pytest.Config) -> None:
    # Whatever a test or a CLI it runs writes at run time goes to a temporary state directory,
    # never into the checkout or the user's own state directory.
    # Set but empty counts as not set (devices/environment.py), so it is replaced too.
    if not os.environ.get("KERA_STATE_DIR"):
        os.environ["KERA_STATE_DIR"] = tempfile.mkdtemp(prefix="kera-test-state-")
    config.stash[_STATUS] = _git_status()


_STATUS = pytest.StashKey[str | None]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite fails if it left anything in the repository tree (git status changed)."""
    before = session.config.stash.get(_STATUS, None)
    after = _git_status()
    if before is None or after is None or after == before:
        return
    new = sorted(set(after.splitlines()) - set(before.splitlines()))
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "the tests left files in the repository tree (git status):\n  " + "\n  ".join(new)
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
