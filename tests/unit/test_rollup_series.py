"""The rollups' per-device arrays against plain dicts: the readings (in order, late, duplicated)
and the computed hours (set, replaced, cleared, pruned, in any order)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.evaluation.rollups._energy import HOUR_MS
from ingest.evaluation.rollups._hours import Hours
from ingest.evaluation.rollups._kinds import EnergyHour
from ingest.evaluation.rollups._series import Series
from ingest.evaluation.rollups._space import SpaceHour

# Run again with the clock 400 days ahead by scripts/test (rollups).
pytestmark = pytest.mark.shifted_clock


@given(
    st.lists(
        st.tuples(
            st.integers(0, 500),
            st.floats(0, 1e6, allow_nan=False),
            st.none() | st.floats(-1e6, 1e6, allow_nan=False),
        ),
        max_size=200,
    ),
    st.integers(0, 50),
)
def test_series_is_a_sorted_dict_whose_last_write_wins(
    puts: list[tuple[int, float, float | None]], dropped: int
) -> None:
    s = Series()
    model: dict[int, tuple[float, float | None]] = {}
    for t, a, b in puts:
        assert s.put(t, a, b) == (t not in model)
        model[t] = (a, b)
    assert list(s.times) == sorted(model)
    for i, t in enumerate(s.times):
        assert s.primary[i] == model[t][0]
        assert s.secondary_at(i) == model[t][1]
    s.drop_first(dropped)
    assert list(s.times) == sorted(model)[dropped:]
    assert len(s) == len(s.primary) == len(s.secondary)


def test_absent_secondary_is_nan_inside() -> None:
    s = Series()
    s.put(5, 1.0, None)
    assert math.isnan(s.secondary[0])
    assert s.secondary_at(0) is None
    assert s.index(5) == 0
    assert s.index(6) == 1


HourOp = tuple[str, int, float]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "put", "put", "clear", "prune"]),
            st.integers(-30, 300),
            st.floats(-1e9, 1e9, allow_nan=False),
        ),
        max_size=120,
    ),
    st.integers(-40, 320),
    st.integers(-40, 320),
)
def test_hours_is_a_dict_of_hours(ops: list[HourOp], start: int, end: int) -> None:
    hours = Hours(2, lambda h, row: (h, row[0], row[1]))
    model: dict[int, tuple[int, float, float]] = {}
    for op, n, v in ops:
        hour = n * HOUR_MS
        if op == "put":
            hours.put(hour, (v, -v))
            model[hour] = (hour, v, -v)
        elif op == "clear":
            hours.clear(hour, hour + 5 * HOUR_MS)
            model = {h: x for h, x in model.items() if not hour <= h < hour + 5 * HOUR_MS}
        else:
            hours.prune(hour)
            model = {h: x for h, x in model.items() if h >= hour}
        assert [hours.get(h) for h in range(-40 * HOUR_MS, 320 * HOUR_MS, HOUR_MS)] == [
            model.get(h) for h in range(-40 * HOUR_MS, 320 * HOUR_MS, HOUR_MS)
        ]
    # Bounds that are not on the hour (a day starting at a half-hour offset) round up.
    lo, hi = start * HOUR_MS - HOUR_MS // 2, end * HOUR_MS + 1
    assert list(hours.items(lo, hi)) == sorted((h, x) for h, x in model.items() if lo <= h < hi)


def test_records_survive_their_rows() -> None:
    e = EnergyHour(1.5, None, None, True, 2, 10.0, 3, None)
    assert EnergyHour.unpack(0, e.pack()) == e
    e = EnergyHour(0.25, 0.0125, 0.05, False, 0, 0.0, 0, 712.5)
    assert EnergyHour.unpack(0, e.pack()) == e
    sh = SpaceHour(HOUR_MS, 3600.0, 3500.0, 1200.0, 900.0, 4000.0, 3000.0, 3500.0, 7, 600.0, 500.0)
    assert SpaceHour.unpack(HOUR_MS, sh.pack()) == sh
