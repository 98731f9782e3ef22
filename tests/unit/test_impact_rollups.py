"""The rollup engine against hand-computed answers: a counter reset, a gap and a late reading on
a meter; a bin emptied at a known fill; a room's day of use against its opening hours; emission
factors from a CSV series. And the property that matters most for late data: whatever order the
readings arrive in, and however flushes fall between them, the stored points end up the same."""

from __future__ import annotations

import asyncio
import bisect
import random
import re
from collections.abc import Generator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import AnyDevice, Registry
from devices.site import parse_site
from ingest.evaluation.rollups import (
    HOUR_MS,
    EmissionFactors,
    FactorFileError,
    Repair,
    Rollups,
    detect_emptyings,
    parse_factor_csv,
    repair_late,
)
from ingest.reading import Reading
from ingest.storage.lineproto import parse_line, parse_value

# Run again with the clock 400 days ahead by scripts/test (rollups).
pytestmark = pytest.mark.shifted_clock

MIN = 60_000
DAY = 24 * HOUR_MS
MON = 1_795_392_000_000  # Monday 2026-11-23 00:00 UTC

SITE = """
site: t
timezone: UTC
impact:
  emission_factor_kg_per_kwh: 0.1
  emission_factor_source: {kind: example, note: test constant}
  opening_hours: {mon: "08:00-12:00"}
devices:
  - {id: m1, kind: energy_meter, space: hall, role: main-supply, interval_s: 900}
  - {id: m2, kind: energy_meter, space: cafe, role: sub-meter, interval_s: 900}
  - {id: pv, kind: energy_meter, space: roof, role: pv-production, interval_s: 900}
  - {id: o1, kind: occupancy, space: hall, interval_s: 1800}
  - {id: b-bio, kind: waste_bin, space: yard, fraction: bio, depth_mm: 1000, volume_l: 240,
     interval_s: 900, thresholds: {fill_full_pct: 90}}
  - {id: b-mixed, kind: waste_bin, space: yard, fraction: mixed, depth_mm: 1000,
     volume_l: 660, interval_s: 900}
"""


def registry() -> Registry:
    return Registry(parse_site(SITE))


class Sink:
    """The points as InfluxDB would hold them: the last write of a series and time wins."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, int], dict[str, str]] = {}

    def write(self, lines: list[str]) -> None:
        for line in lines:
            key, fields, t = parse_line(line)
            self.points[(key, t)] = fields

    def get(self, measurement: str, t: int, **tags: str) -> dict[str, str]:
        for (key, time), fields in self.points.items():
            parts = key.split(",")
            if parts[0] == measurement and time == t:
                have = dict(p.split("=", 1) for p in parts[1:])
                if all(have.get(k) == v for k, v in tags.items()):
                    return fields
        raise KeyError((measurement, t, tags))

    def num(self, measurement: str, t: int, field: str, **tags: str) -> float:
        return float(self.get(measurement, t, **tags)[field].rstrip("i"))


class Stored:
    """Every reading observed so far, as InfluxDB holds them (the last write of a time wins):
    what a repair reads back. `StoredReadings` over a dict, not a stand-in for InfluxDB, whose
    queries tests/integration/test_impact.py runs."""

    def __init__(self) -> None:
        self.by_device: dict[str, dict[int, Reading]] = {}

    def add(self, reading: Reading) -> None:
        self.by_device.setdefault(reading.device.id, {})[reading.time_ms] = reading

    def _sorted(self, device: AnyDevice) -> list[Reading]:
        return [r for _, r in sorted(self.by_device.get(device.id, {}).items())]

    async def before(self, device: AnyDevice, t: int, n: int) -> list[Reading]:
        rs = self._sorted(device)
        return rs[max(0, bisect.bisect_left([r.time_ms for r in rs], t) - n) :][:n] if n else []

    async def between(self, device: AnyDevice, start: int, end: int) -> list[Reading]:
        return [r for r in self._sorted(device) if start <= r.time_ms < end]


async def _exhaust(steps: Generator[None, None, int]) -> int:
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return int(done.value)


def repair(r: Rollups, due: list[Repair], stored: Stored) -> int:
    """What the evaluator does before a flush with the late readings taken at the last one."""
    return asyncio.run(repair_late(r, due, stored, _exhaust))


def settle(r: Rollups, stored: Stored) -> None:
    """The evaluator's next rounds: flush, then repair what came late, until nothing is left."""
    r.flush()
    while due := r.take_late():
        repair(r, due, stored)
        r.flush()


def reading(reg: Registry, device: str, t: int, **fields: float | int) -> Reading:
    d = reg.get(device)
    assert d is not None
    return Reading(d.spec.measurement, d, t, dict(fields))


def energy(reg: Registry, device: str, t: int, kwh: float, w: float = 1000.0) -> Reading:
    return reading(reg, device, t, energy_kwh=kwh, power_w=w)


def fill(reg: Registry, device: str, t: int, pct: float) -> Reading:
    return reading(reg, device, t, distance_mm=1000 - 10 * pct, fill_pct=pct)


# --- energy ------------------------------------------------------------------------------------


def test_meter_day_with_a_reset_a_gap_and_a_late_reading() -> None:
    reg, sink = registry(), Sink()
    r = Rollups(reg, sink.write, EmissionFactors(0.1, {MON + 9 * HOUR_MS: 0.3}))
    # 08:00 .. 09:00 every 15 min, +1 kWh each: 4 kWh in hour 08.
    for i in range(5):
        r.observe(energy(reg, "m1", MON + 8 * HOUR_MS + i * 15 * MIN, 100.0 + i))
    # 09:30 the meter is swapped: the new one reads 2.0 (counted from zero: 2 kWh, in hour 09).
    r.observe(energy(reg, "m1", MON + 9 * HOUR_MS + 30 * MIN, 2.0))
    # Then silence until 12:30, at 8.0: 6 kWh over 3 h, 1 kWh per 30 min, spread over 09..12.
    r.observe(energy(reg, "m1", MON + 12 * HOUR_MS + 30 * MIN, 8.0))
    r.flush()

    def h(n: int) -> int:
        return MON + n * HOUR_MS

    assert sink.num("energy_hourly", h(8), "kwh", device="m1") == pytest.approx(4.0)
    # Hour 09: 104 -> 2 at 09:30 is a reset (2 kWh), then 09:30-10:00 of the gap (1 kWh).
    assert sink.num("energy_hourly", h(9), "kwh", device="m1") == pytest.approx(3.0)
    assert sink.get("energy_hourly", h(9), device="m1")["resets"] == "1i"
    assert sink.get("energy_hourly", h(9), device="m1")["interpolated"] == "true"
    assert sink.num("energy_hourly", h(10), "kwh", device="m1") == pytest.approx(2.0)
    assert sink.num("energy_hourly", h(12), "kwh", device="m1") == pytest.approx(1.0)
    # The factor series covers hour 09 (0.3); the constant (0.1) the rest.
    assert sink.num("energy_hourly", h(9), "kgco2e", device="m1") == pytest.approx(0.9)
    assert sink.num("energy_hourly", h(10), "kgco2e", device="m1") == pytest.approx(0.2)
    assert sink.num("energy_daily", MON, "kwh", device="m1") == pytest.approx(4 + 2 + 6)
    assert sink.num("energy_daily", MON, "kgco2e", device="m1") == pytest.approx(
        0.4 + 0.9 + 0.2 + 0.2 + 0.1
    )
    assert sink.num("impact_daily", MON, "supply_kwh") == pytest.approx(12.0)

    # A late reading at 11:00 reading 5.0 arrives: 2 -> 5 over 09:30-11:00 and 5 -> 8 over
    # 11:00-12:30. Hours 09 to 12 are rewritten; 08 is not touched.
    sink.points.clear()
    r.observe(energy(reg, "m1", MON + 11 * HOUR_MS, 5.0))
    r.flush()
    assert ("energy_hourly,device=m1,role=main-supply,site=t,space=hall", h(8)) not in sink.points
    assert sink.num("energy_hourly", h(9), "kwh", device="m1") == pytest.approx(2.0 + 1.0)
    assert sink.num("energy_hourly", h(10), "kwh", device="m1") == pytest.approx(2.0)
    assert sink.num("energy_hourly", h(11), "kwh", device="m1") == pytest.approx(2.0)
    assert sink.num("energy_hourly", h(12), "kwh", device="m1") == pytest.approx(1.0)
    assert sink.num("energy_daily", MON, "kwh", device="m1") == pytest.approx(12.0)


def test_space_energy_separates_supply_consumption_and_production() -> None:
    reg, sink = registry(), Sink()
    r = Rollups(reg, sink.write, EmissionFactors(0.1))
    for i in range(5):
        t = MON + 10 * HOUR_MS + i * 15 * MIN
        r.observe(energy(reg, "m1", t, 50.0 + 3 * i))
        r.observe(energy(reg, "m2", t, 10.0 + i))
        r.observe(energy(reg, "pv", t, 7.0 + 0.5 * i))
    r.flush()
    t = MON + 10 * HOUR_MS
    assert sink.num("space_hourly", t, "supply_kwh", space="hall") == pytest.approx(12.0)
    assert sink.num("space_hourly", t, "kwh", space="cafe") == pytest.approx(4.0)
    assert sink.num("space_hourly", t, "kgco2e", space="cafe") == pytest.approx(0.4)
    assert sink.num("space_hourly", t, "pv_kwh", space="roof") == pytest.approx(2.0)
    assert "pv_kgco2e" not in sink.get("space_hourly", t, space="roof")  # production: none
    assert sink.num("impact_daily", MON, "supply_kwh") == pytest.approx(12.0)
    assert sink.num("impact_daily", MON, "kgco2e") == pytest.approx(1.2)
    assert sink.num("impact_daily", MON, "pv_kwh") == pytest.approx(2.0)


def test_a_reading_behind_the_window_is_repaired_and_one_older_than_repair_h_counted() -> None:
    reg, sink, stored = registry(), Sink(), Stored()
    r = Rollups(reg, sink.write, window_h=1, repair_h=30)

    def observe(x: Reading) -> None:
        stored.add(x)
        r.observe(x)

    # A meter read every 15 min: its window is 20 readings (5 h), whatever window_h says. It
    # was not heard from 10:00 to 12:00: the gap's 2 kWh are spread evenly, marked interpolated.
    for i in range(4 * 24 + 1):  # Monday 00:00 to Tuesday 00:00, +0.25 kWh each
        if not 40 < i < 48:
            observe(energy(reg, "m2", MON + i * 15 * MIN, 100 + i / 4))
    r.flush()
    hour_10 = ("energy_hourly", MON + 10 * HOUR_MS)
    assert sink.num(*hour_10, "kwh", device="m2") == pytest.approx(1.0)
    assert sink.get(*hour_10, device="m2")["interpolated"] == "true"
    # Late in the evening the gateway resends what it buffered: at 11:00 the counter stood at
    # 111.5. Hour 10 is final, so the reading is held for a repair, not lost nor too late.
    observe(energy(reg, "m2", MON + 11 * HOUR_MS, 111.5))
    assert (r.late, r.too_late) == (1, 0)
    settle(r, stored)
    assert (r.late, r.too_late, r.repaired) == (0, 0, 1)
    assert sink.num(*hour_10, "kwh", device="m2") == pytest.approx(1.5)
    assert sink.get(*hour_10, device="m2")["interpolated"] == "false"
    assert sink.num("energy_hourly", MON + 11 * HOUR_MS, "kwh", device="m2") == pytest.approx(0.5)
    assert sink.num("device_daily", MON, "readings", device="m2") == 4 * 24 - 7 + 1
    assert sink.num("space_hourly", MON + 10 * HOUR_MS, "kwh", space="cafe") == pytest.approx(1.5)
    assert sink.num("energy_daily", MON, "kwh", device="m2") == pytest.approx(24.0)
    # 31 h before the newest reading, with repair_h 30: left to `kera-ingest rollups`.
    observe(energy(reg, "m2", MON - 7 * HOUR_MS, 99.0))
    assert (r.late, r.too_late) == (0, 1)


# --- waste -------------------------------------------------------------------------------------


def bin_day(start_pct: float, empty_at: int, per_step: float = 1.0) -> list[tuple[int, float]]:
    """A bin read every 15 min from 00:00: filling by `per_step` % per reading, emptied to 2 %
    at reading `empty_at`."""
    out, level = [], start_pct
    for i in range(96):
        if i == empty_at:
            level = 2.0
        out.append((MON + i * 15 * MIN, round(level, 2)))
        level += per_step * 0.25
    return out


def test_a_bin_emptied_at_a_known_fill() -> None:
    readings = bin_day(60.0, empty_at=28)  # emptied at 07:00, at 60 + 27 * 0.25 = 66.75 %
    readings[10] = (readings[10][0], 3.0)  # a false echo
    readings[40] = (readings[40][0], 95.0)  # and another, upwards
    (e,) = detect_emptyings(readings)
    assert e.time_ms == MON + 7 * HOUR_MS
    assert e.fill_before_pct == pytest.approx(66.25)  # median of the five readings before
    assert e.volume_l(240) == pytest.approx(0.6625 * 240)

    reg, sink = registry(), Sink()
    r = Rollups(reg, sink.write)
    for t, pct in readings:
        r.observe(fill(reg, "b-bio", t, pct))
    r.flush()
    p = sink.get("waste_emptying", MON + 7 * HOUR_MS, device="b-bio")
    assert float(p["volume_l"]) == pytest.approx(159.0)
    assert p["too_early"] == "false"
    assert p["too_late"] == "false"
    assert p["retracted"] == "false"
    assert sink.num("waste_daily", MON, "volume_l", device="b-bio") == pytest.approx(159.0)
    assert sink.get("waste_daily", MON, device="b-bio")["emptyings"] == "1i"


@pytest.mark.parametrize(("echo", "at"), [(e, a) for e in (20.0, 40.0, 95.0) for a in (27, 29)])
def test_a_false_echo_next_to_the_emptying_does_not_move_it(echo: float, at: int) -> None:
    # Just before the step, or just after it. (An echo just before that happens to read the
    # emptied level, 2 %, cannot be told from the emptying and would place it one reading early.)
    readings = bin_day(60.0, empty_at=28)
    readings[at] = (readings[at][0], echo)
    (e,) = detect_emptyings(readings)
    assert e.time_ms == MON + 7 * HOUR_MS
    assert e.fill_before_pct == pytest.approx(66.25, abs=0.5)


def test_early_and_late_emptyings_and_the_sorting_rate() -> None:
    reg, sink = registry(), Sink()
    r = Rollups(reg, sink.write)
    # bio at 30 %: too early (< 50 %); mixed at 96 %: too late (>= 95 %, no threshold set).
    for t, pct in bin_day(28.0, empty_at=12, per_step=0.0):
        r.observe(fill(reg, "b-bio", t, pct))
    for t, pct in bin_day(96.0, empty_at=20, per_step=0.0):
        r.observe(fill(reg, "b-mixed", t, pct))
    r.flush()
    bio = sink.get("waste_emptying", MON + 3 * HOUR_MS, device="b-bio")
    mixed = sink.get("waste_emptying", MON + 5 * HOUR_MS, device="b-mixed")
    assert bio["too_early"] == "true"
    assert bio["too_late"] == "false"
    assert mixed["too_early"] == "false"
    assert mixed["too_late"] == "true"
    bio_l, mixed_l = 0.28 * 240, 0.96 * 660
    assert sink.num("impact_daily", MON, "waste_l") == pytest.approx(bio_l + mixed_l)
    assert sink.num("impact_daily", MON, "sorted_l") == pytest.approx(bio_l)
    assert sink.num("impact_daily", MON, "sorting_rate_pct") == pytest.approx(
        100 * bio_l / (bio_l + mixed_l), abs=0.01
    )
    assert sink.num("impact_daily", MON, "too_early") == 1
    assert sink.num("impact_daily", MON, "too_late") == 1


def test_an_emptying_that_later_readings_disprove_is_retracted() -> None:
    reg, sink = registry(), Sink()
    r = Rollups(reg, sink.write)
    times = [MON + i * 15 * MIN for i in range(15)]
    for i, t in enumerate(times):
        r.observe(fill(reg, "b-bio", t, 60.0 if i < 6 else 5.0))
    r.flush()
    assert float(sink.get("waste_emptying", times[6], device="b-bio")["volume_l"]) > 0
    # The gateway replays the real values for 01:30-02:00: the bin was never emptied.
    for t in times[6:9]:
        r.observe(fill(reg, "b-bio", t, 60.0))
    r.flush()
    p = sink.get("waste_emptying", times[6], device="b-bio")
    assert p["retracted"] == "true"
    assert float(p["volume_l"]) == 0.0
    assert sink.num("waste_daily", MON, "volume_l", device="b-bio") == 0.0


def test_noise_alone_is_never_an_emptying() -> None:
    rng = random.Random(3)
    level, readings = 20.0, []
    for i in range(2000):
        level = min(100.0, level + 0.02)
        value = level + rng.gauss(0, 0.8)
        if rng.random() < 0.01:
            value = rng.uniform(0, 90)  # false echoes, as the simulator makes them
        readings.append((MON + i * 15 * MIN, value))
    assert detect_emptyings(readings) == []


# --- space use ---------------------------------------------------------------------------------


def test_a_room_day_against_its_opening_hours() -> None:
    reg, sink = registry(), Sink()
    r = Rollups(reg, sink.write)
    # interval 1800 s, so a reading holds for at most 5400 s.
    for hh, mm, people, co2 in [(7, 30, 0, 450), (8, 0, 10, 800), (9, 0, 20, 1200),
                                (10, 0, 5, 900), (12, 0, 0, 500)]:  # fmt: skip
        t = MON + hh * HOUR_MS + mm * MIN
        r.observe(reading(reg, "o1", t, people=people, co2_ppm=float(co2)))
    r.flush()

    def h(n: int) -> int:
        return MON + n * HOUR_MS

    assert sink.num("space_hourly", h(7), "measured_s", space="hall") == 1800
    assert sink.num("space_hourly", h(7), "open_s", space="hall") == 0
    assert sink.num("space_hourly", h(9), "people_mean", space="hall") == 20
    assert sink.num("space_hourly", h(9), "co2_good_pct", space="hall") == 0
    # 10:00's reading holds until 11:30; 11:30-12:00 is unmeasured.
    assert sink.num("space_hourly", h(11), "occupied_s", space="hall") == 1800
    assert sink.num("space_hourly", h(11), "measured_s", space="hall") == 1800
    assert sink.num("space_hourly", h(13), "measured_s", space="hall") == 1800
    day = sink.get("space_daily", MON, space="hall")
    assert float(day["open_s"]) == 4 * 3600
    assert float(day["occupied_open_s"]) == 3 * 3600 + 1800
    assert float(day["utilisation_pct"]) == pytest.approx(87.5)
    assert float(day["people_mean_open"]) == pytest.approx(135000 / 12600, abs=1e-3)
    assert day["people_peak"] == "20i"
    assert float(day["co2_good_pct"]) == pytest.approx(100 * 9000 / 12600, abs=0.01)
    impact = sink.get("impact_daily", MON)
    assert float(impact["open_h"]) == 4.0
    assert float(impact["occupied_h"]) == pytest.approx(3.5)
    # One device a day: 5 readings of the 48 its interval promises.
    assert sink.num("device_daily", MON, "readings", device="o1") == 5
    assert sink.num("device_daily", MON, "completeness_pct", device="o1") == pytest.approx(
        100 * 5 / 48, abs=0.01
    )


# --- emission factors --------------------------------------------------------------------------


def test_factor_csv_in_kg_and_in_fingrids_g_per_kwh() -> None:
    ours = parse_factor_csv(
        "time,kg_per_kwh\n2026-11-23T00:00:00Z,0.05\n2026-11-23T01:00+00:00,0.07\n"
    )
    assert ours == {MON: 0.05, MON + HOUR_MS: 0.07}
    fingrid = "startTime;endTime;value\n" + "".join(
        f"2026-11-23T00:{m:02d}:00.000Z;2026-11-23T00:{m + 3:02d}:00.000Z;{v}\n"
        for m, v in [(0, 40), (3, 50), (6, 60)]
    )
    assert parse_factor_csv(fingrid) == {MON: pytest.approx(0.05)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,value\n1,2\n", "header needs a time column"),
        ("time,kg_per_kwh\n2026-11-23T00:00:00,0.05\n", ":2: time '2026-11-23T00:00:00' has no"),
        ("time,kg_per_kwh\n1795392000,abc\n", ":2: could not convert"),
        ("time,kg_per_kwh\n1795392000,5\n", ":2: 5.0 kg/kWh is outside 0..2"),
        ("time,kg_per_kwh\n", "no rows"),
    ],
)
def test_factor_csv_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(FactorFileError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_factor_csv(text, "f.csv")


def test_a_factor_needs_its_source() -> None:
    from devices.site import SiteConfigError

    source = "  emission_factor_source: {kind: example, note: test constant}\n"
    with pytest.raises(SiteConfigError, match="emission_factor_source"):
        parse_site(SITE.replace(source, ""))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Statistics Finland", "plain text; give it as {kind: published, publisher"),
        ("{kind: published, publisher: Fingrid, where: dataset 265}", "year"),
        ("{kind: published, publisher: Fingrid, year: 2026}", "where"),
        ("{kind: statistic, note: x}", "does not match any of the expected tags"),
        ('{kind: example, note: "two\\nlines"}', "should match pattern"),
    ],
)
def test_a_factor_source_says_what_kind_it_is(source: str, message: str) -> None:
    from devices.site import SiteConfigError

    text = SITE.replace("{kind: example, note: test constant}", source)
    with pytest.raises(SiteConfigError, match=re.escape(message)):
        parse_site(text)


def test_an_example_factor_is_said_everywhere_and_stored_with_its_days() -> None:
    """The example is named with how to replace it (check-site, report, dashboard), and each
    day's emissions carry the source they were computed with, so a day rolled up with an
    example stays recognisable after the site file changes."""
    reg = registry()
    [notice] = reg.site.impact.example_notices()
    assert "example emission factor (0.1 kg/kWh), not a published statistic" in notice
    assert "table 14qt" in notice
    assert "emission_factors_csv" in notice
    sink = Sink()
    rollups = Rollups(reg, sink.write, EmissionFactors(0.1))
    for q in range(5):
        t = MON + q * 15 * MIN
        rollups.observe(reading(reg, "m1", t, energy_kwh=100 + q, power_w=4000.0))
    rollups.flush()
    day = sink.get("impact_daily", MON)
    assert day["factor_example"] == "true"
    assert parse_value(day["factor_source"]) == (
        "EXAMPLE factor, not a published statistic (test constant)"
    )
    assert "heat_factor_source" not in day  # no heat metered, no heat emissions to source
    published = Registry(parse_site(HEAT_SITE))
    assert published.site.impact.example_notices() == []


# --- order independence ------------------------------------------------------------------------


def scenario(reg: Registry) -> list[Reading]:
    rng = random.Random(11)
    out: list[Reading] = []
    kwh = 100.0
    for i in range(96):
        t = MON + i * 15 * MIN + rng.randrange(0, 60_000)
        kwh = 3.0 if i == 50 else kwh + rng.uniform(0, 2)  # a reset at 50
        if i not in range(60, 70):  # and a gap
            out.append(energy(reg, "m1", t, round(kwh, 3), rng.uniform(0, 5000)))
        out.append(reading(reg, "o1", t, people=rng.randrange(0, 30),
                           co2_ppm=rng.uniform(400, 1400)))  # fmt: skip
    out += [fill(reg, "b-bio", t, pct) for t, pct in bin_day(55.0, empty_at=40)]
    return out


def final_points(
    readings: list[Reading], flush_every: int, window_h: float = 1.0
) -> dict[tuple[str, int], str]:
    """The stored points after `readings` went through the evaluator's rounds: a flush every
    `flush_every` readings, the late ones repaired before the next flush, as
    `Evaluator._flush_rollups` does."""
    reg = registry()
    sink, stored = Sink(), Stored()
    r = Rollups(reg, sink.write, EmissionFactors(0.1), window_h=window_h)
    due: list[Repair] = []
    for i, x in enumerate(readings):
        y = Reading(x.measurement, reg.get(x.device.id), x.time_ms, x.fields)  # type: ignore[arg-type]
        stored.add(y)
        r.observe(y)
        if flush_every and i % flush_every == flush_every - 1:
            repair(r, due, stored)
            r.flush()
            due = r.take_late()
    repair(r, due, stored)
    settle(r, stored)
    return {
        k: ",".join(f"{f}={v}" for f, v in sorted(fields.items()))
        for k, fields in sink.points.items()
        if fields.get("retracted") != "true"
    }


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), flush_every=st.sampled_from([0, 7, 50, 300]))
def test_arrival_order_and_flush_timing_do_not_change_the_result(
    seed: int, flush_every: int
) -> None:
    readings = scenario(registry())
    in_order = final_points(sorted(readings, key=lambda x: x.time_ms), 0)
    shuffled = readings[:]
    # Late data comes in bursts, not uniformly: shuffle blocks of a few hours.
    random.Random(seed).shuffle(shuffled)
    replayed = shuffled + shuffled[: len(shuffled) // 5]  # and some twice
    assert final_points(replayed, flush_every) == in_order


@pytest.mark.parametrize("flush_every", [0, 50, 120])
def test_more_than_a_window_between_two_flushes_loses_nothing(flush_every: int) -> None:
    # A backfill: readings in time order, hours of them between flushes, a 2-hour window.
    readings = sorted(scenario(registry()), key=lambda x: x.time_ms)
    assert final_points(readings, flush_every, window_h=2) == final_points(readings, 0)


def sliced_points(
    readings: list[Reading], between: int, abandon_every: int = 0
) -> dict[tuple[str, int], str]:
    """As `final_points`, but every flush runs in steps with readings observed between its steps
    (as the ingestor's event loop interleaves them); with `abandon_every`, some flushes are
    abandoned half-way (the service stopping) and left to the next one."""
    reg = registry()
    sink = Sink()
    r = Rollups(reg, sink.write, EmissionFactors(0.1), window_h=2)
    pending = iter(readings)
    flushes = 0
    for x in pending:
        r.observe(Reading(x.measurement, reg.get(x.device.id), x.time_ms, x.fields))  # type: ignore[arg-type]
        if x.time_ms % (between * MIN) >= MIN:
            continue
        flushes += 1
        steps = r.flush_steps()
        for i, _ in enumerate(steps):
            if abandon_every and flushes % abandon_every == 0 and i == 3:
                steps.close()
                break
            y = next(pending, None)  # a reading arrives while the flush is suspended
            if y is not None:
                r.observe(Reading(y.measurement, reg.get(y.device.id), y.time_ms, y.fields))  # type: ignore[arg-type]
    r.flush()
    return {
        k: ",".join(f"{f}={v}" for f, v in sorted(fields.items()))
        for k, fields in sink.points.items()
        if fields.get("retracted") != "true"
    }


@pytest.mark.parametrize(("between", "abandon_every"), [(30, 0), (90, 0), (30, 3)])
def test_a_flush_in_slices_with_readings_between_them_gives_the_same_points(
    between: int, abandon_every: int
) -> None:
    readings = sorted(scenario(registry()), key=lambda x: x.time_ms)
    assert sliced_points(readings, between, abandon_every) == final_points(readings, 0)


def test_a_reading_behind_a_flushs_new_horizon_is_late_at_once() -> None:
    reg = registry()
    r = Rollups(reg, Sink().write, window_h=2)
    for i in range(10 * 4):  # ten hours of a meter, every 15 minutes
        r.observe(energy(reg, "m2", MON + i * 15 * MIN, 10.0 + i, 100.0))
    steps = r.flush_steps()
    next(steps)
    # The flush will keep the raw readings from 04:00 on (20 readings of a 15-minute meter): a
    # reading of 00:30 is already held for a repair, not put into the window it is leaving.
    r.observe(energy(reg, "m2", MON + 30 * MIN, 10.5, 100.0))
    assert (r.late, r.too_late) == (1, 0)
    for _ in steps:
        pass
    r.observe(energy(reg, "m2", MON + 45 * MIN, 10.7, 100.0))
    assert (r.late, r.too_late) == (2, 0)


def test_a_recompute_reads_before_its_first_day_but_writes_from_it() -> None:
    readings = sorted(scenario(registry()), key=lambda x: x.time_ms)
    everything = final_points(readings, 0)
    floor = MON + 12 * HOUR_MS
    reg, sink = registry(), Sink()
    r = Rollups(reg, sink.write, EmissionFactors(0.1), floor_ms=floor)
    for x in readings:
        r.observe(Reading(x.measurement, reg.get(x.device.id), x.time_ms, x.fields))  # type: ignore[arg-type]
    r.flush()
    assert r.too_late == 0
    assert sink.points
    assert min(t for _, t in sink.points) >= floor
    for key, fields in sink.points.items():
        if key[0].startswith(("energy_hourly", "space_hourly", "waste_emptying")):
            assert ",".join(f"{f}={v}" for f, v in sorted(fields.items())) == everything[key], key


HEAT_SITE = """
site: t
timezone: UTC
impact:
  heat_emission_factor_kg_per_kwh: 0.2
  heat_emission_factor_source:
    {kind: published, publisher: Test Energia Oy, year: 2025, where: a constant for the test}
devices:
  - {id: h1, kind: heat_meter, space: plant, role: district-heat-supply, interval_s: 900}
  - {id: h2, kind: heat_meter, space: cafe, role: sub-meter, interval_s: 900}
  - {id: w1, kind: water_meter, space: plant, role: main-supply, interval_s: 900}
"""


def test_district_heat_and_water_hours_days_and_site_totals() -> None:
    """Counters every 15 min: heat 10 kWh per quarter (40 kWh/h, 8 kgCO2e/h at 0.2), a
    sub-meter at half that, water 0.25 m³ per quarter; two hours of readings."""
    reg = Registry(parse_site(HEAT_SITE))
    sink = Sink()
    rollups = Rollups(reg, sink.write)
    for q in range(9):
        t = MON + q * 15 * MIN
        rollups.observe(reading(reg, "h1", t, heat_energy_kwh=1000 + 10 * q, heat_power_kw=40.0))
        rollups.observe(reading(reg, "h2", t, heat_energy_kwh=500 + 5 * q, heat_power_kw=20.0))
        rollups.observe(reading(reg, "w1", t, volume_m3=100 + 0.25 * q, flow_m3h=1.0))
    rollups.flush()
    assert sink.num("heat_hourly", MON, "kwh", device="h1") == pytest.approx(40.0)
    assert sink.num("heat_hourly", MON, "kgco2e", device="h1") == pytest.approx(8.0)
    assert sink.num("heat_hourly", MON, "power_mean_kw", device="h1") == pytest.approx(40.0)
    assert sink.num("heat_daily", MON, "kwh", device="h2") == pytest.approx(40.0)
    assert sink.num("water_hourly", MON + HOUR_MS, "m3", device="w1") == pytest.approx(1.0)
    assert "kgco2e" not in sink.get("water_hourly", MON, device="w1")
    # The site's day counts the substation only: the sub-meter is inside it.
    assert sink.num("impact_daily", MON, "heat_kwh") == pytest.approx(80.0)
    assert sink.num("impact_daily", MON, "heat_kgco2e") == pytest.approx(16.0)
    assert sink.num("impact_daily", MON, "water_m3") == pytest.approx(2.0)
    heat_day = sink.get("impact_daily", MON)
    assert heat_day["heat_factor_example"] == "false"
    assert parse_value(heat_day["heat_factor_source"]) == (
        "Test Energia Oy, 2025: a constant for the test"
    )
    with pytest.raises(KeyError):
        sink.get("energy_hourly", MON)
