"""One device's recent readings in time order, in flat arrays.

The live window holds 48 hours of every device; an energy meter read every 10 s is 17,280
readings. As a dict of tuples that is about 200 bytes a reading, in three arrays 24. Readings
arrive almost always in order, so adding one is an append; a late one is inserted, a duplicate
time replaces the earlier values, as a point overwrite does.
"""

from __future__ import annotations

import bisect
import math
from array import array

NAN = math.nan


class Series:
    __slots__ = ("primary", "secondary", "times")

    def __init__(self) -> None:
        self.times = array("q")  # epoch ms
        self.primary = array("d")  # energy_kwh, people or fill_pct
        self.secondary = array("d")  # power_w or co2_ppm; NaN when absent

    def __len__(self) -> int:
        return len(self.times)

    def put(self, t: int, primary: float, secondary: float | None) -> bool:
        """Add or replace the reading at `t`; True if `t` is new."""
        value = NAN if secondary is None else secondary
        times = self.times
        if not times or t > times[-1]:
            times.append(t)
            self.primary.append(primary)
            self.secondary.append(value)
            return True
        i = bisect.bisect_left(times, t)
        if i < len(times) and times[i] == t:
            self.primary[i] = primary
            self.secondary[i] = value
            return False
        times.insert(i, t)
        self.primary.insert(i, primary)
        self.secondary.insert(i, value)
        return True

    def index(self, t: int) -> int:
        """Index of the first reading at or after `t`."""
        return bisect.bisect_left(self.times, t)

    def secondary_at(self, i: int) -> float | None:
        v = self.secondary[i]
        return None if math.isnan(v) else v

    def drop_first(self, n: int) -> None:
        if n > 0:
            del self.times[:n]
            del self.primary[:n]
            del self.secondary[:n]
