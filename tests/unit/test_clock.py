"""What devices' clocks say of the ingestor's (ingest.observability.clock), and silence measured
on a clock that does not step (ingest.evaluation.alerts.engine.steady_ms) (issue 26)."""

from __future__ import annotations

import time

import pytest

from devices import Registry, parse_site
from devices.site import DEFAULT_RULES
from ingest.evaluation.alerts.engine import AlertEngine, Transition, steady_ms
from ingest.observability.clock import ClockWatch, Skew
from ingest.reading import Reading

NOW = 1_800_000_000_000  # an injected receive clock: the watch never reads the real one
HOUR = 3_600_000

# Run again with the clock 400 days ahead by scripts/test (clock limits over time).
pytestmark = pytest.mark.shifted_clock


def _live(watch: ClockWatch, devices: int, offset_ms: int, readings: int = 3) -> None:
    """Devices reporting every 60 s, their clocks `offset_ms` off the receive clock."""
    for k in range(readings):
        for d in range(devices):
            received = NOW + k * 60_000 + d
            watch.record(f"dev-{d}", received + offset_ms, received)


def _skew(watch: ClockWatch) -> Skew:
    skew = watch.skew(NOW + 3 * 60_000)
    assert skew is not None
    return skew


def test_devices_ahead_say_the_ingestor_is_behind() -> None:
    watch = ClockWatch()
    _live(watch, 5, 2 * HOUR, readings=1)  # a time in the future counts at once
    skew = _skew(watch)
    assert skew.seconds == pytest.approx(7200, abs=1)
    assert skew.devices == 5
    assert skew.suspect


def test_live_devices_behind_say_the_ingestor_is_ahead() -> None:
    watch = ClockWatch()
    _live(watch, 5, -2 * HOUR, readings=1)
    assert watch.skew(NOW) is None  # one old reading each may be a backlog: no opinion yet
    _live(watch, 5, -2 * HOUR)
    skew = _skew(watch)
    assert skew.seconds == pytest.approx(-7200, abs=1)
    assert skew.suspect


def test_a_backlog_is_no_opinion_and_one_wrong_device_is_outvoted() -> None:
    watch = ClockWatch()
    # A gateway replays a day in seconds: old times, arriving fast.
    for i in range(500):
        watch.record("gateway-meter", NOW - 24 * HOUR + i * 60_000, NOW + i * 10)
    # A broker hands over what it held in an outage, about a second apart: old times
    # a few ms apart (tests/integration/test_reliability.py's overflow once looked live).
    for i in range(5):
        watch.record("held-meter", NOW - HOUR + i * 6, NOW + i * 1_003)
    _live(watch, 4, 800)  # four devices right (network delay aside)
    watch.record("clock-not-set", NOW + 5 * HOUR, NOW + 60_000)  # one that is not
    skew = _skew(watch)
    assert skew.devices == 5
    assert skew.seconds == pytest.approx(0.8)
    assert not skew.suspect
    assert not skew.suspect


def test_two_devices_are_not_enough_to_doubt_the_ingestor() -> None:
    watch = ClockWatch()
    _live(watch, 2, 2 * HOUR, readings=1)
    assert not _skew(watch).suspect


def test_opinions_older_than_the_window_are_forgotten() -> None:
    watch = ClockWatch(window_s=600)
    _live(watch, 5, 2 * HOUR, readings=1)
    assert watch.skew(NOW + 601_000) is None


REG = Registry(parse_site("site: kera\ndevices:\n  - {id: occ-1, kind: occupancy, space: a}\n"))


def test_a_step_of_the_wall_clock_is_not_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the host's clock set 2 h forward (an NTP step), every device looked silent for 2 h
    and device_offline fired for all. Silence is measured on steady_ms, which does not step."""
    seen: list[Transition] = []
    offline = tuple(r for r in DEFAULT_RULES if r.kind == "offline")
    assert offline
    engine = AlertEngine(REG, offline, seen.append)
    device = REG.get("occ-1")
    assert device is not None
    engine.observe(Reading("occupancy", device, NOW, {"people": 1}, (), NOW))
    real = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: real + 2 * HOUR * 1_000_000)
    monkeypatch.setattr(time, "time", lambda: real / 1e9 + 7200)
    engine.tick(steady_ms())
    assert seen == []
    assert abs(steady_ms() - real // 1_000_000) < 60_000
    # Whereas real silence, on the same clock, still fires.
    engine.tick(steady_ms() + 3 * 60 * 60_000)
    assert [(t.rule, t.device, t.firing) for t in seen] == [("device_offline", "occ-1", True)]
