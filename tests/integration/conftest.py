"""Every test in this folder runs against the real Mosquitto and InfluxDB (and Chromium, serial
pty pairs, pymodbus): marked `integration` here, once, so the root conftest can skip them where
the Debian packages are missing (and fail in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_itemcollected(item: pytest.Item) -> None:
    if _HERE in Path(str(item.path)).parents:
        item.add_marker(pytest.mark.integration)
