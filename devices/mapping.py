"""A device's `field_map`, compiled once when the site file loads.

A mapping turns what a vendor's decoder emits into the contract's fields. Entries are keyed by
the vendor field (a dotted key reaches into nested objects) and say where it goes and how:

    distance: distance_mm                       rename
    rssi: null                                  drop
    distance: {to: distance_mm, scale: 10}      value * scale + offset
    battery: {to: battery_v, unit: mV}          vendor unit -> the field's contract unit; a
                                                string such as "3384 mV" or "3.384 V" is read
                                                as a number with its own unit
    position: {to: tilt, enum: {normal: false, tilt: true}}
    sensor.temp: temperature_c                  nested path
    people: {expr: "region_1_count + region_2_count"}
                                                an expression writes the field named by its key

    power: {to: power_w, when: {channel: "0"}}
                                                only for messages whose topic template bound
                                                {channel} to 0 (json sources)

Vendor fields that no entry and no expression names pass through under their own names; the
validator then stores those that are contract fields and applies the unknown-field policy to
the rest. An expression runs only when every name it reads is in the payload, so a device that
sends different frames (a counter frame, a status frame) maps each one.

Several entries may write one field, as alternatives: a Shelly's `apower` in its status message
and `params.switch:0.apower` in its RPC notification, or a people counter's total beside an
expression summing its regions. The first entry that applies to a message writes the field,
the others pass: renames and conversions before expressions, the device's own entries before
its profile's, otherwise in file order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devices.contract import UNIT_CONVERSIONS, FieldSpec, KindSpec, tidy
from devices.expressions import Expression, ExpressionError, parse_quantity

if TYPE_CHECKING:
    from devices.field_maps import FieldMap

# What `walk` gives for a path the payload does not have.
MISSING = object()


class MappingError(ValueError):
    """A payload the mapping cannot apply to. `reason` is one of the pipeline's rejection codes
    (docs/data-model.md): wrong_type, bad_unit, out_of_range or mapping_failed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def unit_conversion(sent: str, spec: FieldSpec) -> tuple[float, float]:
    conversion = UNIT_CONVERSIONS.get((sent, spec.unit))
    if conversion is None:
        raise MappingError(
            "bad_unit",
            f"{spec.name} is in {spec.unit or 'no unit'}; unit {sent!r:.20} cannot be converted",
        )
    return conversion


def _scaled(name: str, target: str, value: object, scale: float, offset: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MappingError(
            "wrong_type", f"{name} must be a number to convert into {target}, got {value!r:.40}"
        )
    try:
        return tidy(float(value) * scale + offset)
    except OverflowError:
        raise MappingError("out_of_range", f"{name}={value!r:.40} is too large a number") from None


@dataclass(frozen=True, slots=True)
class _Step:
    key: str
    path: tuple[str, ...] | None  # a dotted key, tried when the literal key is absent
    target: str | None  # None drops the field
    convert: Callable[[object], object] | None
    # The step changes the value's unit, so a unit the payload named no longer applies.
    converts_unit: bool
    # Topic levels the message must have bound (FieldMap.when), as pairs.
    when: tuple[tuple[str, str], ...] = ()


def _applies(when: tuple[tuple[str, str], ...], levels: Mapping[str, str] | None) -> bool:
    if not when:
        return True
    if levels is None:
        return False
    return all(levels.get(name) == text for name, text in when)


def _step_converter(key: str, m: FieldMap, spec: FieldSpec) -> Callable[[object], object] | None:
    """One function for an entry's enum, unit and scale/offset, checked against the field."""
    funcs: list[Callable[[object], object]] = []
    if m.enum is not None:
        funcs.append(_lookup(key, dict(m.enum)))
    if m.unit is not None:
        funcs.append(_in_unit(key, m.unit, spec))
    if m.scale != 1.0 or m.offset != 0.0:
        scale, offset, target = m.scale, m.offset, spec.name
        funcs.append(lambda value: _scaled(key, target, value, scale, offset))
    if not funcs:
        return None
    if len(funcs) == 1:
        return funcs[0]

    def chain(value: object) -> object:
        for f in funcs:
            value = f(value)
        return value

    return chain


def _lookup(key: str, table: Mapping[Any, object]) -> Callable[[object], object]:
    """An enum entry: the value's name in the contract, or why not."""
    shown = ", ".join(repr(k) for k in list(table)[:8])

    def lookup(value: object) -> object:
        try:
            return table[value]  # an unhashable value is a TypeError, caught
        except (KeyError, TypeError):
            raise MappingError(
                "mapping_failed", f"{key}={value!r:.40} is none of the values {shown}"
            ) from None

    return lookup


def _in_unit(key: str, unit: str, spec: FieldSpec) -> Callable[[object], object]:
    """A `unit:` entry: from the declared unit, or from the one a text value names ("3.1 V")."""
    declared = unit_conversion(unit, spec)
    target = spec.name

    def in_unit(value: object) -> object:
        scale, offset = declared
        if isinstance(value, str):
            try:
                number, sent = parse_quantity(value)
            except ExpressionError as exc:
                raise MappingError("wrong_type", f"{key}: {exc}") from None
            if sent is not None:
                scale, offset = unit_conversion(sent, spec)
            value = number
        return _scaled(key, target, value, scale, offset)

    return in_unit


class FieldMapper:
    """The compiled form of one device's field_map, for its kind."""

    __slots__ = ("_exprs", "_steps", "consumed", "targets")

    def __init__(self, field_map: Mapping[str, FieldMap], spec: KindSpec) -> None:
        fields = spec.fields
        steps: list[_Step] = []
        exprs: list[tuple[str, Expression, tuple[tuple[str, str], ...]]] = []
        consumed: set[str] = set()
        writers: dict[str, str] = {}

        def writes(target: str, by: str) -> None:
            # Several entries may write one target: alternatives, the first that applies wins.
            if target not in fields:
                derived = any(d.spec.name == target for d in spec.derived)
                raise ValueError(
                    f"field_map {by!r} -> {target!r}: {spec.kind} has "
                    + (
                        f"{target!r} as a derived field, computed by the pipeline"
                        if derived
                        else f"no field {target!r} (it has {', '.join(fields)})"
                    )
                )
            writers.setdefault(target, by)

        for key, m in field_map.items():
            when = tuple(sorted((m.when or {}).items()))
            if m.expr is not None:
                writes(key, key)
                try:
                    expr = Expression(m.expr)
                except ExpressionError as exc:
                    raise ValueError(f"field_map {key!r}: {exc}") from None
                exprs.append((key, expr, when))
                consumed.update(expr.names)
                continue
            path = tuple(key.split(".")) if "." in key else None
            consumed.add(path[0] if path else key)
            if m.to is None:
                steps.append(_Step(key, path, None, None, False, when))
                continue
            writes(m.to, key)
            try:
                convert = _step_converter(key, m, fields[m.to])
            except MappingError as exc:
                raise ValueError(f"field_map {key!r}: {exc.detail}") from None
            steps.append(
                _Step(
                    key, path, m.to, convert,
                    m.unit is not None or m.scale != 1 or m.offset != 0, when,
                )
            )  # fmt: skip
        self._steps = tuple(steps)
        self._exprs = tuple(exprs)
        self.consumed = frozenset(consumed)
        self.targets = frozenset(writers)

    def apply(
        self,
        values: dict[str, object],
        units: dict[str, str] | None,
        levels: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, object], dict[str, str] | None]:
        """Vendor values (and the units a payload named, and the topic's named levels) ->
        contract-named values. Raises only MappingError."""
        consumed = self.consumed
        out = {k: v for k, v in values.items() if k not in consumed}
        out_units = {k: u for k, u in units.items() if k not in consumed} if units else None
        written: set[str] = set()
        for step in self._steps:
            target = step.target
            value = _step_value(step, values, levels)
            if value is MISSING or target is None or target in written:
                continue  # absent, dropped, or an earlier alternative applied
            if step.convert is not None:
                value = step.convert(value)
            _claim(out, target, f"field_map {step.key!r}")
            out[target] = value
            written.add(target)
            if units is not None and out_units is not None and not step.converts_unit:
                unit = units.get(step.key)
                if unit is not None:
                    out_units[target] = unit
        for target, expr, when in self._exprs:
            if target in written or not expr.names.issubset(values.keys()):
                continue
            if when and not _applies(when, levels):
                continue
            _claim(out, target, "its field_map expression")
            try:
                value = expr.evaluate(values)
            except ExpressionError as exc:
                raise MappingError("mapping_failed", f"{target}: {exc}") from None
            out[target] = tidy(value) if type(value) is float else value
            written.add(target)
        return out, out_units


def _step_value(
    step: _Step, values: Mapping[str, object], levels: Mapping[str, str] | None
) -> object:
    """The value an entry takes from the payload, or MISSING when it does not apply."""
    if step.when and not _applies(step.when, levels):
        return MISSING
    value = values.get(step.key, MISSING)
    if value is MISSING and step.path is not None:
        value = walk(values, step.path)
    return value


def _claim(out: dict[str, object], target: str, writer: str) -> None:
    """A field is written once: by the payload itself, or by one field_map entry."""
    if target in out:
        raise MappingError(
            "mapping_failed", f"{target} is in the payload and {writer} also writes it"
        )


def walk(values: Mapping[str, object], path: tuple[str, ...]) -> object:
    """The value at a dotted path of nested objects, or MISSING."""
    node: object = values
    for part in path:
        if type(node) is not dict:
            return MISSING
        node = node.get(part, MISSING)
        if node is MISSING:
            return MISSING
    return node
