"""The data contract in code: device kinds, their measurements and fields.

This module is the single source of truth that the decoders, the validator, the simulator and
the docs (docs/data-model.md) agree on. A field's InfluxDB type is fixed here because InfluxDB
rejects a write whose field type differs from what a shard already holds: an integer `people`
once written as a float would make every later point of that series fail.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

FieldType = Literal["float", "int", "bool", "str"]


class DeviceKind(enum.StrEnum):
    ENERGY_METER = "energy_meter"
    OCCUPANCY = "occupancy"
    WASTE_BIN = "waste_bin"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: FieldType
    unit: str
    required: bool = False
    # Physically plausible range, inclusive; a value outside it is a broken sensor or firmware,
    # not a reading, and is rejected with reason `out_of_range`.
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: DeviceKind
    measurement: str
    fields: dict[str, FieldSpec]
    # Fields the pipeline computes from payload fields and registry data; never accepted from
    # a payload, so a device cannot override them.
    derived: tuple[FieldSpec, ...] = ()
    # Registry attributes written as extra tags (besides site, space, device).
    extra_tags: tuple[str, ...] = ()
    # Default reporting interval of a device of this kind, seconds.
    default_interval_s: float = 60.0

    # Names of the required payload fields, computed once: the validator reads it per message.
    required: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        required = tuple(f.name for f in self.fields.values() if f.required)
        object.__setattr__(self, "required", required)


def _fields(*specs: FieldSpec) -> dict[str, FieldSpec]:
    return {s.name: s for s in specs}


SITE_TAG: Final = "site"
SPACE_TAG: Final = "space"
DEVICE_TAG: Final = "device"

DEVICE_STATUS_MEASUREMENT: Final = "device_status"
# The ingestor's own counts, one point per interval per instance (ingest.pipeline_stats).
PIPELINE_MEASUREMENT: Final = "pipeline"
# Online/offline comes from a native device's last will; the radio fields from LoRaWAN uplinks.
DEVICE_STATUS_FIELDS: Final = _fields(
    FieldSpec("online", "bool", "", description="true when `online`"),
    FieldSpec("rssi_dbm", "float", "dBm", False, -200, 50, "best gateway's signal strength"),
    FieldSpec("snr_db", "float", "dB", False, -50, 50, "best gateway's signal-to-noise ratio"),
    FieldSpec("frame_counter", "int", "", False, 0, 2**32 - 1, "LoRaWAN uplink frame counter"),
    FieldSpec("gateways", "int", "", False, 0, 10_000, "gateways that heard the uplink"),
)
STATUS_PAYLOADS: Final = {"online": True, "offline": False}

# Payload key carrying the reading's time; not a field.
TS_KEY: Final = "ts"

# Keyed by DeviceKind, which is a str enum, so a plain kind string looks up the same entry.
KINDS: Final[Mapping[str, KindSpec]] = {
    DeviceKind.ENERGY_METER: KindSpec(
        kind=DeviceKind.ENERGY_METER,
        measurement="energy",
        fields=_fields(
            FieldSpec(
                "power_w", "float", "W", True, -1_000_000, 1_000_000, "active power, + = import"
            ),
            FieldSpec("energy_kwh", "float", "kWh", True, 0, 1e12, "cumulative import energy"),
            FieldSpec("voltage_v", "float", "V", False, 0, 500, "phase voltage"),
            FieldSpec("current_a", "float", "A", False, 0, 10_000, "phase current"),
            FieldSpec(
                "energy_export_kwh", "float", "kWh", False, 0, 1e12, "cumulative export energy"
            ),
            FieldSpec("frequency_hz", "float", "Hz", False, 45, 65, "grid frequency"),
            # Per phase, from three-phase meters (Modbus sub-meters, the HAN port).
            *(
                FieldSpec(f"voltage_l{n}_v", "float", "V", False, 0, 500, f"phase L{n} voltage")
                for n in (1, 2, 3)
            ),
            *(
                FieldSpec(f"current_l{n}_a", "float", "A", False, 0, 10_000, f"phase L{n} current")
                for n in (1, 2, 3)
            ),
        ),
        # main-supply, sub-meter, pv-production, ev-charging: dashboards sum the main supply
        # for the site's power and split sub-meters by space without counting twice.
        extra_tags=("role",),
        default_interval_s=10.0,
    ),
    DeviceKind.OCCUPANCY: KindSpec(
        kind=DeviceKind.OCCUPANCY,
        measurement="occupancy",
        fields=_fields(
            FieldSpec("people", "int", "people", True, 0, 100_000, "people in the space now"),
            FieldSpec("co2_ppm", "float", "ppm", False, 0, 10_000, "CO2 concentration"),
            FieldSpec("temperature_c", "float", "°C", False, -50, 80, "air temperature"),
            FieldSpec("humidity_pct", "float", "%", False, 0, 100, "relative humidity"),
        ),
        default_interval_s=60.0,
    ),
    DeviceKind.WASTE_BIN: KindSpec(
        kind=DeviceKind.WASTE_BIN,
        measurement="waste_bin",
        fields=_fields(
            FieldSpec("distance_mm", "float", "mm", True, 0, 20_000, "sensor to waste surface"),
            FieldSpec("temperature_c", "float", "°C", False, -50, 150, "temperature in the bin"),
            FieldSpec("tilt", "bool", "", False, description="bin tipped over or lid open"),
            FieldSpec("battery_pct", "float", "%", False, 0, 100, "battery charge"),
        ),
        derived=(
            FieldSpec("fill_pct", "float", "%", True, 0, 100, "100 * (1 - distance_mm / depth_mm)"),
        ),
        extra_tags=("fraction",),
        default_interval_s=900.0,
    ),
}

MEASUREMENTS: Final = frozenset(
    {spec.measurement for spec in KINDS.values()} | {DEVICE_STATUS_MEASUREMENT}
)


# Units a partner payload may name (SenML, RFC 8428 and RFC 8798 symbols), as
# (sent unit, contract unit) -> (scale, offset): contract value = sent * scale + offset.
# A unit that is not here for the field's contract unit is rejected (`bad_unit`), never guessed.
UNIT_CONVERSIONS: Final[Mapping[tuple[str, str], tuple[float, float]]] = {
    ("W", "W"): (1.0, 0.0),
    ("kW", "W"): (1000.0, 0.0),
    ("kWh", "kWh"): (1.0, 0.0),
    ("Wh", "kWh"): (0.001, 0.0),
    ("J", "kWh"): (1 / 3.6e6, 0.0),
    ("V", "V"): (1.0, 0.0),
    ("mV", "V"): (0.001, 0.0),
    ("A", "A"): (1.0, 0.0),
    ("mA", "A"): (0.001, 0.0),
    ("Cel", "°C"): (1.0, 0.0),
    ("K", "°C"): (1.0, -273.15),
    ("%RH", "%"): (1.0, 0.0),
    ("%", "%"): (1.0, 0.0),
    ("%EL", "%"): (1.0, 0.0),
    ("ppm", "ppm"): (1.0, 0.0),
    ("m", "mm"): (1000.0, 0.0),
    ("cm", "mm"): (10.0, 0.0),
    ("mm", "mm"): (1.0, 0.0),
    ("count", "people"): (1.0, 0.0),
    ("dBm", "dBm"): (1.0, 0.0),
    ("dB", "dB"): (1.0, 0.0),
    ("Hz", "Hz"): (1.0, 0.0),
}


def fill_pct(distance_mm: float, depth_mm: float) -> float:
    """Share of the bin's depth that is filled, clamped to 0..100.

    Clamped because an ultrasonic sensor reads beyond the bottom (echo off a corner) or closer
    than the rim (a bag on top), and a fill level outside 0..100 means nothing to an operator.
    """
    pct = 100.0 * (1.0 - distance_mm / depth_mm)
    if pct < 0.0:
        return 0.0
    if pct > 100.0:
        return 100.0
    return pct


def telemetry_topic(site: str, device_id: str) -> str:
    return f"kera/{site}/{device_id}/telemetry"


def status_topic(site: str, device_id: str) -> str:
    return f"kera/{site}/{device_id}/status"


def deadletter_topic(site: str) -> str:
    """Where the ingestor publishes each rejected message (QoS 0), for live inspection."""
    return f"kera/{site}/deadletter"
