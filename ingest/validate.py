"""Checks a decoded message against the registry and the data contract.

Every source (every MQTT codec, and the serial links' frames) ends here, so a reading is held to
the same rules whichever way it arrived: the device is registered, its vendor field names and
units are mapped to the contract's, every field is known, typed, finite and plausible, and its
time is within the limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from devices import AnyDevice, Registry
from devices.contract import (
    DEVICE_STATUS_FIELDS,
    DEVICE_STATUS_MEASUREMENT,
    UNIT_CONVERSIONS,
    FieldSpec,
    KindSpec,
    tidy,
)
from devices.expressions import ExpressionError
from devices.mapping import MappingError
from devices.site import UnknownFields
from ingest.codecs import CodecError, PayloadCodec
from ingest.observability.clock import ClockWatch
from ingest.reading import Decoded, FieldValue, NoReading, Reading, Reason, Rejected


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
    if isinstance(value, bool) or kind in ("bool", "str"):
        return _plain(spec, value, device_id)
    out = _number(spec, value, device_id)
    if (spec.minimum is not None and out < spec.minimum) or (
        spec.maximum is not None and out > spec.maximum
    ):
        raise Rejected(
            Reason.OUT_OF_RANGE,
            f"{spec.name}={value!r:.40} {spec.unit} is outside {spec.minimum}..{spec.maximum}",
            device_id,
        )
    return out


def _plain(spec: FieldSpec, value: object, device_id: str) -> FieldValue:
    """A true/false or text field, or a bool where a number is due (refused)."""
    if spec.type == "bool" and isinstance(value, bool):
        return value
    if spec.type == "str" and isinstance(value, str):
        return value
    raise _wrong_type(spec, value, device_id)


def _number(spec: FieldSpec, value: object, device_id: str) -> float | int:
    """A number field's value as its type (not yet checked against its range)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Rejected(Reason.NOT_FINITE, f"{spec.name}={value!r} is not finite", device_id)
        if spec.type != "int":
            return value
        if not value.is_integer():
            raise _wrong_type(spec, value, device_id)
        return int(value)
    if isinstance(value, int):
        if spec.type != "float":
            return value
        try:
            return float(value)
        except OverflowError:
            return math.inf
    raise _wrong_type(spec, value, device_id)


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
        return tidy(float(value) * scale + offset)
    except OverflowError:
        raise Rejected(
            Reason.OUT_OF_RANGE, f"{spec.name}={value!r:.40} is too large a number", device_id
        ) from None


def _fields(
    spec: KindSpec,
    values: Mapping[str, object],
    units: Mapping[str, str] | None,
    reject_unknown: bool,
    device_id: str,
) -> tuple[dict[str, FieldValue], list[str] | None]:
    """The contract's fields of a message, typed and in range, and the names it ignored."""
    specs = spec.fields
    fields: dict[str, FieldValue] = {}
    ignored: list[str] | None = None
    for name, value in values.items():
        field_spec = specs.get(name)
        if field_spec is None:
            if reject_unknown:
                raise Rejected(
                    Reason.UNKNOWN_FIELD,
                    f"field {name!r:.64} is not in the {spec.kind} contract and not mapped "
                    "(unknown_fields: reject)",
                    device_id,
                )
            if ignored is None:
                ignored = []
            ignored.append(name[:64])
            continue
        if units is not None and name in units:
            fields[name] = _convert(
                field_spec, _in_unit(field_spec, value, units[name], device_id), device_id
            )
        elif type(value) is float and field_spec.type == "float" and _within(field_spec, value):
            fields[name] = value  # the common case, without _convert's calls
        else:
            fields[name] = _convert(field_spec, value, device_id)
    return fields, ignored


def _within(spec: FieldSpec, value: float) -> bool:
    """A finite float inside the field's range (anything else goes to `_convert`, which says
    what is wrong with it)."""
    lo, hi = spec.minimum, spec.maximum
    # value - value is 0.0 for a finite float only (NaN and the infinities give NaN).
    return value - value == 0.0 and (lo is None or value >= lo) and (hi is None or value <= hi)


def _nothing(
    spec: KindSpec, ignored: list[str] | None, had_values: bool, device_id: str
) -> NoReading | Rejected:
    """Why a message with no contract field is not stored. One rule whether its fields were
    left unmapped or dropped with `null`: a message that had values, none of them a reading (a
    device-information frame, a Shelly H&T's act_reasons), carries no reading; only an empty
    one is missing its fields."""
    if ignored or had_values:
        what = (
            f"only fields that are not mapped: {', '.join(ignored[:8])}"
            if ignored
            else "only fields its field_map drops"
        )
        return NoReading(f"no {spec.kind} fields, {what}", device_id, tuple(ignored or ()))
    return Rejected(Reason.MISSING_FIELD, f"no {spec.kind} fields in the message", device_id)


class Validator:
    """`check` turns a Decoded into a Reading or raises Rejected.

    Timestamp limits are relative to the receive time: `max_future_s` allows for clock skew,
    `max_age_s` for a gateway that comes back with a backlog. None turns a limit off."""

    __slots__ = ("_clock", "_codecs", "_max_age_ms", "_max_future_ms", "_registry")

    def __init__(
        self,
        registry: Registry,
        max_future_s: float | None = None,
        max_age_s: float | None = None,
        clock: ClockWatch | None = None,
    ) -> None:
        self._registry = registry
        # Hears every device time against its receive time: is this ingestor's clock right?
        self._clock = clock
        # Payload codecs by file, loaded on a device's first raw uplink.
        self._codecs: dict[Path, PayloadCodec | CodecError] = {}
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

    def _check_time(self, device_id: str, time_ms: int, received_ms: int) -> None:
        """The device's own time against the limits (and into the clock watch)."""
        if self._clock is not None:
            self._clock.record(device_id, time_ms, received_ms)
        if self._max_future_ms is not None and time_ms > received_ms + self._max_future_ms:
            raise Rejected(
                Reason.TS_IN_FUTURE,
                f"ts is {(time_ms - received_ms) / 1000:.0f} s ahead of the receive time "
                f"(limit {self._max_future_ms / 1000:.0f} s); is the device clock set? If "
                "most devices are ahead, the ingestor's clock is behind (/healthz says so)",
                device_id,
            )
        if self._max_age_ms is not None and time_ms < received_ms - self._max_age_ms:
            raise Rejected(
                Reason.TS_TOO_OLD,
                f"ts is {(received_ms - time_ms) / 1000:.0f} s old "
                f"(limit {self._max_age_ms / 1000:.0f} s)",
                device_id,
            )

    def check(
        self,
        decoded: Decoded,
        received_ms: int,
        unknown_fields: UnknownFields = "ignore",
        codec_out: dict[str, object] | Rejected | None = None,
    ) -> Reading:
        """`unknown_fields` is the source's policy for fields that are neither contract fields
        nor mapped; the device's own policy, where it has one, comes first. `codec_out` is what
        the device's codec made of the frame, when it ran elsewhere (ingest.codecs._sandbox);
        without it, the codec runs here."""
        device = self.device(decoded)
        device_id = device.id
        time_ms = decoded.time_ms
        if time_ms is None:
            time_ms = received_ms
        else:
            self._check_time(device_id, time_ms, received_ms)
        if decoded.status:
            return self._status(decoded, device, time_ms, received_ms)
        if decoded.no_reading is not None:
            raise NoReading(decoded.no_reading, device_id)
        spec = device.spec
        values = decoded.values
        if decoded.frm_payload is not None:
            values = self._frame_values(device, decoded, received_ms, codec_out)
        units = decoded.units
        mapper = device.mapper
        if mapper is not None:
            try:
                values, units = mapper.apply(values, units, decoded.levels)
            except MappingError as exc:
                raise Rejected(Reason(exc.reason), exc.detail, device_id) from None
        reject_unknown = (device.unknown_policy or unknown_fields) == "reject"
        fields, ignored = _fields(spec, values, units, reject_unknown, device_id)
        for name in spec.required:
            if name not in fields:
                raise Rejected(
                    Reason.MISSING_FIELD,
                    f"required field {name!r} missing for {spec.kind}",
                    device_id,
                )
        if not fields:
            raise _nothing(spec, ignored, bool(decoded.values), device_id)
        if spec.derived:
            self._derive(device, fields)
        return Reading(spec.measurement, device, time_ms, fields, tuple(ignored or ()), received_ms)

    def _frame_values(
        self,
        device: AnyDevice,
        decoded: Decoded,
        received_ms: int,
        codec_out: dict[str, object] | Rejected | None,
    ) -> dict[str, object]:
        if codec_out is None:
            values = self._run_codec(device, decoded, received_ms)
        elif isinstance(codec_out, Rejected):
            raise codec_out
        else:
            values = codec_out
        if not values:
            raise NoReading("the device's codec decoded no values from the frame", device.id)
        return values

    def _run_codec(
        self, device: AnyDevice, decoded: Decoded, received_ms: int
    ) -> dict[str, object]:
        path = device.codec_path
        if path is None:
            raise Rejected(
                Reason.BAD_FORMAT,
                "uplink has no decoded object: give the device a payload formatter on the "
                "network server, or a codec (or a profile with one) in the site file",
                device.id,
            )
        codec = self._codecs.get(path)
        if codec is None:
            try:
                codec = PayloadCodec(path)
            except CodecError as exc:
                codec = exc
            self._codecs[path] = codec
        if isinstance(codec, CodecError):
            raise Rejected(Reason.CODEC_FAILED, str(codec)[:300], device.id)
        assert decoded.frm_payload is not None
        return codec.decode(decoded.frm_payload, decoded.f_port, received_ms, device.id)

    @staticmethod
    def _derive(device: AnyDevice, fields: dict[str, FieldValue]) -> None:
        """Derived fields whose inputs the reading has; a partial reading simply lacks them."""
        names: dict[str, object] | None = None
        for derived in device.spec.derived:
            expr = derived.expr
            if names is None:
                names = {**device.registry_values(), **fields}
            if not expr.names.issubset(names.keys()):
                continue
            try:
                value = expr.evaluate(names)
            except ExpressionError as exc:
                raise Rejected(Reason.MAPPING_FAILED, str(exc), device.id) from None
            if type(value) is float:
                value = tidy(value)
            fields[derived.spec.name] = _convert(derived.spec, value, device.id)

    @staticmethod
    def _status(decoded: Decoded, device: AnyDevice, time_ms: int, received_ms: int) -> Reading:
        fields: dict[str, FieldValue] = {}
        for name, value in decoded.values.items():
            field_spec = DEVICE_STATUS_FIELDS.get(name)
            if field_spec is None:
                raise Rejected(
                    Reason.UNKNOWN_FIELD,
                    f"field {name!r:.64} is not in the device_status contract",
                    device.id,
                )
            fields[name] = _convert(field_spec, value, device.id)
        if not fields:
            raise Rejected(
                Reason.MISSING_FIELD, "no device_status fields in the message", device.id
            )
        return Reading(DEVICE_STATUS_MEASUREMENT, device, time_ms, fields, (), received_ms)
