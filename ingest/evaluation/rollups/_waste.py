"""Emptyings of a waste bin, detected from its fill level alone.

An ultrasonic fill sensor never reports "emptied"; the level just drops. Two things make a naive
"the fill went down" rule wrong: echo noise of a few millimetres, and false echoes off the bin
wall that read as a sudden low level for one reading. So the level before and after a candidate
reading are both medians of up to five readings (a median of five ignores two false echoes),
and the drop between them must be at least `min_drop_pct`. A median of five also cannot tell
which of the neighbouring readings the step is at, so every reading near the step qualifies;
the emptying is placed at the first of them at the level after, with most of the next three
there too. It is reported once a reading after them no longer qualifies, about eight reporting
intervals after the step (two hours for a bin read every 15 minutes).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

SPAN = 5  # readings on each side that a decision looks at
MIN_DROP_PCT = 5.0
TOO_EARLY_PCT = 50.0


@dataclass(frozen=True, slots=True)
class Emptying:
    time_ms: int  # the first reading after the bin was emptied
    fill_before_pct: float  # median of up to SPAN readings before
    fill_after_pct: float  # median of the SPAN readings from time_ms on

    def volume_l(self, bin_volume_l: float) -> float:
        """Waste collected: the fill before emptying times the bin's volume."""
        return self.fill_before_pct / 100 * bin_volume_l


def detect_emptyings(
    readings: Sequence[tuple[int, float]], min_drop_pct: float = MIN_DROP_PCT
) -> list[Emptying]:
    """(time ms, fill %) readings sorted by time, to the emptyings they show."""
    fills = [f for _, f in readings]
    candidates: list[tuple[int, float, float]] = []  # (index, before, after)
    for i in range(3, len(fills) - SPAN + 1):
        before = statistics.median(fills[max(0, i - SPAN) : i])
        after = statistics.median(fills[i : i + SPAN])
        if before - after >= min_drop_pct:
            candidates.append((i, before, after))

    def step(run: list[tuple[int, float, float]]) -> int:
        # A median of five is blind to which of neighbouring readings the step is at. The step
        # is the first reading at the level after, with most of the next three there too: a
        # false echo beside the emptying reads low, but at a random level, not the emptied one.
        best = max(run, key=lambda c: c[1] - c[2])
        after = best[2]
        tol = max(3.0, (best[1] - after) / 8)

        def at_after(j: int) -> bool:
            return abs(fills[j] - after) <= tol

        for i in range(run[0][0], min(run[-1][0] + 3, len(fills) - 2)):
            if at_after(i) and sum(map(at_after, range(i, i + 3))) >= 2:
                return i
        return best[0]

    emptyings: list[Emptying] = []
    run: list[tuple[int, float, float]] = []
    last = len(fills) - SPAN  # the last index with five readings after it
    for cand in [*candidates, (-1, 0.0, 0.0)]:
        if run and cand[0] != run[-1][0] + 1:
            if run[-1][0] == last:
                break  # the run may go on with the next reading: not decided yet
            i = step(run)
            before = statistics.median(fills[max(0, i - SPAN) : i])
            after = statistics.median(fills[i : i + SPAN])
            emptyings.append(Emptying(readings[i][0], before, after))
            run = []
        run.append(cand)
    return emptyings
