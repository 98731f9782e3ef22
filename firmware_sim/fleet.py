"""Simulated devices: one small state machine per registry device, driven by simulated time.

Each device has its own random stream seeded from (seed, device id), so a device's readings do
not change when another device is added, and the same seed, start and site give the same
readings byte for byte.
"""

from __future__ import annotations

import functools
import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from devices import AnyDevice, Registry
from devices.contract import HEAT_SUPPLY_ROLE, PV_ROLE, SUPPLY_ROLE, telemetry_topic
from devices.site import (
    EnergyMeter,
    HeatMeter,
    Impact,
    IndoorAirSensor,
    OccupancySensor,
    PeopleCounter,
    Site,
    WasteBin,
    WaterMeter,
    WeatherStation,
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


def busy_factor(local: datetime, seed: int, space: str, week: Week = BUILT_IN_WEEK) -> float:
    """opening_factor, raised to a full house during an evening event in an event space."""
    busy = opening_factor(local, week)
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

    def next_due(self, now_ms: int) -> int:
        jitter = self.rng.uniform(0.9, 1.1)
        return now_ms + max(1, round(self.interval_s * 1000 * jitter))

    def local(self, time_ms: int) -> datetime:
        return datetime.fromtimestamp(time_ms / 1000, UTC).astimezone(self.tz)

    def busy(self, local: datetime) -> float:
        return busy_factor(local, self.seed, self.device.space, self.week)

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


class SimEnergyMeter(SimDevice):
    device: EnergyMeter

    def __init__(self, device: EnergyMeter, site: str, seed: int, tz: ZoneInfo) -> None:
        super().__init__(device, site, seed, tz)
        self.energy_kwh = round(self.rng.uniform(1_000, 50_000), 3)
        self.export_kwh = round(self.rng.uniform(0, 2_000), 3) if device.role == PV_ROLE else 0.0
        self.ev_sessions: list[float] = []  # remaining seconds per charging car

    def _power(self, local: datetime, dt_s: float) -> float:
        busy = self.busy(local)
        hour = local.hour + local.minute / 60
        role = self.device.role or "sub-meter"
        noise = self.rng.gauss(1.0, 0.04)
        if role == SUPPLY_ROLE:
            # Pumps, fans and the air handlers' heating coils work harder in the cold.
            cold = max(0.0, 17.0 - outdoor_temperature(local, self.seed))
            return (6_000 + 18_000 * busy + 250 * cold) * noise
        if role == "ev-charging":
            self.ev_sessions = [s - dt_s for s in self.ev_sessions if s - dt_s > 0]
            arrival_p = (0.3 if 7 <= hour < 18 else 0.05) * dt_s / 3600
            if len(self.ev_sessions) < 4 and self.rng.random() < arrival_p:
                self.ev_sessions.append(self.rng.uniform(1800, 3 * 3600))
            return 11_000 * len(self.ev_sessions) * noise + 15
        if role == PV_ROLE:
            day = local.timetuple().tm_yday
            # Espoo: ~19 h of daylight at midsummer, ~6 h at midwinter.
            half_day = 6.25 + 3.25 * math.cos(2 * math.pi * (day - 172) / 365)
            x = (hour - 13.0) / half_day
            sun = max(0.0, math.cos(x * math.pi / 2)) if abs(x) < 1 else 0.0
            clouds = self.rng.uniform(0.4, 1.0)
            produced = (
                20_000 * sun * clouds * (0.5 + 0.5 * math.cos(2 * math.pi * (day - 172) / 365))
            )
            return -produced if produced > 5 else 5.0
        if self.device.space == "cafe":
            lunch = math.exp(-(((hour - 11.5) / 0.8) ** 2)) if busy else 0.0
            return (1_200 + 4_000 * busy + 9_000 * lunch) * noise
        return (400 + 3_000 * busy) * noise

    def step(self, time_ms: int, dt_s: float) -> Values:
        local = self.local(time_ms)
        power = self._power(local, dt_s)
        if power > 0:
            power *= self.effect(local)
        if power > 0:
            self.energy_kwh += power * dt_s / 3_600_000
        else:
            self.export_kwh += -power * dt_s / 3_600_000
        voltage = self.rng.gauss(230.0, 1.5)
        current = abs(power) / (voltage * self.device.phases)
        values: Values = {
            "power_w": round(power, 1),
            "energy_kwh": round(self.energy_kwh, 3),
            "voltage_v": round(voltage, 1),
            "current_a": round(current, 2),
        }
        if self.device.role == PV_ROLE:
            values["energy_export_kwh"] = round(self.export_kwh, 3)
        return values


class SimOccupancy(SimDevice):
    device: OccupancySensor

    def __init__(self, device: OccupancySensor, site: str, seed: int, tz: ZoneInfo) -> None:
        super().__init__(device, site, seed, tz)
        self.capacity = device.capacity or 20
        self.people = 0
        self.co2 = OUTDOOR_CO2_PPM + self.rng.uniform(0, 40)
        self.temperature = self.rng.uniform(20.0, 21.5)
        self.humidity = self.rng.uniform(28.0, 40.0)
        # Each room's popularity, so rooms differ.
        self.popularity = self.rng.uniform(0.4, 0.9)

    def in_use(self, local: datetime, busy: float) -> bool:
        """Whether the room is in use in this half-hour slot: booked or dropped in on, more
        likely when the house is busy; seeded per slot so a slot is in use or not as a whole."""
        slot = local.replace(minute=local.minute - local.minute % 30, second=0, microsecond=0)
        chance = min(1.0, self.popularity * (0.3 + 0.9 * busy) * self.effect(local))
        return random.Random(f"{self.seed}:{self.device.id}:{slot.isoformat()}").random() < chance

    def step(self, time_ms: int, dt_s: float) -> Values:
        local = self.local(time_ms)
        busy = self.busy(local)
        target = self.capacity * self.popularity * busy
        if busy == 0.0 or not self.in_use(local, busy):
            self.people = 0
        else:
            drift = (target - self.people) * 0.3 + self.rng.gauss(0, max(1.0, target * 0.1))
            self.people = max(1, min(self.capacity * 2, round(self.people + drift)))
        # CO2 approaches a steady state set by people per room capacity (time constant ~20 min);
        # ventilation pulls it back to outdoor air when the room empties.
        steady = OUTDOOR_CO2_PPM + 900.0 * self.people / self.capacity
        k = 1 - math.exp(-dt_s / 1200) if dt_s else 0.0
        self.co2 += (steady - self.co2) * k + self.rng.gauss(0, 5)
        self.co2 = max(OUTDOOR_CO2_PPM - 20, self.co2)
        self.temperature += ((20.5 + 2.5 * self.people / self.capacity) - self.temperature) * k
        self.temperature += self.rng.gauss(0, 0.05)
        self.humidity = min(80.0, max(15.0, self.humidity + self.rng.gauss(0, 0.3)))
        return {
            "people": self.people,
            "co2_ppm": round(self.co2, 1),
            "temperature_c": round(self.temperature, 2),
            "humidity_pct": round(self.humidity, 1),
        }


# Share of the bin filled per opening hour, by fraction.
FILL_PER_BUSY_HOUR = {
    "mixed": 0.012,
    "bio": 0.018,
    "cardboard": 0.015,
    "plastic": 0.013,
    "glass": 0.004,
    "metal": 0.003,
    "paper": 0.008,
}
# Weekdays (Mon=0) the collection truck empties the fraction, at about 07:00.
EMPTYING_DAYS = {
    "mixed": (1, 4),
    "bio": (0, 3),
    "cardboard": (2,),
    "plastic": (2,),
    "glass": (4,),
    "metal": (4,),
    "paper": (2,),
}


class SimWasteBin(SimDevice):
    device: WasteBin

    def __init__(self, device: WasteBin, site: str, seed: int, tz: ZoneInfo) -> None:
        super().__init__(device, site, seed, tz)
        self.fill = self.rng.uniform(0.05, 0.6)
        self.battery = self.rng.uniform(60.0, 100.0)
        self.rate = FILL_PER_BUSY_HOUR[device.fraction.value] * self.rng.uniform(0.7, 1.3)
        self.emptied_on: str | None = None
        # The truth the rollups' emptying detection is checked against: (time ms, fill % just
        # before). The fill is capped at 100 %: overflow above the rim is not in the bin's volume.
        self.ledger: list[tuple[int, float]] = []
        # About a year and a half on a battery; the battery-drain fault speeds this up.
        self.drain_pct_per_hour = 0.002

    def step(self, time_ms: int, dt_s: float) -> Values:
        local = self.local(time_ms)
        frac = self.device.fraction.value
        today = local.date().isoformat()
        if local.weekday() in EMPTYING_DAYS[frac] and local.hour >= 7 and self.emptied_on != today:
            self.emptied_on = today
            self.ledger.append((time_ms, min(self.fill, 1.0) * 100))
            self.fill = self.rng.uniform(0.0, 0.03)
        busy = self.busy(local)
        rate = self.rate * self.effect(local)
        self.fill = min(1.05, self.fill + rate * busy * dt_s / 3600 * self.rng.uniform(0.5, 1.5))
        self.battery = max(0.0, self.battery - dt_s / 3600 * self.drain_pct_per_hour)
        depth = self.device.depth_mm
        distance = depth * (1 - self.fill) + self.rng.gauss(0, 8)
        if self.rng.random() < 0.01:
            # A false echo off the bin wall.
            distance = self.rng.uniform(100, depth)
        distance = min(max(distance, 30.0), depth + 50)
        return {
            "distance_mm": round(distance, 0),
            "temperature_c": round(4 + 12 * busy + self.rng.gauss(0, 0.5), 1),
            "tilt": False,
            "battery_pct": round(self.battery, 1),
        }


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


class SimHeatMeter(SimDevice):
    """A district-heat substation: heat follows the heating degree (20 °C inside against the
    outdoor air), a little more while the house is open and ventilated, plus hot tap water."""

    device: HeatMeter

    def __init__(self, device: HeatMeter, site: str, seed: int, tz: ZoneInfo) -> None:
        super().__init__(device, site, seed, tz)
        self.heat_kwh = round(self.rng.uniform(50_000, 900_000), 1)
        self.volume_m3 = round(self.rng.uniform(1_000, 20_000), 2)
        self.size = 1.0 if (device.role or HEAT_SUPPLY_ROLE) == HEAT_SUPPLY_ROLE else 0.3

    def step(self, time_ms: int, dt_s: float) -> Values:
        local = self.local(time_ms)
        outdoor = outdoor_temperature(local, self.seed)
        busy = self.busy(local)
        kw = self.size * (4.0 * max(0.0, 17.0 - outdoor) + 25.0 * busy + 8.0)
        kw *= self.rng.gauss(1.0, 0.03) * self.effect(local)
        supply = min(115.0, max(65.0, 75.0 + 1.2 * max(0.0, 5.0 - outdoor)))
        ret = supply - (20.0 + 10.0 * min(1.0, kw / (150.0 * self.size)))
        # Heat carried by water: kW = flow[m³/h] * 4.18 kJ/kgK * 983 kg/m³ * ΔT / 3600.
        flow = kw / (1.1417 * (supply - ret))
        self.heat_kwh += kw * dt_s / 3600
        self.volume_m3 += flow * dt_s / 3600
        return {
            "heat_energy_kwh": round(self.heat_kwh, 2),
            "heat_power_kw": round(kw, 2),
            "flow_m3h": round(flow, 3),
            "volume_m3": round(self.volume_m3, 3),
            "supply_temp_c": round(supply, 1),
            "return_temp_c": round(ret, 1),
        }


class SimWaterMeter(SimDevice):
    device: WaterMeter

    def __init__(self, device: WaterMeter, site: str, seed: int, tz: ZoneInfo) -> None:
        super().__init__(device, site, seed, tz)
        self.volume_m3 = round(self.rng.uniform(100, 5_000), 3)

    def step(self, time_ms: int, dt_s: float) -> Values:
        busy = self.busy(self.local(time_ms))
        # Taps and toilets: about 1.5 m³ over a busy day at the meeting place, a trickle at night.
        flow = max(0.0, (0.005 + 0.25 * busy) * self.rng.uniform(0.5, 1.5))
        self.volume_m3 += flow * dt_s / 3600
        return {
            "volume_m3": round(self.volume_m3, 4),
            "flow_m3h": round(flow, 4),
            "temperature_c": round(9.0 + self.rng.gauss(0, 0.3), 1),
            "leak": False,
        }


class SimWeatherStation(SimDevice):
    device: WeatherStation

    def __init__(self, device: WeatherStation, site: str, seed: int, tz: ZoneInfo) -> None:
        super().__init__(device, site, seed, tz)
        self.pressure = self.rng.uniform(995, 1025)

    def step(self, time_ms: int, dt_s: float) -> Values:
        local = self.local(time_ms)
        day = local.timetuple().tm_yday
        hour = local.hour + local.minute / 60
        half_day = 6.25 + 3.25 * math.cos(2 * math.pi * (day - 172) / 365)
        x = (hour - 13.0) / half_day
        sun = max(0.0, math.cos(x * math.pi / 2)) if abs(x) < 1 else 0.0
        peak = 350 + 450 * (0.5 + 0.5 * math.cos(2 * math.pi * (day - 172) / 365))
        self.pressure = min(1060.0, max(950.0, self.pressure + self.rng.gauss(0, 0.2)))
        wind = abs(self.rng.gauss(4.0, 2.0))
        rain = self.rng.random() < 0.05
        return {
            "temperature_c": round(outdoor_temperature(local, self.seed), 2),
            "humidity_pct": round(min(100.0, max(20.0, 80 - 25 * sun + self.rng.gauss(0, 3))), 1),
            "pressure_hpa": round(self.pressure, 1),
            "wind_speed_ms": round(wind, 1),
            "wind_gust_ms": round(wind * self.rng.uniform(1.2, 1.8), 1),
            "wind_direction_deg": round(self.rng.uniform(0, 360), 0),
            "solar_irradiance_wm2": round(peak * sun * self.rng.uniform(0.3, 1.0), 1),
            "precipitation_mm": round(self.rng.uniform(0.1, 1.5), 1) if rain else 0.0,
        }


class SimIndoorAir(SimDevice):
    """A room's air without a people counter: CO2 and warmth follow how busy the room is."""

    device: IndoorAirSensor

    def __init__(self, device: IndoorAirSensor, site: str, seed: int, tz: ZoneInfo) -> None:
        super().__init__(device, site, seed, tz)
        self.co2 = OUTDOOR_CO2_PPM + self.rng.uniform(0, 40)
        self.temperature = self.rng.uniform(20.0, 21.5)
        self.humidity = self.rng.uniform(28.0, 40.0)
        self.load = self.rng.uniform(0.4, 0.9)

    def step(self, time_ms: int, dt_s: float) -> Values:
        local = self.local(time_ms)
        busy = self.busy(local) * self.load
        steady = OUTDOOR_CO2_PPM + 800.0 * busy
        k = 1 - math.exp(-dt_s / 1200) if dt_s else 0.0
        self.co2 = max(
            OUTDOOR_CO2_PPM - 20, self.co2 + (steady - self.co2) * k + self.rng.gauss(0, 5)
        )
        self.temperature += ((20.5 + 2.0 * busy) - self.temperature) * k + self.rng.gauss(0, 0.05)
        self.humidity = min(80.0, max(15.0, self.humidity + self.rng.gauss(0, 0.3)))
        return {
            "co2_ppm": round(self.co2, 1),
            "temperature_c": round(self.temperature, 2),
            "humidity_pct": round(self.humidity, 1),
            "tvoc_ugm3": round(max(0.0, 80 + 250 * busy + self.rng.gauss(0, 15)), 1),
            "pm2_5_ugm3": round(max(0.0, 4 + self.rng.gauss(0, 1.5)), 1),
            "pm10_ugm3": round(max(0.0, 7 + self.rng.gauss(0, 2.5)), 1),
            "pressure_hpa": round(1013 + self.rng.gauss(0, 0.5), 1),
            "illuminance_lux": round(max(0.0, 40 + 400 * (busy > 0) + self.rng.gauss(0, 20)), 0),
        }


class SimPeopleCounter(SimDevice):
    """A door-line counter with zones: people walk in and out, spread over up to four zones."""

    device: PeopleCounter
    ZONES = 4

    def __init__(self, device: PeopleCounter, site: str, seed: int, tz: ZoneInfo) -> None:
        super().__init__(device, site, seed, tz)
        self.capacity = device.capacity or 30
        self.people = 0
        self.popularity = self.rng.uniform(0.4, 0.9)

    def step(self, time_ms: int, dt_s: float) -> Values:
        busy = self.busy(self.local(time_ms))
        if busy == 0.0:
            # Closed, and no event: whoever is inside leaves, and nobody comes. The noise and
            # churn below would otherwise let the count random-walk above zero all night.
            came, left = 0, self.people
        else:
            target = round(self.capacity * self.popularity * busy)
            change = target - self.people + round(self.rng.gauss(0, 1))
            churn = self.rng.randint(0, max(1, target // 4))
            came = max(0, change) + churn
            left = min(self.people + came, max(0, -change) + churn)
        self.people = self.people + came - left
        shares = [self.rng.random() for _ in range(self.ZONES)]
        zones = [int(self.people * w / sum(shares)) for w in shares]
        zones[0] += self.people - sum(zones)
        values: Values = {"people": self.people, "count_in": came, "count_out": left}
        for i, n in enumerate(zones, 1):
            values[f"zone_{i}_people"] = n
        return values


class SimCatalogueDevice(SimDevice):
    """A device of a kind a site file added: each numeric field wanders inside its range, so
    a technician can see the kind's data flow before the real sensor is installed."""

    def __init__(self, device: AnyDevice, site: str, seed: int, tz: ZoneInfo) -> None:
        super().__init__(device, site, seed, tz)
        # name -> (value, low, high) for each numeric field
        self.state: dict[str, tuple[float, float, float]] = {}
        for f in device.spec.fields.values():
            if f.type in ("float", "int"):
                low = f.minimum if f.minimum is not None else 0.0
                high = f.maximum if f.maximum is not None else low + 100.0
                self.state[f.name] = (self.rng.uniform(low, (low + high) / 2), low, high)

    def step(self, time_ms: int, dt_s: float) -> Values:
        values: Values = {}
        fields = self.device.spec.fields
        for name, (last, low, high) in self.state.items():
            value = min(high, max(low, last + self.rng.gauss(0, (high - low) * 0.001)))
            self.state[name] = (value, low, high)
            values[name] = round(value) if fields[name].type == "int" else round(value, 3)
        return values


# The simulator of each device class; a kind a site file adds gets SimCatalogueDevice.
_SIMULATORS: dict[type, type[SimDevice]] = {
    EnergyMeter: SimEnergyMeter,
    OccupancySensor: SimOccupancy,
    WasteBin: SimWasteBin,
    HeatMeter: SimHeatMeter,
    WaterMeter: SimWaterMeter,
    WeatherStation: SimWeatherStation,
    IndoorAirSensor: SimIndoorAir,
    PeopleCounter: SimPeopleCounter,
}


def scale_site(site: Site, n: int) -> Site:
    """The site with every device repeated `n` times (ids get -001, -002, ...; dev_euis stay
    unique), for load tests. Give the same file to the ingestor: `kera-sim site --scale N`."""
    if n <= 1:
        return site
    devices = []
    for d in site.devices:
        for k in range(1, n + 1):
            changes: dict[str, object] = {"id": f"{d.id}-{k:03d}"}
            if d.dev_eui is not None:
                changes["dev_eui"] = f"{int(d.dev_eui, 16) ^ (k << 40):016x}"
            devices.append(d.model_copy(update=changes))
    # A pilot scoped to devices covers every copy of them (its spaces stay as they are).
    pilots = tuple(
        p.model_copy(update={"scope": p.scope.model_copy(update={"devices": tuple(
            f"{d}-{k:03d}" for d in p.scope.devices for k in range(1, n + 1))})})
        for p in site.pilots
    )  # fmt: skip
    return site.model_copy(update={"devices": devices, "pilots": pilots})


def build_fleet(registry: Registry, seed: int) -> list[SimDevice]:
    tz = ZoneInfo(registry.site.timezone)
    site = registry.site_id
    fleet: list[SimDevice] = []
    week = site_week(registry.site.impact)
    for d in registry:
        sim = _SIMULATORS.get(type(d), SimCatalogueDevice)(d, site, seed, tz)
        sim.week = week
        fleet.append(sim)
    return fleet
