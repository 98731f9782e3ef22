"""Known pilot effects injected into the simulated fleet, so that every method in `pilots/` can
be checked against the truth (docs/pilots.md, bench/pilots.py).

`--pilot ID:METRIC=CHANGE` takes the pilot's scope and start from the site file:

- `cafe-heat-control:heat_kwh=-12%`: the scope's heat meters use 12 % less from the start;
  `electricity_kwh` does the same to energy meters, `kgco2e` to both;
- `coworking-booking:utilisation_pct=+20%`: the scope's rooms are in use 20 % more often
  (`occupied_h` the same);
- `yard-sorting-nudge:sorting_rate_pct=+10`: 10 more points of the scope's waste go to the
  sorted bins, the same total;
- `yard-sorting-nudge:mixed_waste_l=-15%`: the mixed bins fill 15 % slower.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from devices.pilots import METRIC_KINDS, Metric, Pilot, scope_devices
from devices.site import Site, WasteFraction
from firmware_sim.fleet import SimDevice, SimWasteBin

_SPEC = re.compile(
    r"^(?P<pilot>[a-z0-9][a-z0-9_-]*):(?P<metric>[a-z_]+)=(?P<change>[+-]?\d+(\.\d+)?)(?P<pct>%?)$"
)
# What the simulator can inject: every metric but good air, on the kinds that measure it.
_KINDS: dict[Metric, frozenset[str]] = {
    m: kinds for m, kinds in METRIC_KINDS.items() if m is not Metric.GOOD_AIR_PCT
}


class PilotSpecError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class InjectedEffect:
    pilot: Pilot
    metric: Metric
    # Percent for amounts and utilisation, points for the sorting rate.
    change: float

    @property
    def start(self) -> date:
        return self.pilot.start


def parse_pilot(spec: str, site: Site) -> InjectedEffect:
    m = _SPEC.match(spec.strip())
    if m is None:
        raise PilotSpecError(
            f"--pilot {spec!r}: write ID:METRIC=CHANGE, for example "
            "cafe-heat-control:heat_kwh=-12% or yard-sorting-nudge:sorting_rate_pct=+10"
        )
    pilots = {p.id: p for p in site.pilots}
    pilot = pilots.get(m["pilot"])
    if pilot is None:
        known = ", ".join(sorted(pilots)) or "none"
        raise PilotSpecError(f"--pilot {spec!r}: the site has no pilot {m['pilot']!r} ({known})")
    try:
        metric = Metric(m["metric"])
    except ValueError:
        raise PilotSpecError(
            f"--pilot {spec!r}: the simulator can inject {', '.join(sorted(_KINDS))}"
        ) from None
    if metric not in _KINDS:
        raise PilotSpecError(f"--pilot {spec!r}: the simulator cannot inject {metric.value}")
    points = metric is Metric.SORTING_RATE_PCT
    if points == bool(m["pct"]):
        unit = "points, without %" if points else "a percentage, with %"
        raise PilotSpecError(f"--pilot {spec!r}: give {metric.value}'s change in {unit}")
    return InjectedEffect(pilot, metric, float(m["change"]))


def apply(effects: Iterable[InjectedEffect], fleet: Sequence[SimDevice]) -> None:
    """Set each affected device's factor and start date."""
    for effect in effects:
        covered = scope_devices(effect.pilot, [sim.device for sim in fleet])
        ids = {d.id for d in covered}
        sims = [s for s in fleet if s.device.id in ids and s.device.kind in _KINDS[effect.metric]]
        if not sims:
            raise PilotSpecError(
                f"--pilot {effect.pilot.id}: no {' or '.join(sorted(_KINDS[effect.metric]))} "
                "in its scope"
            )
        if effect.metric is Metric.SORTING_RATE_PCT:
            _shift_sorting(effect, [s for s in sims if isinstance(s, SimWasteBin)])
            continue
        if effect.metric is Metric.MIXED_WASTE_L:
            sims = [
                s for s in sims
                if isinstance(s, SimWasteBin) and s.device.fraction == WasteFraction.MIXED
            ]  # fmt: skip
        for sim in sims:
            sim.effect_from = effect.start
            sim.effect_factor = 1 + effect.change / 100


def _shift_sorting(effect: InjectedEffect, bins: list[SimWasteBin]) -> None:
    """Move `change` points of the bins' expected volume from mixed to sorted, keeping the total:
    sorted bins fill by r'/r, mixed ones by (1-r')/(1-r)."""

    def litres(b: SimWasteBin) -> float:
        return b.rate * (b.device.volume_l or 0.0)

    mixed = sum(litres(b) for b in bins if b.device.fraction == WasteFraction.MIXED)
    total = sum(litres(b) for b in bins)
    if not total or not mixed or mixed == total:
        raise PilotSpecError(
            f"--pilot {effect.pilot.id}: the sorting rate needs both mixed and sorted bins "
            "with a volume in the scope"
        )
    rate = 1 - mixed / total
    target = min(0.99, max(0.01, rate + effect.change / 100))
    for b in bins:
        is_mixed = b.device.fraction == WasteFraction.MIXED
        b.effect_from = effect.start
        b.effect_factor = (1 - target) / (1 - rate) if is_mixed else target / rate
