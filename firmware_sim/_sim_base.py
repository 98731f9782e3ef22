"""The simulated device's base, its readings, and the calendar and weather every device's
behaviour follows (busy hours, events, outdoor temperature): firmware_sim.fleet has the devices.
"""

from __future__ import annotations

import functools
import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from devices import AnyDevice
from devices.contract import telemetry_topic
from devices.site import (
    Impact,
)

OUTDOOR_CO2_PPM = 420.0

# A reading's values; `str` only ever appears when a fault makes a value the wrong type.
Values = dict[str, float | int | bool | str]


@dataclass(frozen=True, slots=True)
class SimReading:
    device_id: str
    kind: str
    topic: str
    time_ms: int
    values: Values

    def payload(self) -> bytes:
        return json.dumps(
            {"ts": self.time_ms, **self.values}, separators=(",", ":"), sort_keys=False
        ).encode()


# Opening hours per weekday (Monday first) as (opens, closes) in local hours, None: closed.
Week = tuple[tuple[float, float] | None, ...]
# Without opening hours in the site file: weekdays 8-20, Saturday 10-16, closed on Sunday.
BUILT_IN_WEEK: Week = ((8.0, 20.0),) * 5 + ((10.0, 16.0), None)


def site_week(impact: Impact) -> Week:
    """The site file's opening hours (`impact.opening_hours`), or the built-in week; computed
    once per fleet, not per reading."""
    if not impact.opening_hours:
        return BUILT_IN_WEEK
    return tuple(
        None if (m := impact.open_minutes(wd)) is None else (m[0] / 60, m[1] / 60)
        for wd in range(7)
    )


def opening_factor(local: datetime, week: Week = BUILT_IN_WEEK) -> float:
    """How busy the meeting place is, 0..1, within the week's opening hours, with a lunch and
    an afternoon peak."""
    hour = local.hour + local.minute / 60
    wd = local.weekday()
    hours = week[wd]
    if hours is None:
        return 0.0
    open_h, close_h = hours
    if not open_h <= hour < close_h:
        return 0.0
    lunch = math.exp(-(((hour - 12.0) / 1.2) ** 2))
    afternoon = 0.7 * math.exp(-(((hour - 15.5) / 1.8) ** 2))
    base = 0.25 if wd < 5 else 0.15
    return min(1.0, base + 0.75 * max(lunch, afternoon))


# Spaces where the evening events (talks, meetups, hackathons) happen.
EVENT_SPACES = frozenset({"main-hall", "cafe"})


def event_hours(seed: int, day: date) -> tuple[float, float] | None:
    """The site's evening event on `day`, as (start, end) local hours, or None. About one
    weekday in four, seeded per day so every device of the site agrees."""
    rng = random.Random(f"{seed}:event:{day.isoformat()}")
    if day.weekday() >= 5 or rng.random() >= 0.25:
        return None
    start = rng.choice((17.0, 17.5, 18.0))
    return start, start + rng.uniform(2.0, 3.5)


@functools.lru_cache(maxsize=4096)
def week_factor(seed: int, year: int, week: int, sd: float) -> float:
    """How busy an ISO week is against the usual (busy weeks, quiet ones, school holidays): a
    lognormal factor with mean 1 whose log has standard deviation `sd`, seeded by the week so
    every device of the site agrees; 1 when `sd` is 0."""
    if sd <= 0:
        return 1.0
    draw = random.Random(f"{seed}:week:{year}-{week}").gauss(0, sd)
    return math.exp(draw - sd * sd / 2)


def busy_factor(
    local: datetime, seed: int, space: str, week: Week = BUILT_IN_WEEK, busy_weeks: float = 0.0
) -> float:
    """opening_factor, scaled by the week's factor (`busy_weeks`: its log's standard deviation)
    and raised to a full house during an evening event in an event space."""
    busy = opening_factor(local, week)
    if busy and busy_weeks > 0:
        year, iso_week, _ = local.isocalendar()
        busy = min(1.0, busy * week_factor(seed, year, iso_week, busy_weeks))
    if space in EVENT_SPACES:
        event = event_hours(seed, local.date())
        hour = local.hour + local.minute / 60
        if event is not None and event[0] <= hour < event[1]:
            return max(busy, 0.9)
    return busy


class SimDevice:
    def __init__(self, device: AnyDevice, site: str, seed: int, tz: ZoneInfo) -> None:
        self.device = device
        self.topic = telemetry_topic(site, device.id)
        self.rng = random.Random(f"{seed}:{device.id}")
        self.seed = seed
        self.tz = tz
        self.interval_s = device.expected_interval_s
        self.last_ms: int | None = None
        # An injected pilot effect (firmware_sim.pilots): a factor on what the device measures,
        # from a local date on.
        self.effect_from: date | None = None
        self.effect_factor = 1.0
        # The site's opening hours (build_fleet sets them from the site file).
        self.week: Week = BUILT_IN_WEEK
        # Week-to-week variation of how busy the house is (build_fleet; 0: every week alike).
        self.busy_weeks = 0.0

    def next_due(self, now_ms: int) -> int:
        jitter = self.rng.uniform(0.9, 1.1)
        return now_ms + max(1, round(self.interval_s * 1000 * jitter))

    def local(self, time_ms: int) -> datetime:
        return datetime.fromtimestamp(time_ms / 1000, UTC).astimezone(self.tz)

    def busy(self, local: datetime) -> float:
        return busy_factor(local, self.seed, self.device.space, self.week, self.busy_weeks)

    def effect(self, local: datetime) -> float:
        """The injected pilot's factor at `local`, 1 outside it."""
        if self.effect_from is not None and local.date() >= self.effect_from:
            return self.effect_factor
        return 1.0

    def read(self, time_ms: int) -> SimReading:
        dt = 0.0 if self.last_ms is None else (time_ms - self.last_ms) / 1000
        self.last_ms = time_ms
        return SimReading(
            self.device.id, self.device.kind, self.topic, time_ms, self.step(time_ms, dt)
        )

    def step(self, time_ms: int, dt_s: float) -> Values:
        raise NotImplementedError


def outdoor_temperature(local: datetime, seed: int) -> float:
    """Espoo's outdoor air, °C: a seasonal curve (about -5 in February, +17 in July), a daily
    swing, and the day's weather, the same for every device of the site."""
    day = local.timetuple().tm_yday
    hour = local.hour + local.minute / 60
    season = 6.0 - 11.0 * math.cos(2 * math.pi * (day - 20) / 365)
    daily = 3.0 * math.cos(2 * math.pi * (hour - 15) / 24)
    return season + daily + weather_offset(seed, local.date())


# Weather persists: a mild spell or a cold snap lasts days. The day's offset from the seasonal
# curve is an AR(1) of per-day shocks (each seeded by its date, so any start agrees), truncated
# after WEATHER_MEMORY_DAYS; sd 3.5 °C overall.
WEATHER_PERSISTENCE = 0.7
WEATHER_MEMORY_DAYS = 21
_WEATHER_SHOCK_SD = 3.5 * math.sqrt(1 - WEATHER_PERSISTENCE**2)


@functools.lru_cache(maxsize=4096)
def weather_offset(seed: int, day: date) -> float:
    offset = 0.0
    for back in range(WEATHER_MEMORY_DAYS, -1, -1):
        shock_day = (day - timedelta(days=back)).isoformat()
        shock = random.Random(f"{seed}:weather:{shock_day}").gauss(0, _WEATHER_SHOCK_SD)
        offset = WEATHER_PERSISTENCE * offset + shock
    return offset
