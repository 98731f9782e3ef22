"""Simulated heat and water meters, weather stations, indoor-air sensors, people counters and
devices of kinds a site adds (firmware_sim.fleet has the energy meters, rooms and bins)."""

from __future__ import annotations

import math
from zoneinfo import ZoneInfo

from devices import AnyDevice
from devices.contract import HEAT_SUPPLY_ROLE
from devices.site import (
    HeatMeter,
    IndoorAirSensor,
    PeopleCounter,
    WaterMeter,
    WeatherStation,
)
from firmware_sim._sim_base import (
    OUTDOOR_CO2_PPM,
    SimDevice,
    Values,
    outdoor_temperature,
)


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
