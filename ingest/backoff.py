"""How long to wait before trying again: the one backoff of the ingestor, its serial links, its
webhooks, its workers and the simulator's device links.

Capped exponential with "equal jitter": attempt n (from 0) waits a random time between half and
all of min(max_s, initial_s * 2**n). The half that is certain keeps a reconnecting fleet from
hammering a broker that just came back; the random half spreads the fleet out so it does not
come back all at once.

A helper, not a retry library (tenacity, backoff): the six places differ in what they repeat (a
reconnect loop that also waits for the disconnect, a write that honours Retry-After, a device
link's reconnect time in a select loop, a worker process's restart), and only the delay is
common to them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    initial_s: float = 0.5  # the first attempt's delay, before jitter
    max_s: float = 30.0  # the cap, before jitter
    attempt: int = 0  # attempts since the last success (`next` counts them, `reset` clears)
    # The random source: a seeded one makes the delays reproducible (tests, the simulator).
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int) -> float:
        """The delay before attempt `attempt` + 1, in seconds, without counting it."""
        # The exponent is bounded so that a long outage's attempt count cannot overflow.
        full = min(self.max_s, self.initial_s * 2 ** min(attempt, 62))
        return float(full * self.rng.uniform(0.5, 1.0))

    def next(self) -> float:
        """The delay before the next attempt; counts the failed one."""
        d = self.delay(self.attempt)
        self.attempt += 1
        return d

    def reset(self) -> None:
        """After a success: the next failure starts from `initial_s` again."""
        self.attempt = 0
