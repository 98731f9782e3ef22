"""The rollups' per-device reading arrays against a plain dict: in order, late, duplicated."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from ingest.rollups._series import Series


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
