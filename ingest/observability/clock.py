"""Is this ingestor's clock right? What its devices' clocks say about it.

A reading's own time (`ts`) against its receive time (this process's clock) is one device's
opinion of the ingestor's clock, plus the network's delay. One device can be wrong; most
devices at once are not, or the ingestor is. So the watch keeps, per registered device, its
latest opinion, and reports the median over the devices heard in the last `window_s`:

- a device ahead of the receive time counts at once: a reading cannot come from the future;
- a device behind counts only while it reports live: two readings at least LIVE_APART_MS apart
  on arrival whose own times advanced by the same, within a tenth. A gateway replaying a
  backlog, or a broker handing over what it held during an outage, delivers old readings whose
  times advance far slower or faster than their arrival, and is no opinion.

Probed with the ingestor 2 h behind its devices, every reading was rejected `ts_in_future` while
`/healthz` said "ok" and the log blamed the devices' clocks; 2 h ahead, readings without a time
were stamped in the future. `/healthz`, the metrics and the `pipeline` point now say so.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

# The skew past which the ingestor's clock is called into question, and the fewest devices
# whose opinion counts.
SUSPECT_S = 60.0
MIN_DEVICES = 3
LIVE_APART_MS = 2000


@dataclass(frozen=True, slots=True)
class Skew:
    """Devices' time minus this ingestor's, the median over `devices` devices heard lately."""

    seconds: float
    devices: int

    @property
    def suspect(self) -> bool:
        return self.devices >= MIN_DEVICES and abs(self.seconds) > SUSPECT_S


class ClockWatch:
    """Devices' opinions of the ingestor's clock. `record` is on the hot path: two dict
    operations; the median is taken when asked (`skew`)."""

    __slots__ = ("_last", "_opinion", "window_ms")

    def __init__(self, window_s: float = 600.0) -> None:
        self.window_ms = int(window_s * 1000)
        # Per device: its last (time, receive time), and its last opinion (skew, receive time).
        self._last: dict[str, tuple[int, int]] = {}
        self._opinion: dict[str, tuple[int, int]] = {}

    def record(self, device_id: str, time_ms: int, received_ms: int) -> None:
        skew = time_ms - received_ms
        previous = self._last.get(device_id)
        self._last[device_id] = (time_ms, received_ms)
        if skew > 0:
            self._opinion[device_id] = (skew, received_ms)
            return
        if previous is None:
            return
        apart = received_ms - previous[1]
        if apart >= LIVE_APART_MS and abs((time_ms - previous[0]) - apart) <= max(250, apart // 10):
            self._opinion[device_id] = (skew, received_ms)

    def skew(self, now_ms: int) -> Skew | None:
        """The median opinion of the devices heard within the window; None with none."""
        since = now_ms - self.window_ms
        recent = [s for s, at in self._opinion.values() if at >= since]
        if not recent:
            return None
        return Skew(statistics.median(recent) / 1000, len(recent))
