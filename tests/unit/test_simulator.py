from __future__ import annotations

import json

from devices import Registry
from firmware_sim import build_fleet, schedule
from ingest.codecs import native
from ingest.validate import Validator

START = 1_793_599_200_000  # 2026-11-02 08:00 Helsinki (+02:00), a Monday
DAY_MS = 86_400_000


def _readings(seed: int) -> list[tuple[str, bytes]]:
    fleet = build_fleet(Registry.load(), seed)
    return [(r.topic, r.payload()) for r in schedule(fleet, START, START + DAY_MS // 4)]


def test_same_seed_same_bytes() -> None:
    assert _readings(3) == _readings(3)
    assert _readings(3) != _readings(4)


def test_a_simulated_day_passes_the_contract_and_behaves() -> None:
    registry = Registry.load()
    validator = Validator(registry)
    energy: dict[str, float] = {}
    people_at_night = 0
    people_by_day = 0
    for r in schedule(build_fleet(registry, 1), START, START + DAY_MS):
        reading = validator.check(native.decode(r.topic, r.payload(), "kera")[0], 0)
        assert json.loads(r.payload())["ts"] == reading.time_ms
        if reading.measurement == "energy":
            kwh = float(reading.fields["energy_kwh"])
            assert kwh >= energy.get(r.device_id, 0.0)
            energy[r.device_id] = kwh
        if reading.measurement == "occupancy":
            hour = (reading.time_ms - START) / 3_600_000 + 8  # local hour
            if hour % 24 < 7 or hour % 24 >= 21:
                people_at_night += int(reading.fields["people"])
            elif 11 <= hour < 13:
                people_by_day += int(reading.fields["people"])
    assert len(energy) == 5
    assert people_at_night == 0 and people_by_day > 0
