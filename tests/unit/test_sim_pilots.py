"""Injected pilot effects in the simulator: the spec is checked against the site, and the
fleet changes by exactly what was asked from the pilot's start (firmware_sim/pilots.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devices import Registry
from firmware_sim import MemorySink, build_fleet, run
from firmware_sim.fleet import SimWasteBin
from firmware_sim.pilots import PilotSpecError, apply, parse_pilot

# Run again with the clock 400 days ahead by scripts/test (injected pilot effects).
pytestmark = pytest.mark.shifted_clock

REGISTRY = Registry.load()
# The bundled pilots start on 2026-11-02 (cafe, yard) and 2026-11-16 (coworking).
BEFORE = int(datetime(2026, 10, 31, tzinfo=UTC).timestamp() * 1000)
SPAN_S = 4 * 86400.0  # two days before the cafe and yard pilots start, two after


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cafe-heat-control heat -12", "write ID:METRIC=CHANGE"),
        ("no-such-pilot:heat_kwh=-12%", "no pilot 'no-such-pilot'"),
        ("cafe-heat-control:heat_kwh=-12", "in a percentage, with %"),
        ("yard-sorting-nudge:sorting_rate_pct=+10%", "in points, without %"),
        ("cafe-heat-control:good_air_pct=+5%", "cannot inject good_air_pct"),
        ("cafe-heat-control:warmth=+5%", "can inject"),
    ],
)
def test_a_bad_spec_says_how_to_write_it(spec: str, message: str) -> None:
    with pytest.raises(PilotSpecError, match=message):
        parse_pilot(spec, REGISTRY.site)


def _heat_kw(pilots: list[str]) -> dict[str, list[tuple[int, float]]]:
    sink = MemorySink()
    run(
        REGISTRY, sink, seed=7, start_ms=BEFORE, duration_s=SPAN_S, speed=0,
        pilots=[parse_pilot(p, REGISTRY.site) for p in pilots],
    )  # fmt: skip
    out: dict[str, list[tuple[int, float]]] = {"hm-cafe": [], "hm-substation": []}
    for event, device_id, _, payload in sink.events:
        if event == "publish" and device_id in out:
            body = json.loads(payload)
            out[device_id].append((body["ts"], body["heat_power_kw"]))
    return out


def test_a_heat_cut_scales_the_scope_from_the_start_only() -> None:
    start = int(datetime(2026, 11, 1, 22, tzinfo=UTC).timestamp() * 1000)  # 00:00 Helsinki
    plain = _heat_kw([])
    cut = _heat_kw(["cafe-heat-control:heat_kwh=-12%"])
    assert [t for t, _ in plain["hm-cafe"]] == [t for t, _ in cut["hm-cafe"]]
    for (t, before), (_, after) in zip(plain["hm-cafe"], cut["hm-cafe"], strict=True):
        expected = before * 0.88 if t >= start else before
        assert after == pytest.approx(expected, abs=0.011)  # payloads round to 0.01 kW
    assert plain["hm-substation"] == cut["hm-substation"]  # outside the scope, nothing changes


def test_a_sorting_shift_moves_points_and_keeps_the_total() -> None:
    fleet = build_fleet(REGISTRY, seed=3)
    bins = [s for s in fleet if isinstance(s, SimWasteBin) and s.device.space == "yard"]

    def litres(factor: bool) -> tuple[float, float]:
        mixed = total = 0.0
        for b in bins:
            v = b.rate * (b.device.volume_l or 0.0) * (b.effect_factor if factor else 1.0)
            total += v
            if b.device.fraction.value == "mixed":
                mixed += v
        return mixed, total

    mixed0, total0 = litres(False)
    apply([parse_pilot("yard-sorting-nudge:sorting_rate_pct=+10", REGISTRY.site)], fleet)
    mixed1, total1 = litres(True)
    assert total1 == pytest.approx(total0)
    assert (1 - mixed1 / total1) * 100 == pytest.approx((1 - mixed0 / total0) * 100 + 10)
    assert all(str(b.effect_from) == "2026-11-02" for b in bins)


def test_more_utilisation_means_more_occupied_readings() -> None:
    start = int(datetime(2026, 11, 14, tzinfo=UTC).timestamp() * 1000)

    def occupied(pilots: list[str]) -> int:
        sink = MemorySink()
        run(REGISTRY, sink, seed=5, start_ms=start, duration_s=6 * 86400, speed=0,
            pilots=[parse_pilot(p, REGISTRY.site) for p in pilots])  # fmt: skip
        return sum(
            1 for event, device_id, _, payload in sink.events
            if event == "publish" and device_id == "occ-coworking"
            and json.loads(payload)["people"] > 0
        )  # fmt: skip

    assert occupied(["coworking-booking:utilisation_pct=+20%"]) > occupied([]) * 1.05
