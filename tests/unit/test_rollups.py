"""Hourly energy from cumulative counters, against hand-computed answers: steady readings, a
counter reset, a gap, a late reading and a duplicate."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.evaluation.rollups import HOUR_MS, emissions_kg, hourly_kwh

# Run again with the clock 400 days ahead by scripts/test (rollups).
pytestmark = pytest.mark.shifted_clock

H = 1_795_000_000_000 - 1_795_000_000_000 % HOUR_MS  # an hour boundary
MIN = 60_000


def test_readings_every_15_minutes() -> None:
    # 2 kWh per 15 min, from 10:00 to 12:00: 8 kWh in each hour.
    readings = [(H + i * 15 * MIN, 100.0 + 2 * i) for i in range(9)]
    hours = hourly_kwh(readings)
    assert [(h.hour_ms, h.kwh) for h in hours] == [(H, 8.0), (H + HOUR_MS, 8.0)]
    assert not any(h.interpolated or h.resets for h in hours)


def test_interval_across_an_hour_boundary_is_split_by_time() -> None:
    # 10:45 -> 11:15 with 3 kWh: half in each hour.
    hours = hourly_kwh([(H + 45 * MIN, 10.0), (H + 75 * MIN, 13.0)])
    assert [h.kwh for h in hours] == [1.5, 1.5]


def test_counter_reset_counts_from_zero() -> None:
    # 500 -> 510 (10 kWh), then the meter is swapped and reads 4 at the next reading: 4 kWh.
    hours = hourly_kwh([(H, 500.0), (H + 30 * MIN, 510.0), (H + 50 * MIN, 4.0)])
    assert hours[0].kwh == pytest.approx(14.0)
    assert hours[0].resets == 1


def test_gap_is_spread_over_its_hours_and_marked() -> None:
    # Last reading 10:00 at 100 kWh, next at 13:00 at 130: 10 kWh in each of three hours.
    hours = hourly_kwh([(H, 100.0), (H + 3 * HOUR_MS, 130.0)], max_gap_s=3600)
    assert [(h.kwh, h.interpolated) for h in hours] == [(10.0, True)] * 3


def test_late_reading_and_duplicate_give_the_in_order_answer() -> None:
    in_order = [(H + i * 10 * MIN, float(i * i)) for i in range(13)]
    late = in_order[:5] + in_order[6:] + [in_order[5]]  # one reading arrives last
    duplicated = [*in_order[:7], (in_order[6][0], 999.0), in_order[6], *in_order[7:]]
    assert hourly_kwh(late) == hourly_kwh(in_order)
    assert hourly_kwh(duplicated) == hourly_kwh(in_order)  # the last value for a time wins


@given(st.lists(st.tuples(st.integers(0, 6 * HOUR_MS), st.floats(0, 1e6)), min_size=2, max_size=40))
def test_total_is_the_sum_of_increases(readings: list[tuple[int, float]]) -> None:
    points = sorted(dict(readings).items())
    expected = 0.0
    for (_, a), (_, b) in itertools.pairwise(points):
        expected += b - a if b >= a else b
    total = sum(h.kwh for h in hourly_kwh(readings))
    assert total == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert all(h.kwh >= 0 for h in hourly_kwh(readings))


def test_emissions() -> None:
    assert emissions_kg(100.0, 0.072) == pytest.approx(7.2)
