"""Simulated devices: one small state machine per registry device, driven by simulated time.

Each device has its own random stream seeded from (seed, device id), so a device's readings do
not change when another device is added, and the same seed, start and site give the same
readings byte for byte.
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from zoneinfo import ZoneInfo

from devices import Registry
from devices.contract import PV_ROLE, SUPPLY_ROLE
from devices.site import (
    EnergyMeter,
    HeatMeter,
    IndoorAirSensor,
    OccupancySensor,
    PeopleCounter,
    Site,
    WasteBin,
    WaterMeter,
    WeatherStation,
)
from firmware_sim._sim_base import (
    BUILT_IN_WEEK,
    EVENT_SPACES,
    OUTDOOR_CO2_PPM,
    WEATHER_MEMORY_DAYS,
    WEATHER_PERSISTENCE,
    SimDevice,
    SimReading,
    Values,
    Week,
    busy_factor,
    event_hours,
    opening_factor,
    outdoor_temperature,
    site_week,
    weather_offset,
    week_factor,
)
from firmware_sim._sim_climate import (
    SimCatalogueDevice,
    SimHeatMeter,
    SimIndoorAir,
    SimPeopleCounter,
    SimWaterMeter,
    SimWeatherStation,
)


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


def build_fleet(registry: Registry, seed: int, busy_weeks: float = 0.0) -> list[SimDevice]:
    """One simulated device per registry device; `busy_weeks` > 0 makes some weeks busier than
    others (the standard deviation of each week's log factor, `week_factor`)."""
    tz = ZoneInfo(registry.site.timezone)
    site = registry.site_id
    fleet: list[SimDevice] = []
    week = site_week(registry.site.impact)
    for d in registry:
        sim = _SIMULATORS.get(type(d), SimCatalogueDevice)(d, site, seed, tz)
        sim.week = week
        sim.busy_weeks = busy_weeks
        fleet.append(sim)
    return fleet


__all__ = [
    "BUILT_IN_WEEK",
    "EVENT_SPACES",
    "OUTDOOR_CO2_PPM",
    "WEATHER_MEMORY_DAYS",
    "WEATHER_PERSISTENCE",
    "SimCatalogueDevice",
    "SimDevice",
    "SimEnergyMeter",
    "SimHeatMeter",
    "SimIndoorAir",
    "SimOccupancy",
    "SimPeopleCounter",
    "SimReading",
    "SimWasteBin",
    "SimWaterMeter",
    "SimWeatherStation",
    "Values",
    "Week",
    "build_fleet",
    "busy_factor",
    "event_hours",
    "opening_factor",
    "outdoor_temperature",
    "scale_site",
    "site_week",
    "weather_offset",
    "week_factor",
]
