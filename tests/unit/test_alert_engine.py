"""The alert engine's rules on hand-made readings: hysteresis, duration, below, per-device
limits, rate, offline by last will and by silence, and state across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices import Registry, parse_site
from devices.site import DEFAULT_RULES, AlertRule
from ingest.evaluation.alerts.engine import AlertEngine, Transition
from ingest.reading import Reading
from tests import helpers

# Run again with the clock 400 days ahead by scripts/test (alerts over time).
pytestmark = pytest.mark.shifted_clock

REG = Registry(
    parse_site(
        "site: kera\ndevices:\n"
        "  - {id: bin-1, kind: waste_bin, space: yard, depth_mm: 1000}\n"
        "  - {id: occ-1, kind: occupancy, space: room, interval_s: 60}\n"
        "  - {id: em-1, kind: energy_meter, space: hall, thresholds: {max_power_w: 10000}}\n"
    )
)


def engine(
    rules: tuple[AlertRule, ...] = DEFAULT_RULES, state: Path | None = None
) -> tuple[AlertEngine, list[Transition]]:
    seen: list[Transition] = []
    return AlertEngine(REG, rules, seen.append, state), seen


def reading(device: str, time_ms: int, **fields: object) -> Reading:
    d = REG.get(device)
    assert d is not None
    measurement = "device_status" if "online" in fields else d.spec.measurement
    return Reading(measurement, d, time_ms, dict(fields))  # type: ignore[arg-type]


def states(seen: list[Transition]) -> list[tuple[str, str, bool, str]]:
    return [(t.rule, t.device, t.firing, t.level) for t in seen]


def test_bin_fill_with_hysteresis() -> None:
    e, seen = engine()
    for i, fill in enumerate((50.0, 81.0, 79.0, 70.0, 96.0, 90.0, 61.0, 59.0, 85.0)):
        e.observe(reading("bin-1", i * 1000, fill_pct=fill))
    assert states(seen) == [
        ("bin_fill", "bin-1", True, "warning"),
        ("bin_fill", "bin-1", True, "critical"),  # escalation; 90 does not de-escalate
        ("bin_fill", "bin-1", False, "ok"),  # only under 60
        ("bin_fill", "bin-1", True, "warning"),
    ]


def test_co2_must_hold_for_its_duration() -> None:
    e, seen = engine()
    minute = 60_000
    for t, co2 in ((0, 1300), (10, 1300), (14, 900), (15, 1300), (29, 1300), (31, 1300)):
        e.observe(reading("occ-1", t * minute, people=5, co2_ppm=float(co2)))
    assert states(seen) == [("co2_high", "occ-1", True, "warning")]
    assert seen[0].time_ms == 31 * minute  # 15 minutes after the dip ended it


def test_below_limit_key_and_boolean() -> None:
    e, seen = engine()
    e.observe(reading("bin-1", 0, fill_pct=10.0, battery_pct=14.0, tilt=True))
    e.observe(reading("bin-1", 1, fill_pct=10.0, battery_pct=18.0, tilt=False))
    e.observe(reading("bin-1", 2, fill_pct=10.0, battery_pct=21.0))
    e.observe(reading("em-1", 3, power_w=12_000.0, energy_kwh=1.0))
    e.observe(reading("em-1", 4, power_w=9_000.0, energy_kwh=1.0))
    assert states(seen) == [
        ("bin_tilted", "bin-1", True, "warning"),
        ("battery_low", "bin-1", True, "warning"),
        ("bin_tilted", "bin-1", False, "ok"),
        ("battery_low", "bin-1", False, "ok"),
        ("power_max", "em-1", True, "critical"),
        ("power_max", "em-1", False, "ok"),
    ]


def test_rate_of_change() -> None:
    rule = AlertRule.model_validate(
        {"name": "co2_surge", "kind": "rate", "measurement": "occupancy", "field": "co2_ppm",
         "warning": 50}
    )  # fmt: skip
    e, seen = engine((rule,))
    for t, co2 in ((0, 500), (1, 520), (2, 600), (3, 610)):
        e.observe(reading("occ-1", t * 60_000, people=1, co2_ppm=float(co2)))
    assert states(seen) == [
        ("co2_surge", "occ-1", True, "warning"),
        ("co2_surge", "occ-1", False, "ok"),
    ]


def test_offline_by_last_will_and_by_silence(tmp_path: Path) -> None:
    e, seen = engine(state=tmp_path / "alerts.json")
    e.observe(reading("occ-1", 0, online=False))
    e.observe(reading("occ-1", 1, online=True))
    e.observe(reading("bin-1", 2, fill_pct=10.0))
    seen_at = e.last_seen_ms["bin-1"]
    e.tick(seen_at + 3 * 900_000 - 1)  # the bin: not yet 3 intervals (900 s each)
    e.tick(seen_at + 3 * 900_000 + 1)
    assert states(seen) == [
        ("device_offline", "occ-1", True, "critical"),  # last will
        ("device_offline", "occ-1", False, "ok"),
        ("device_offline", "occ-1", True, "critical"),  # silent for 3 x 60 s
        ("device_offline", "bin-1", True, "critical"),  # silent for 3 x 900 s
    ]
    # A restart: the firing alert is remembered, not announced again, and resolves once.
    again, seen2 = engine(state=tmp_path / "alerts.json")
    assert again.firing() == [
        ("device_offline", "bin-1", "critical"),
        ("device_offline", "occ-1", "critical"),
    ]
    again.tick(seen_at + 10 * 900_000)
    again.observe(reading("bin-1", 5, fill_pct=11.0))
    assert states(seen2) == [("device_offline", "bin-1", False, "ok")]


def test_a_full_disk_does_not_swallow_a_transition(tmp_path: Path) -> None:
    """The state file cannot be saved (a real full filesystem): the alert is still delivered,
    and the failed save is counted (issue 26)."""
    with helpers.small_tmpfs(tmp_path / "disk", "64k") as disk:
        e, seen = engine(state=disk / "alerts.json")
        helpers.fill(disk / "filler")
        e.observe(reading("bin-1", 0, fill_pct=96.0))
        assert states(seen) == [("bin_fill", "bin-1", True, "critical")]
        assert e.save_errors == 1
