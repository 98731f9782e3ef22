"""The one backoff (ingest.backoff) every reconnect and retry uses: capped exponential with
equal jitter."""

from __future__ import annotations

import random

from ingest.backoff import Backoff


def test_each_attempt_waits_between_half_and_all_of_its_capped_delay() -> None:
    b = Backoff(initial_s=0.5, max_s=30.0, rng=random.Random(1))
    for attempt in range(12):
        full = min(30.0, 0.5 * 2**attempt)
        delays = [b.delay(attempt) for _ in range(500)]
        assert all(full / 2 <= d <= full for d in delays), attempt
        # The random half is used, not a fixed point in it.
        assert max(delays) - min(delays) > full / 4, attempt


def test_next_counts_attempts_and_reset_starts_over() -> None:
    b = Backoff(initial_s=1.0, max_s=8.0, rng=random.Random(2))
    delays = [b.next() for _ in range(6)]
    assert b.attempt == 6
    assert all(d <= cap for d, cap in zip(delays, (1, 2, 4, 8, 8, 8), strict=True))
    assert all(d >= cap / 2 for d, cap in zip(delays, (1, 2, 4, 8, 8, 8), strict=True))
    b.reset()
    assert b.attempt == 0
    assert 0.5 <= b.next() <= 1.0


def test_a_long_outage_stays_at_the_cap() -> None:
    b = Backoff(initial_s=0.5, max_s=30.0, rng=random.Random(3))
    assert 15.0 <= b.delay(10_000) <= 30.0


def test_a_seeded_source_repeats_its_delays() -> None:
    first = Backoff(rng=random.Random(7))
    second = Backoff(rng=random.Random(7))
    assert [first.next() for _ in range(5)] == [second.next() for _ in range(5)]
