"""The data contract in code: device kinds, their measurements and fields.

The kinds are data, in the bundled `devices/catalogue.yaml`; this module loads and checks them
once, and a site file may add its own through `build_kinds`. The decoders, the validator, the
simulator and the docs (docs/data-model.md) all follow what is loaded here. A field's InfluxDB
type is fixed because InfluxDB rejects a write whose field type differs from what a shard
already holds: an integer `people` once written as a float would make every later point of that
series fail.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, Final, Literal

import yaml

from devices.expressions import Expression, ExpressionError

FieldType = Literal["float", "int", "bool", "str"]
FIELD_TYPES: Final = ("float", "int", "bool", "str")

CATALOGUE_RESOURCE: Final = "catalogue.yaml"


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
class Derived:
    """A field the pipeline computes from a reading's fields and its device's registry
    attributes; never accepted from a payload, so a device cannot override it."""

    spec: FieldSpec
    expr: Expression


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: str
    measurement: str
    fields: dict[str, FieldSpec]
    derived: tuple[Derived, ...] = ()
    # Registry attributes written as extra tags (besides site, space, device).
    extra_tags: tuple[str, ...] = ()
    # Default reporting interval of a device of this kind, seconds.
    default_interval_s: float = 60.0
    description: str = ""

    # Names of the required payload fields, computed once: the validator reads it per message.
    required: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        required = tuple(f.name for f in self.fields.values() if f.required)
        object.__setattr__(self, "required", required)

    def all_fields(self) -> dict[str, FieldSpec]:
        """Payload and derived fields: every field a point of this kind can have."""
        return {**self.fields, **{d.spec.name: d.spec for d in self.derived}}


def _fields(*specs: FieldSpec) -> dict[str, FieldSpec]:
    return {s.name: s for s in specs}


SITE_TAG: Final = "site"

# Broker user names of the pipeline's own services (the ACL's service section,
# devices.onboarding): a device id is its broker user name, so no device may take one of these
# and with it a service's password and rights. The whole `kera-` prefix is kept for services.
INGEST_USER: Final = "kera-ingest"
SIM_USER: Final = "kera-sim"
RESERVED_PREFIX: Final = "kera-"


def reserved_name(name: str) -> bool:
    return name.startswith(RESERVED_PREFIX)


SPACE_TAG: Final = "space"
DEVICE_TAG: Final = "device"
# On `impact_daily` when the site's evaluation is split (KERA_EVALUATION_SHARD): the evaluator's
# number. The site's day is the sum over its shards.
SHARD_TAG: Final = "shard"

DEVICE_STATUS_MEASUREMENT: Final = "device_status"
# The ingestor's own counts, one point per interval per instance
# (ingest.observability.pipeline_measurement).
PIPELINE_MEASUREMENT: Final = "pipeline"
INSTANCE_TAG: Final = "instance"
# Rejected messages per registered device and interval.
REJECTIONS_MEASUREMENT: Final = "rejections"
# Vendor fields the unknown-field policy ignored, per device and field.
UNKNOWN_FIELDS_MEASUREMENT: Final = "unknown_fields"
FIELD_TAG: Final = "field"
# Alert transitions (ingest.evaluation.alerts.delivery), tagged by rule and device.
ALERTS_MEASUREMENT: Final = "alerts"
RULE_TAG: Final = "rule"
# The impact rollups (ingest.evaluation.rollups, docs/impact.md): hourly and daily points computed
# from the readings, kept apart from them (KERA_ROLLUPS_RP) and read by the Impact dashboard and
# report.
ENERGY_HOURLY: Final = "energy_hourly"
ENERGY_DAILY: Final = "energy_daily"
HEAT_HOURLY: Final = "heat_hourly"
HEAT_DAILY: Final = "heat_daily"
WATER_HOURLY: Final = "water_hourly"
WATER_DAILY: Final = "water_daily"
SPACE_HOURLY: Final = "space_hourly"
SPACE_DAILY: Final = "space_daily"
WASTE_EMPTYING: Final = "waste_emptying"
WASTE_DAILY: Final = "waste_daily"
DEVICE_DAILY: Final = "device_daily"
IMPACT_DAILY: Final = "impact_daily"
ROLLUP_MEASUREMENTS: Final = (
    ENERGY_HOURLY, ENERGY_DAILY, SPACE_HOURLY, SPACE_DAILY,
    WASTE_EMPTYING, WASTE_DAILY, DEVICE_DAILY, IMPACT_DAILY,
    HEAT_HOURLY, HEAT_DAILY, WATER_HOURLY, WATER_DAILY,
)  # fmt: skip
# A pilot's effect so far, per metric (pilots/, docs/pilots.md), tagged by pilot and metric.
PILOT_RESULTS_MEASUREMENT: Final = "pilot_results"
# Per pilot, metric and local day: measured and what the method expected without the pilot.
PILOT_DAILY_MEASUREMENT: Final = "pilot_daily"
# A pilot's start and end as events (the dashboards' annotations), tagged by `event`.
PILOT_PERIODS_MEASUREMENT: Final = "pilot_periods"
PILOT_EVENT_TAG: Final = "event"  # start, end
PILOT_TAG: Final = "pilot"
METRIC_TAG: Final = "metric"
# Device roles the rollups treat apart: a supply meter measures the whole building (its
# sub-meters included), PV is production, not consumption.
SUPPLY_ROLE: Final = "main-supply"
HEAT_SUPPLY_ROLE: Final = "district-heat-supply"
PV_ROLE: Final = "pv-production"

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

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_KIND_KEYS = frozenset(
    {"measurement", "description", "default_interval_s", "extra_tags", "fields", "derived"}
)
_FIELD_KEYS = frozenset({"type", "unit", "min", "max", "description", "required", "each"})
# Tags every point carries; a field of the same name would read as the tag in InfluxQL.
_RESERVED = frozenset({SITE_TAG, SPACE_TAG, DEVICE_TAG, "time", TS_KEY})


class CatalogueError(ValueError):
    """A kind or field definition that cannot be used; the message names the kind and field."""


def _number(raw: object, where: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise CatalogueError(f"{where}: must be a number, got {raw!r:.40}")
    return float(raw)


def _entry(raw: object, allowed: frozenset[str], where: str, expected: str) -> dict[str, Any]:
    """A catalogue entry: a mapping of known keys only, so a typo is an error, not a default."""
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: expected {expected}")
    unknown = set(raw) - allowed
    if unknown:
        raise CatalogueError(
            f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})"
        )
    return raw


def _field_specs(kind: str, name: str, raw: object) -> list[FieldSpec]:
    where = f"kind {kind!r}: field {name!r}"
    raw = _entry(raw, _FIELD_KEYS, where, "a mapping with at least `type` and `unit`")
    ftype = raw.get("type")
    if ftype not in FIELD_TYPES:
        raise CatalogueError(
            f"{where}: type must be one of {', '.join(FIELD_TYPES)}, got {ftype!r}"
        )
    unit = raw.get("unit", "")
    if not isinstance(unit, str):
        raise CatalogueError(f"{where}: unit must be text")
    minimum, maximum = (
        _number(raw.get("min"), f"{where}: min"),
        _number(raw.get("max"), f"{where}: max"),
    )
    if minimum is not None and maximum is not None and minimum > maximum:
        raise CatalogueError(f"{where}: min {minimum} is above max {maximum}")
    if ftype in ("bool", "str") and (minimum is not None or maximum is not None):
        raise CatalogueError(f"{where}: a {ftype} field has no range")
    each = raw.get("each")
    if each is None:
        names = [name]
    elif "{n}" not in name or not isinstance(each, list) or not each:
        raise CatalogueError(f"{where}: `each` needs a non-empty list and a name with {{n}}")
    else:
        names = [name.replace("{n}", str(n)) for n in each]
    description = str(raw.get("description", ""))
    specs = []
    for i, n in enumerate(names):
        if not _NAME.match(n) or n in _RESERVED:
            raise CatalogueError(
                f"kind {kind!r}: field name {n!r} must match [a-z][a-z0-9_]* and not be one of "
                f"{', '.join(sorted(_RESERVED))}"
            )
        text = description if each is None else description.replace("{n}", str(each[i]))
        specs.append(
            FieldSpec(n, ftype, unit, bool(raw.get("required", False)), minimum, maximum, text)
        )
    return specs


def _kind_fields(kind: str, raw: dict[str, Any], base: KindSpec | None) -> dict[str, FieldSpec]:
    """A kind's payload fields: the base kind's, and the entry's (new names only)."""
    fields = dict(base.fields) if base else {}
    raw_fields = raw.get("fields") or {}
    if not isinstance(raw_fields, dict):
        raise CatalogueError(
            f"kind {kind!r}: `fields` must be a mapping of field name to definition"
        )
    for name, fraw in raw_fields.items():
        for spec in _field_specs(kind, str(name), fraw):
            old = fields.get(spec.name)
            if old is not None and base is not None:
                raise CatalogueError(
                    f"kind {kind!r}: field {spec.name!r} is already in the catalogue "
                    f"({old.type}, {old.unit or 'no unit'}); add fields under new names"
                )
            fields[spec.name] = spec
    return fields


def _kind_derived(
    kind: str, raw: dict[str, Any], base: KindSpec | None, fields: dict[str, FieldSpec]
) -> list[Derived]:
    """A kind's derived fields: the base kind's, and the entry's, each with its expression."""
    derived = list(base.derived) if base else []
    raw_derived = raw.get("derived") or {}
    if not isinstance(raw_derived, dict):
        raise CatalogueError(f"kind {kind!r}: `derived` must be a mapping")
    for name, draw in raw_derived.items():
        if not isinstance(draw, dict) or "expr" not in draw:
            raise CatalogueError(f"kind {kind!r}: derived field {name!r} needs an `expr`")
        body = {k: v for k, v in draw.items() if k != "expr"}
        (spec,) = _field_specs(kind, str(name), body)
        if spec.name in fields:
            raise CatalogueError(
                f"kind {kind!r}: derived field {spec.name!r} is also a payload field"
            )
        try:
            expr = Expression(draw["expr"])
        except ExpressionError as exc:
            raise CatalogueError(f"kind {kind!r}: derived field {name!r}: {exc}") from None
        derived.append(Derived(spec, expr))
    return derived


def _unchanged(kind: str, raw: dict[str, Any], base: KindSpec) -> None:
    """A site file adds fields to a catalogue kind; what the kind is stored as stays."""
    for key in ("measurement", "extra_tags", "default_interval_s"):
        if key not in raw or raw[key] == getattr(base, key):
            continue
        if key == "extra_tags" and tuple(raw[key]) == base.extra_tags:
            continue
        raise CatalogueError(
            f"kind {kind!r}: {key} of a catalogue kind cannot be changed by a site file"
        )


def _kind(kind: str, raw: object, base: KindSpec | None) -> KindSpec:
    """A kind from its catalogue entry; with `base`, the entry adds fields to an existing kind."""
    if not _NAME.match(kind):
        raise CatalogueError(f"kind name {kind!r} must match [a-z][a-z0-9_]*")
    raw = _entry(raw, _KIND_KEYS, f"kind {kind!r}", "a mapping")
    fields = _kind_fields(kind, raw, base)
    derived = _kind_derived(kind, raw, base, fields)
    if base is not None:
        _unchanged(kind, raw, base)
        return KindSpec(
            kind, base.measurement, fields, tuple(derived), base.extra_tags,
            base.default_interval_s, base.description,
        )  # fmt: skip
    measurement = raw.get("measurement")
    if not isinstance(measurement, str) or not _NAME.match(measurement):
        raise CatalogueError(f"kind {kind!r}: `measurement` must be a name like [a-z][a-z0-9_]*")
    if not fields:
        raise CatalogueError(f"kind {kind!r}: a kind needs at least one field")
    extra_tags = raw.get("extra_tags") or []
    if not isinstance(extra_tags, list) or not all(isinstance(t, str) for t in extra_tags):
        raise CatalogueError(f"kind {kind!r}: `extra_tags` must be a list of attribute names")
    interval = _number(raw.get("default_interval_s", 60.0), f"kind {kind!r}: default_interval_s")
    if interval is None or interval <= 0:
        raise CatalogueError(f"kind {kind!r}: default_interval_s must be > 0")
    return KindSpec(
        kind, measurement, fields, tuple(derived), tuple(extra_tags), interval,
        str(raw.get("description", "")),
    )  # fmt: skip


def _check_types(kinds: Mapping[str, KindSpec]) -> None:
    """One type per field per measurement, across every kind that writes to it."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for spec in kinds.values():
        for f in spec.all_fields().values():
            key = (spec.measurement, f.name)
            other = seen.setdefault(key, (f.type, spec.kind))
            if other[0] != f.type:
                raise CatalogueError(
                    f"kind {spec.kind!r}: field {f.name!r} is {f.type}, but measurement "
                    f"{spec.measurement!r} already stores it as {other[0]} (kind {other[1]!r}); "
                    "InfluxDB refuses a write whose field type differs from what it stores, so "
                    "give the field another name"
                )
        for tag in spec.extra_tags:
            if tag in spec.all_fields():
                raise CatalogueError(f"kind {spec.kind!r}: {tag!r} is both a tag and a field")


def build_kinds(raw: object, base: Mapping[str, KindSpec] | None = None) -> dict[str, KindSpec]:
    """Kinds from a catalogue's `kinds` mapping. With `base` (the bundled catalogue), entries
    for a known kind add fields to it and the rest are new kinds; the result holds both."""
    if not isinstance(raw, dict):
        raise CatalogueError("`kinds` must be a mapping of kind name to definition")
    kinds = dict(base or {})
    for name, body in raw.items():
        kinds[str(name)] = _kind(str(name), body, kinds.get(str(name)) if base else None)
    _check_types(kinds)
    return kinds


def _units(raw: object) -> dict[tuple[str, str], tuple[float, float]]:
    out: dict[tuple[str, str], tuple[float, float]] = {}
    if not isinstance(raw, dict):
        raise CatalogueError("`units` must be a mapping")
    for sent, targets in raw.items():
        for contract, (scale, offset) in targets.items():
            out[(str(sent), str(contract))] = (float(scale), float(offset))
    return out


def _load_bundled() -> tuple[dict[str, KindSpec], dict[tuple[str, str], tuple[float, float]]]:
    raw = yaml.safe_load(resources.files("devices").joinpath(CATALOGUE_RESOURCE).read_text("utf-8"))
    return build_kinds(raw["kinds"]), _units(raw["units"])


_BUNDLED_KINDS, _BUNDLED_UNITS = _load_bundled()

# The bundled catalogue's kinds; a site's own (bundled plus its `kinds:`) are Site.catalogue.
KINDS: Final[Mapping[str, KindSpec]] = MappingProxyType(_BUNDLED_KINDS)

# (sent unit, contract unit) -> (scale, offset): contract value = sent * scale + offset. A unit
# that is not here for the field's contract unit is rejected (`bad_unit`), never guessed.
UNIT_CONVERSIONS: Final[Mapping[tuple[str, str], tuple[float, float]]] = MappingProxyType(
    _BUNDLED_UNITS
)


def tidy(value: float) -> float:
    """A computed value without binary float noise: 6972 Watt-minutes * (1/60000) is 0.1162,
    not 0.11620000000000001. Twelve significant digits are beyond any sensor's resolution and
    within a double's 15, so only the noise goes."""
    if not math.isfinite(value):
        return value
    return float(f"{value:.12g}")


def telemetry_topic(site: str, device_id: str) -> str:
    return f"kera/{site}/{device_id}/telemetry"


def status_topic(site: str, device_id: str) -> str:
    return f"kera/{site}/{device_id}/status"


def alert_topic(site: str, rule: str, device_id: str) -> str:
    """An alert's state, retained (ingest.evaluation.alerts.delivery)."""
    return f"kera/{site}/alerts/{rule}/{device_id}"


def deadletter_topic(site: str) -> str:
    """Where the ingestor publishes each rejected message (QoS 0), for live inspection."""
    return f"kera/{site}/deadletter"
