"""SenML JSON packs (RFC 8428), for gateways that speak it.

A pack is a JSON array of records. Base fields (bn, bt, bu, bv, bs) apply to their record and
every later one until changed; each record is resolved to name = bn + n, time = bt + t (seconds;
below 2**28 it is relative to now), unit = u or bu, value = bv + v (or bs + s, or vb / vs).

A resolved name is `<device><sep><field>`, split at its last `/` or `:`. The device part is a
registered device id, or `urn:dev:eui64:<16 hex>` / `urn:dev:mac:<16 hex>` for a dev_eui.
Records of one device at one time become one reading; units go with the values, and the
validator converts them to the contract's (devices.contract.UNIT_CONVERSIONS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ingest.codecs._json import load_json
from ingest.codecs._time import parse_time_ms
from ingest.reading import Decoded, Reason, Rejected

# RFC 8428 section 4.5.3: times below 2**28 seconds are relative to the current time.
_RELATIVE_LIMIT = 2**28
# Far beyond 2100 in seconds; keeps the conversion to milliseconds finite.
_MAX_SECONDS = 1e12
_EUI_PREFIXES = ("urn:dev:eui64:", "urn:dev:mac:")
_NUMBER = (int, float)


def _number(rec: dict[str, Any], key: str, i: int) -> float:
    value = rec.get(key, 0)
    if type(value) not in _NUMBER:
        raise Rejected(Reason.WRONG_TYPE, f"record {i}: {key} must be a number, got {value!r:.40}")
    try:
        return float(value)
    except OverflowError:
        raise Rejected(Reason.OUT_OF_RANGE, f"record {i}: {key} is too large a number") from None


def _device(name: str, i: int) -> tuple[str | None, str | None, str]:
    cut = max(name.rfind("/"), name.rfind(":"))
    if cut <= 0 or cut == len(name) - 1:
        raise Rejected(
            Reason.BAD_FORMAT,
            f"record {i}: name {name!r:.80} is not <device>/<field> or <device>:<field>",
        )
    device, field = name[:cut], name[cut + 1 :]
    for prefix in _EUI_PREFIXES:
        if device.startswith(prefix):
            return None, device[len(prefix) :].lower(), field
    return device, None, field


@dataclass(slots=True)
class _Base:
    """The base values records carry forward (RFC 8428 §4.1): each applies to later records."""

    bn: str = ""
    bt: float = 0.0
    bu: str | None = None
    bv: float = 0.0
    bs: float = 0.0

    def update(self, rec: dict[str, Any], i: int) -> None:
        if "bn" in rec:
            if type(rec["bn"]) is not str:
                raise Rejected(Reason.WRONG_TYPE, f"record {i}: bn must be a string")
            self.bn = rec["bn"]
        if "bt" in rec:
            self.bt = _number(rec, "bt", i)
        if "bu" in rec:
            if type(rec["bu"]) is not str:
                raise Rejected(Reason.WRONG_TYPE, f"record {i}: bu must be a string")
            self.bu = rec["bu"]
        if "bv" in rec:
            self.bv = _number(rec, "bv", i)
        if "bs" in rec:
            self.bs = _number(rec, "bs", i)


def _value(
    rec: dict[str, Any], present: list[str], base: _Base, i: int, field: str, label: str | None
) -> object:
    if not present:
        raise Rejected(Reason.BAD_FORMAT, f"record {i} ({field}) has no value", label)
    if len(present) > 1 and present != ["v", "s"]:
        raise Rejected(
            Reason.BAD_FORMAT, f"record {i} ({field}) has several values {present}", label
        )
    key = present[0]
    value: object
    if key == "v":
        value = base.bv + _number(rec, "v", i)
    elif key == "s":
        value = base.bs + _number(rec, "s", i)
    else:
        value = rec[key]  # vb; vs / vd: strings, which the contract's fields will refuse
    if type(value) is float and not math.isfinite(value):
        raise Rejected(Reason.NOT_FINITE, f"record {i}: {field}={value!r}", label)
    return value


def _time_ms(rec: dict[str, Any], base: _Base, i: int, received_ms: int, label: str | None) -> int:
    t = base.bt + _number(rec, "t", i)
    if not abs(t) < _MAX_SECONDS:  # also catches NaN
        raise Rejected(Reason.BAD_TIMESTAMP, f"record {i}: time {t!r} s is not a date", label)
    if abs(t) < _RELATIVE_LIMIT:
        return received_ms + round(t * 1000)
    try:
        return parse_time_ms(round(t * 1000))
    except Rejected as exc:
        exc.device_id = label
        raise


def decode(topic: str, payload: bytes, site: str, received_ms: int = 0) -> list[Decoded]:
    pack = load_json(payload)
    if type(pack) is not list or not pack:
        raise Rejected(Reason.BAD_FORMAT, "a SenML pack is a non-empty JSON array of records")
    base = _Base()
    groups: dict[tuple[str | None, str | None, int], tuple[dict[str, object], dict[str, str]]]
    groups = {}
    for i, rec in enumerate(pack):
        if type(rec) is not dict:
            raise Rejected(Reason.BAD_FORMAT, f"record {i} is not a JSON object")
        base.update(rec, i)
        n = rec.get("n", "")
        if type(n) is not str:
            raise Rejected(Reason.WRONG_TYPE, f"record {i}: n must be a string")
        present = [k for k in ("v", "vs", "vb", "vd", "s") if k in rec]
        if not present and "n" not in rec:
            continue  # a record that only sets base values
        device_id, dev_eui, field = _device(base.bn + n, i)
        label = device_id or dev_eui
        value = _value(rec, present, base, i, field, label)
        time_ms = _time_ms(rec, base, i, received_ms, label)
        values, units = groups.setdefault((device_id, dev_eui, time_ms), ({}, {}))
        if field in values:
            raise Rejected(
                Reason.BAD_FORMAT, f"record {i}: {field} appears twice for one time", label
            )
        values[field] = value
        unit = rec.get("u", base.bu)
        if unit is not None:
            if type(unit) is not str:
                raise Rejected(Reason.WRONG_TYPE, f"record {i}: u must be a string", label)
            units[field] = unit
    return [
        Decoded(device_id, time_ms, values, dev_eui=dev_eui, units=units or None)
        for (device_id, dev_eui, time_ms), (values, units) in groups.items()
    ]
