"""Checks a decoded message against the registry and the data contract.

Every source (every codec, and serial gateways later) ends here, so a reading is held to the same
rules whichever way it arrived: the device is registered, its vendor field names and units are
mapped to the contract's, every field is known, typed, finite and plausible, and its time is
within the limits.
"""

from __future__ import annotations

import math

from devices import AnyDevice, Registry
from devices.contract import (
    DEVICE_STATUS_FIELDS,
    DEVICE_STATUS_MEASUREMENT,
    UNIT_CONVERSIONS,
    FieldSpec,
    fill_pct,
)
from devices.site import FieldMap, WasteBin
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


def _map_value(vendor: str, m: FieldMap, value: object, device_id: str) -> object:
    if m.scale == 1.0 and m.offset == 0.0:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(
            Reason.WRONG_TYPE,
            f"{vendor} must be a number to scale into {m.to}, got {value!r:.40}",
            device_id,
        )
    try:
        return float(value) * m.scale + m.offset
    except OverflowError:
        raise Rejected(
            Reason.OUT_OF_RANGE, f"{vendor}={value!r:.40} is too large a number", device_id
        ) from None


def _in_unit(spec: FieldSpec, value: object, unit: str, device_id: str) -> object:
    conversion = UNIT_CONVERSIONS.get((unit, spec.unit))
    if conversion is None:
        raise Rejected(
            Reason.BAD_UNIT,
            f"{spec.name} is in {spec.unit or 'no unit'}; unit {unit!r:.20} cannot be converted",
            device_id,
        )
    scale, offset = conversion
    if scale == 1.0 and offset == 0.0:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value  # _convert names the wrong type
    try:
        return float(value) * scale + offset
    except OverflowError:
        raise Rejected(
            Reason.OUT_OF_RANGE, f"{spec.name}={value!r:.40} is too large a number", device_id
        ) from None


class Validator:
    """`check` turns a Decoded into a Reading or raises Rejected.

    Timestamp limits are relative to the receive time: `max_future_s` allows for clock skew,
    `max_age_s` for a gateway that comes back with a backlog. None turns a limit off."""

    __slots__ = ("_max_age_ms", "_max_future_ms", "_registry")

    def __init__(
        self,
        registry: Registry,
        max_future_s: float | None = None,
        max_age_s: float | None = None,
    ) -> None:
        self._registry = registry
        self._max_future_ms = None if max_future_s is None else round(max_future_s * 1000)
        self._max_age_ms = None if max_age_s is None else round(max_age_s * 1000)

    def device(self, decoded: Decoded) -> AnyDevice:
        """The registered device a message is from: by dev_eui (globally unique) when the
        message carries one, else by id."""
        registry = self._registry
        if decoded.dev_eui is not None:
            device = registry.by_dev_eui(decoded.dev_eui)
            if device is not None:
                return device
        if decoded.device_id is not None:
            device = registry.get(decoded.device_id)
            if device is not None:
                return device
        raise Rejected(
            Reason.UNKNOWN_DEVICE,
            f"{decoded.name!r:.80} is not in the site registry",
            decoded.device_id or decoded.dev_eui,
        )

    def check(self, decoded: Decoded, received_ms: int) -> Reading:
        device = self.device(decoded)
        device_id = device.id
        time_ms = decoded.time_ms
        if time_ms is None:
            time_ms = received_ms
        else:
            if self._max_future_ms is not None and time_ms > received_ms + self._max_future_ms:
                raise Rejected(
                    Reason.TS_IN_FUTURE,
                    f"ts is {(time_ms - received_ms) / 1000:.0f} s ahead of the receive time "
                    f"(limit {self._max_future_ms / 1000:.0f} s); is the device clock set?",
                    device_id,
                )
            if self._max_age_ms is not None and time_ms < received_ms - self._max_age_ms:
                raise Rejected(
                    Reason.TS_TOO_OLD,
                    f"ts is {(received_ms - time_ms) / 1000:.0f} s old "
                    f"(limit {self._max_age_ms / 1000:.0f} s)",
                    device_id,
                )
        values = decoded.values
        units = decoded.units
        if device.field_map:
            values, units = self._mapped(device, values, units)

        if decoded.status:
            specs = DEVICE_STATUS_FIELDS
            measurement = DEVICE_STATUS_MEASUREMENT
            required: tuple[str, ...] = ()
            kind = "device_status"
        else:
            spec = device.spec
            specs = spec.fields
            measurement = spec.measurement
            required = spec.required
            kind = spec.kind.value
        fields: dict[str, FieldValue] = {}
        for name, value in values.items():
            field_spec = specs.get(name)
            if field_spec is None:
                raise Rejected(
                    Reason.UNKNOWN_FIELD,
                    f"field {name!r:.64} is not in the {kind} contract",
                    device_id,
                )
            if units is not None and name in units:
                value = _in_unit(field_spec, value, units[name], device_id)
            fields[name] = _convert(field_spec, value, device_id)
        for name in required:
            if name not in fields:
                raise Rejected(
                    Reason.MISSING_FIELD,
                    f"required field {name!r} missing for {kind}",
                    device_id,
                )
        if not fields:
            raise Rejected(Reason.MISSING_FIELD, f"no {kind} fields in the message", device_id)
        if not decoded.status and isinstance(device, WasteBin):
            distance = fields["distance_mm"]
            assert isinstance(distance, float)  # the contract types distance_mm as float
            fields["fill_pct"] = fill_pct(distance, device.depth_mm)
        return Reading(measurement, device, time_ms, fields)

    @staticmethod
    def _mapped(
        device: AnyDevice, values: dict[str, object], units: dict[str, str] | None
    ) -> tuple[dict[str, object], dict[str, str] | None]:
        fmap = device.field_map
        out: dict[str, object] = {}
        out_units: dict[str, str] | None = {} if units else None
        for vendor, value in values.items():
            m = fmap.get(vendor)
            if m is None:
                target = vendor
            elif m.to is None:
                continue
            else:
                target = m.to
                value = _map_value(vendor, m, value, device.id)
            if target in out:
                raise Rejected(
                    Reason.BAD_FORMAT,
                    f"{target} given twice (directly and through field_map {vendor!r})",
                    device.id,
                )
            out[target] = value
            if units and out_units is not None and vendor in units:
                out_units[target] = units[vendor]
        return out, out_units
