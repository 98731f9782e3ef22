"""Checks a decoded message against the registry and the data contract.

Every source (MQTT codecs now, serial gateways later) ends here, so a reading is held to the same
rules whichever way it arrived.
"""

from __future__ import annotations

import math

from devices import Registry
from devices.contract import DEVICE_STATUS_MEASUREMENT, FieldSpec, fill_pct
from devices.site import WasteBin
from ingest.reading import Decoded, FieldValue, Reading, Reason, Rejected


def _wrong_type(spec: FieldSpec, value: object, device_id: str) -> Rejected:
    return Rejected(
        Reason.WRONG_TYPE,
        f"{spec.name} must be {_TYPE_WORDS[spec.type]}, got {type(value).__name__} {value!r:.40}",
        device_id,
    )


_TYPE_WORDS = {"float": "a number", "int": "an integer", "bool": "true/false", "str": "a string"}


def _convert(spec: FieldSpec, value: object, device_id: str) -> FieldValue:
    kind = spec.type
    # bool is an int subclass in Python, so it is sorted out before any number check.
    if isinstance(value, bool):
        if kind == "bool":
            return value
        raise _wrong_type(spec, value, device_id)
    if kind == "bool":
        raise _wrong_type(spec, value, device_id)
    if kind == "str":
        if isinstance(value, str):
            return value
        raise _wrong_type(spec, value, device_id)
    out: float | int
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Rejected(Reason.NOT_FINITE, f"{spec.name}={value!r} is not finite", device_id)
        if kind == "int":
            if not value.is_integer():
                raise _wrong_type(spec, value, device_id)
            out = int(value)
        else:
            out = value
    elif isinstance(value, int):
        out = value
        if kind == "float":
            try:
                out = float(value)
            except OverflowError:
                out = math.inf
    else:
        raise _wrong_type(spec, value, device_id)
    if (spec.minimum is not None and out < spec.minimum) or (
        spec.maximum is not None and out > spec.maximum
    ):
        raise Rejected(
            Reason.OUT_OF_RANGE,
            f"{spec.name}={value!r:.40} {spec.unit} is outside {spec.minimum}..{spec.maximum}",
            device_id,
        )
    return out


class Validator:
    __slots__ = ("_registry",)

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def check(self, decoded: Decoded, received_ms: int) -> Reading:
        device_id = decoded.device_id
        device = self._registry.get(device_id)
        if device is None:
            raise Rejected(
                Reason.UNKNOWN_DEVICE,
                f"device {device_id!r} is not in the site registry",
                device_id,
            )
        time_ms = received_ms if decoded.time_ms is None else decoded.time_ms
        if decoded.status:
            status: dict[str, FieldValue] = {
                k: v for k, v in decoded.values.items() if isinstance(v, bool)
            }
            return Reading(DEVICE_STATUS_MEASUREMENT, device, time_ms, status)

        spec = device.spec
        specs = spec.fields
        fields: dict[str, FieldValue] = {}
        for name, value in decoded.values.items():
            field_spec = specs.get(name)
            if field_spec is None:
                raise Rejected(
                    Reason.UNKNOWN_FIELD,
                    f"field {name!r:.64} is not in the {spec.kind.value} contract",
                    device_id,
                )
            fields[name] = _convert(field_spec, value, device_id)
        for name in spec.required:
            if name not in fields:
                raise Rejected(
                    Reason.MISSING_FIELD,
                    f"required field {name!r} missing for {spec.kind.value}",
                    device_id,
                )
        if isinstance(device, WasteBin):
            distance = fields["distance_mm"]
            assert isinstance(distance, float)  # the contract types distance_mm as float
            fields["fill_pct"] = fill_pct(distance, device.depth_mm)
        return Reading(spec.measurement, device, time_ms, fields)
