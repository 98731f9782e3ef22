"""A space's hour of use against the definition, evaluated segment by segment: at every cut,
each sensor's latest reading holds if it is younger than the hold; the space's people are their
sum, its CO2 the highest. The sweep must give the same floats, with one sensor or sixty."""

from __future__ import annotations

import bisect
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.evaluation.rollups._energy import HOUR_MS
from ingest.evaluation.rollups._space import CO2_GOOD_PPM, OccupancySeries, SpaceHour, space_hour

# Run again with the clock 400 days ahead by scripts/test (rollups).
pytestmark = pytest.mark.shifted_clock

HOUR = 10 * HOUR_MS


def by_definition(
    sensors: list[OccupancySeries], hold_ms: int, opening: list[tuple[int, int]]
) -> SpaceHour:
    end = HOUR + HOUR_MS
    cuts = {HOUR, end, *(x for span in opening for x in span)}
    cuts |= {c for s in sensors for t, _, _ in s for c in (t, t + hold_ms) if HOUR < c < end}
    totals = dict.fromkeys(("measured", "occupied", "occupied_open", "people_s", "co2_occ",
                            "co2_good", "measured_open", "people_open"), 0.0)  # fmt: skip
    peak = 0
    for a, b in itertools.pairwise(sorted(cuts)):
        held = []
        for s in sensors:
            i = bisect.bisect_right([t for t, _, _ in s], a) - 1
            if i >= 0 and a < s[i][0] + hold_ms:
                held.append(s[i])
        if not held:
            continue
        people = sum(count for _, count, _ in held)
        co2 = max((ppm for _, _, ppm in held if ppm is not None), default=None)
        sec = (b - a) / 1000
        sec_open = sum(max(0, min(b, hi) - max(a, lo)) for lo, hi in opening) / 1000
        totals["measured"] += sec
        totals["measured_open"] += sec_open
        totals["people_s"] += people * sec
        totals["people_open"] += people * sec_open
        peak = max(peak, people)
        if people > 0:
            totals["occupied"] += sec
            totals["occupied_open"] += sec_open
            if co2 is not None:
                totals["co2_occ"] += sec
                if co2 < CO2_GOOD_PPM:
                    totals["co2_good"] += sec
    return SpaceHour(
        HOUR, sum(hi - lo for lo, hi in opening) / 1000, totals["measured"], totals["occupied"],
        totals["occupied_open"], totals["people_s"], totals["measured_open"],
        totals["people_open"], peak, totals["co2_occ"], totals["co2_good"],
    )  # fmt: skip


def series() -> st.SearchStrategy[OccupancySeries]:
    reading = st.tuples(
        st.integers(HOUR - 20 * 60_000, HOUR + HOUR_MS + 60_000),
        st.integers(0, 40),
        st.none() | st.floats(350, 2500, allow_nan=False),
    )
    return st.lists(reading, max_size=25, unique_by=lambda r: r[0]).map(sorted)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(series(), min_size=1, max_size=8),
    st.integers(1, 30 * 60_000),
    st.sampled_from([[], [(HOUR, HOUR + HOUR_MS)], [(HOUR + 15 * 60_000, HOUR + 40 * 60_000)]]),
)
def test_the_sweep_is_the_definition(
    sensors: list[OccupancySeries], hold_ms: int, opening: list[tuple[int, int]]
) -> None:
    assert space_hour(sensors, HOUR, hold_ms, opening) == by_definition(sensors, hold_ms, opening)


def test_sixty_sensors_in_one_hall() -> None:
    # Every sensor reports a minute apart, 2 people, one with bad air: 120 people all hour.
    sensors: list[OccupancySeries] = [
        [(HOUR + m * 60_000 + s * 500, 2, 1500.0 if s == 7 else 600.0) for m in range(-5, 60)]
        for s in range(60)
    ]
    sh = space_hour(sensors, HOUR, 3 * 60_000, [])
    assert sh == by_definition(sensors, 3 * 60_000, [])
    assert (sh.people_peak, sh.measured_s, sh.co2_good_s) == (120, 3600.0, 0.0)
