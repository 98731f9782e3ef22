"""Fault injection: what real devices do wrong, on purpose and counted.

Every fault draws from its own per-device random stream (seed, device id, "faults"), so switching
a fault on never changes the readings of the healthy devices, or the healthy readings of a
faulty one, and the same flags with the same seed give the same faults.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from firmware_sim.fleet import SimDevice, SimWasteBin, Values

# Values no real sensor of the kind reports: the ingestor rejects them as out_of_range.
SPIKES = {
    "power_w": 5e7,
    "energy_kwh": -1.0,
    "voltage_v": 9000.0,
    "people": -3,
    "co2_ppm": 65000.0,
    "humidity_pct": 180.0,
    "temperature_c": 400.0,
    "distance_mm": 99999.0,
}


@dataclass(frozen=True, slots=True)
class Faults:
    """Each option is a rate per reading (0 = off) unless it says otherwise."""

    drop: float = 0.0  # the reading is never sent (lost radio packet)
    outage: float = 0.0  # the device drops off the network: its last will says offline
    outage_s: float = 900.0  # mean outage length, simulated seconds
    stuck: float = 0.0  # the sensor freezes: the same values for `stuck_readings` readings
    stuck_readings: int = 12
    spike: float = 0.0  # one physically impossible value (rejected: out_of_range)
    outlier: float = 0.0  # one plausible but wrong value, x3 (accepted: a data-quality issue)
    malformed: float = 0.0  # broken JSON, a wrong type or a missing field, in turn
    clock_skew_s: float = 0.0  # how far skewed clocks are off
    skewed_share: float = 0.0  # share of devices with a skewed clock
    battery_drain: bool = (
        False  # batteries empty within about two days; then the device goes silent
    )
    duplicate: float = 0.0  # the reading is delivered twice
    only: frozenset[str] = frozenset()  # the devices with faults; empty: every device

    @property
    def any(self) -> bool:
        return self != Faults(only=self.only)

    def applies_to(self, device_id: str) -> bool:
        return not self.only or device_id in self.only


@dataclass(slots=True)
class Verdict:
    """What happens to one reading: `values` to send (None: nothing), how many copies, whether
    to break the JSON, and whether the device goes offline first."""

    values: Values | None
    copies: int = 1
    break_json: bool = False
    outage_ms: int = 0  # > 0: go offline (last will) for this long instead of sending


@dataclass(slots=True)
class FaultState:
    device: SimDevice
    faults: Faults
    counts: Counter[str]
    rng: random.Random = field(init=False)
    skew_ms: int = field(init=False)
    stuck_left: int = 0
    stuck_values: Values | None = None
    malformed_turn: int = 0
    offline_until: int = 0
    dead: bool = False

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.device.seed}:{self.device.device.id}:faults")
        skewed = self.faults.clock_skew_s and self.rng.random() < self.faults.skewed_share
        self.skew_ms = round(self.faults.clock_skew_s * 1000) if skewed else 0
        if self.faults.battery_drain and isinstance(self.device, SimWasteBin):
            self.device.drain_pct_per_hour = self.rng.uniform(2.0, 4.0)

    def apply(self, time_ms: int, values: Values) -> Verdict:
        # The faults draw from the device's own generator in a fixed order, so a seed gives
        # the same faults at the same readings in every run.
        f, rng, counts = self.faults, self.rng, self.counts
        missing = self._missing(values)
        if missing is not None:
            return missing
        values = self._stuck(dict(values))
        verdict = Verdict(values)
        # At most one value fault per reading, so each shows as exactly one rejection reason.
        if f.malformed and rng.random() < f.malformed:
            self._malformed(values, verdict)
        elif f.spike and rng.random() < f.spike and any(n in SPIKES for n in values):
            name = rng.choice([n for n in values if n in SPIKES])
            values[name] = SPIKES[name]
            counts["spikes"] += 1
        elif f.outlier and rng.random() < f.outlier:
            self._outlier(values)
        if self.skew_ms:
            counts["skewed"] += 1
        if f.duplicate and rng.random() < f.duplicate:
            verdict.copies = 2
            counts["duplicates"] += 1
        return verdict

    def _missing(self, values: Values) -> Verdict | None:
        """The reading never sent: a flat battery, an outage starting, or a lost uplink."""
        f, rng, counts = self.faults, self.rng, self.counts
        if f.battery_drain and values.get("battery_pct") == 0.0:
            self.dead = True
            counts["battery_empty"] += 1
            return Verdict(None)
        if f.outage and rng.random() < f.outage:
            counts["outages"] += 1
            return Verdict(None, outage_ms=round(rng.expovariate(1 / f.outage_s) * 1000) + 1)
        if f.drop and rng.random() < f.drop:
            counts["dropped"] += 1
            return Verdict(None)
        return None

    def _stuck(self, values: Values) -> Values:
        """A sensor that repeats its last values for `stuck_readings` readings."""
        f = self.faults
        if self.stuck_left:
            self.stuck_left -= 1
            assert self.stuck_values is not None
            self.counts["stuck"] += 1
            return dict(self.stuck_values)
        if f.stuck and self.rng.random() < f.stuck:
            self.stuck_left = f.stuck_readings - 1
            self.stuck_values = dict(values)
            self.counts["stuck"] += 1
        return values

    def _malformed(self, values: Values, verdict: Verdict) -> None:
        """Broken JSON, a number sent as text, or no field at all, in turn."""
        turn = self.malformed_turn % 3
        self.malformed_turn += 1
        if turn == 0:
            verdict.break_json = True
            self.counts["malformed_json"] += 1
        elif turn == 1:
            name = next(iter(values))
            values[name] = str(values[name])
            self.counts["malformed_type"] += 1
        else:
            # Every field gone: a reading may be partial, but never empty.
            values.clear()
            self.counts["malformed_missing"] += 1

    def _outlier(self, values: Values) -> None:
        """A plausible but wrong value (three times the true one, within the field's range)."""
        numbers = {
            n: v
            for n, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and v
        }
        if numbers:
            name = self.rng.choice(sorted(numbers))
            values[name] = _plausible_outlier(self.device, name, numbers[name])
            self.counts["outliers"] += 1


def _plausible_outlier(device: SimDevice, name: str, value: float) -> float | int:
    spec = device.device.spec.fields[name]
    out = value * 3
    if spec.maximum is not None:
        out = min(out, spec.maximum)
    if spec.minimum is not None:
        out = max(out, spec.minimum)
    return int(out) if spec.type == "int" else float(out)
