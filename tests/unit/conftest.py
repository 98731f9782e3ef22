"""Every unit test also runs with the clock 400 days ahead (`shifted_clock`, scripts/test): they
hold no server whose clock libfaketime cannot move, so any of them may hide a fixed date."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_itemcollected(item: pytest.Item) -> None:
    if _HERE in Path(str(item.path)).parents:
        item.add_marker(pytest.mark.shifted_clock)
