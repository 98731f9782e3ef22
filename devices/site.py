"""The site file: which devices exist, where they are, and what the pipeline may accept from them.

Tags in InfluxDB come only from here, never from a payload, so a device cannot invent series
and the number of series stays bounded by this file.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    StringConstraints,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from devices.contract import (
    KINDS,
    RESERVED_PREFIX,
    CatalogueError,
    KindSpec,
    build_kinds,
    reserved_name,
)
from devices.factor_source import (
    ELECTRICITY_HOW_TO,
    GRID_FIELD,
    HEAT_FIELD,
    HEAT_HOW_TO,
    Factor,
    FactorSource,
    refuse_plain_text,
)
from devices.mapping import FieldMapper
from devices.pilots import Pilot, Weather, check_against
from devices.presets import PRESETS, Preset, PresetLayout
from devices.topics import DEVICE, TemplateError, TopicTemplate

DEFAULT_SITE_RESOURCE = "kera.yaml"

DeviceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
SiteId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
# Tag values end up in line protocol, where a newline or control character cannot be escaped
# and InfluxDB 1.x reads a backslash literally.
TagText = Annotated[
    str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f\\]+$", min_length=1, max_length=128)
]
DevEui = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{16}$", to_lower=True)]


class WasteFraction(enum.StrEnum):
    """Fractions sorted at source in Finland (sekajäte, biojäte, kartonki, muovi, lasi, metalli,
    paperi)."""

    MIXED = "mixed"
    BIO = "bio"
    CARDBOARD = "cardboard"
    PLASTIC = "plastic"
    GLASS = "glass"
    METAL = "metal"
    PAPER = "paper"


class Codec(enum.StrEnum):
    """Payload formats the ingestor understands (docs/data-model.md describes each)."""

    NATIVE = "native"
    SENML = "senml"
    TTS_V3 = "tts_v3"
    # One codec for both ChirpStack versions: they share the uplink topic, and a v3 server's
    # payload is recognised by its own field names. `chirpstack_v3` names the same codec.
    CHIRPSTACK_V4 = "chirpstack_v4"
    CHIRPSTACK_V3 = "chirpstack_v3"
    # A JSON object or one plain value per topic, the device named by a topic level: what
    # Tasmota, Shelly, Zigbee2MQTT, ESPHome, wmbusmeters and OpenMQTTGateway publish
    # (devices/presets.py has their layouts).
    JSON = "json"


# What happens to a payload field that is neither a contract field nor mapped: `ignore` stores
# the rest of the reading and counts the field per device; `reject` dead-letters the message.
UnknownFields = Literal["ignore", "reject"]


# MQTT topic filters each codec listens on unless the site file names others. `{site}` is the
# site id. The LoRaWAN ones are the servers' own default uplink topics.
DEFAULT_TOPICS: dict[Codec, tuple[str, ...]] = {
    Codec.NATIVE: ("kera/{site}/+/telemetry", "kera/{site}/+/status"),
    Codec.SENML: ("kera/{site}/senml/+",),
    Codec.TTS_V3: ("v3/+/devices/+/up",),
    Codec.CHIRPSTACK_V4: ("application/+/device/+/event/up",),
    Codec.CHIRPSTACK_V3: ("application/+/device/+/event/up",),
}

TimeFormat = Literal["rfc3339", "unix_s", "unix_ms", "local"]


class TimeRule(BaseModel):
    """Where a `json` source's messages carry the device's own time, and how it is written.
    A message without it is stamped with its receive time, as any other."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="the key, dotted for a nested one (params.ts)"
    )
    format: TimeFormat = Field(
        description="rfc3339: with an offset (wmbusmeters' timestamp); unix_s / unix_ms: "
        "epoch seconds or milliseconds, fractions allowed (Shelly Gen2's params.ts); local: "
        "ISO date-time without offset in the site's time zone (Tasmota's Time); of the two "
        "instants the repeated autumn hour could be, the one nearer the receive time"
    )


def _check_filter(topic: str) -> str:
    levels = topic.split("/")
    if not topic or "\x00" in topic:
        raise ValueError("a topic filter must be non-empty text without NUL")
    for i, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise ValueError(f"{topic!r}: + and # must fill a whole topic level")
        if level == "#" and i != len(levels) - 1:
            raise ValueError(f"{topic!r}: # may only be the last level")
    return topic


TopicFilter = Annotated[str, StringConstraints(max_length=256)]


class Source(BaseModel):
    """A codec and the MQTT topics whose messages it decodes. A `json` source names its topics
    as templates with named levels (devices/topics.py), or takes a firmware's from `preset`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    codec: Codec = Field(
        Codec.JSON, description="the payload format; `json` when a preset is given"
    )
    preset: Preset | None = Field(
        None,
        description="a firmware's topics, status topics and time rule (devices/presets.py); "
        "topics, status_topics and time given here replace the preset's",
    )
    topics: tuple[TopicFilter, ...] | None = Field(
        default=None,
        description="MQTT filters; for `json`, topic templates with {device} and optional "
        "{field} and other named levels; default: the codec's DEFAULT_TOPICS or the preset's",
    )
    status_topics: tuple[TopicFilter, ...] | None = Field(
        None,
        description="`json` only: templates whose messages say the device is online or "
        'offline (a last will: Online/Offline, true/false, {"state": "online"}); they '
        "feed device_status and the device_offline alert",
    )
    time: TimeRule | None = Field(
        None, description="`json` only: where the device's own time is; default: the preset's"
    )
    text_numbers: bool | None = Field(
        None,
        description='`json` only: read JSON strings that are numbers ("21.5", "3.1 V") '
        "as numbers; default: the preset's, else false",
    )
    unknown_fields: UnknownFields = Field(
        "ignore",
        description="a payload field that is no contract field and not mapped: ignore "
        "(counted per device and field) or reject the message; a device may override it",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset_means_json(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("preset") is not None and "codec" not in raw:
            return {**raw, "codec": Codec.JSON}
        if isinstance(raw, dict) and "codec" not in raw:
            raise ValueError(f"give `codec` ({', '.join(Codec)}) or `preset`")
        return raw

    @model_validator(mode="after")
    def _check_topics(self) -> Source:
        if self.codec is not Codec.JSON:
            for key in ("preset", "status_topics", "time", "text_numbers"):
                if getattr(self, key) is not None:
                    raise ValueError(f"`{key}` is for json sources only, not {self.codec.value}")
            for text in self.topics or ():
                _check_filter(text)
            return self
        if self.preset is None and self.topics is None:
            raise ValueError(
                "a json source needs `topics` (templates such as tele/{device}/SENSOR) or a "
                f"`preset` ({', '.join(p.value for p in Preset)})"
            )
        for template in (*self.templates(""), *self.status_templates("")):
            if DEVICE not in template.named:
                raise ValueError(
                    f"topic template {template.text!r} has no {{device}} level: nothing would "
                    "say which device a message is from"
                )
        return self

    @property
    def layout(self) -> PresetLayout | None:
        return PRESETS[self.preset] if self.preset is not None else None

    def templates(self, site: str) -> tuple[TopicTemplate, ...]:
        """A json source's data templates (preset's unless topics are given)."""
        texts = self.topics
        if texts is None:
            texts = self.layout.topics if self.layout is not None else ()
        return _templates(texts, site)

    def status_templates(self, site: str) -> tuple[TopicTemplate, ...]:
        texts = self.status_topics
        if texts is None:
            texts = self.layout.status_topics if self.layout is not None else ()
        return _templates(texts, site)

    @property
    def time_rule(self) -> TimeRule | None:
        if self.time is not None or self.layout is None or self.layout.time is None:
            return self.time
        path, fmt = self.layout.time
        return TimeRule(path=path, format=fmt)

    @property
    def reads_text_numbers(self) -> bool:
        if self.text_numbers is not None:
            return self.text_numbers
        return self.layout is not None and self.layout.text_numbers

    def filters(self, site: str) -> tuple[str, ...]:
        if self.codec is Codec.JSON:
            out: list[str] = []
            for t in (*self.templates(site), *self.status_templates(site)):
                if t.filter not in out:
                    out.append(t.filter)
            return tuple(out)
        return tuple(t.replace("{site}", site) for t in (self.topics or DEFAULT_TOPICS[self.codec]))


def _templates(texts: tuple[str, ...], site: str) -> tuple[TopicTemplate, ...]:
    try:
        return tuple(TopicTemplate.parse(t, site) for t in texts)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None


class FieldMap(BaseModel):
    """How vendor fields become a contract field (devices/mapping.py has the rules): `to` (None
    drops it), then enum, unit, value * scale + offset; or `expr`, which writes the field the
    entry is keyed by. E.g. a decoder's `distance` in cm: {to: distance_mm, scale: 10}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    to: str | None = None
    scale: float = Field(1.0, allow_inf_nan=False)
    offset: float = Field(0.0, allow_inf_nan=False)
    unit: str | None = Field(
        None, description="the vendor's unit, converted to the field's contract unit"
    )
    enum: dict[str | int | bool, float | int | bool | str] | None = Field(
        None, description="vendor value -> contract value, e.g. {normal: false, tilt: true}"
    )
    expr: str | None = Field(
        None,
        description="an expression over the payload's fields (devices/expressions.py); the "
        "entry's key is the contract field it writes",
    )
    when: dict[LevelName, Annotated[str, StringConstraints(max_length=256)]] | None = Field(
        None,
        description="apply only to messages whose topic template bound these named levels to "
        "these texts, e.g. {channel: '0'} (json sources)",
    )

    @model_validator(mode="after")
    def _one_form(self) -> FieldMap:
        if self.expr is not None:
            extra = {"to", "unit", "enum", "scale", "offset"} & self.model_fields_set
            if extra:
                raise ValueError(
                    f"an `expr` entry writes the field named by its key; {sorted(extra)} do "
                    "not apply (put the arithmetic in the expression)"
                )
        elif "to" not in self.model_fields_set:
            raise ValueError("give `to` (the contract field, or null to drop) or `expr`")
        return self


LevelName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
# What a firmware calls the device in its topics: any text one topic level can hold.
MqttName = Annotated[
    str, StringConstraints(pattern=r"^[^/+#\x00-\x1f\x7f]+$", min_length=1, max_length=128)
]


def field_map_shorthand(cls: type, raw: Any) -> Any:
    """`name` and `null` entries as the {to: ...} they stand for."""
    if not isinstance(raw, dict):
        return raw
    return {k: {"to": v} if v is None or isinstance(v, str) else v for k, v in raw.items()}


class _DeviceBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: DeviceId
    kind: str
    space: TagText
    name: str | None = None
    model: str | None = None
    dev_eui: DevEui | None = None
    mqtt_name: MqttName | None = Field(
        None,
        description="what the device's firmware calls it in its topics (the {device} level of "
        "a json source): shellyplug-s-C572BE, a Zigbee2MQTT friendly name, a BLE MAC",
    )
    interval_s: float | None = Field(default=None, gt=0, description="expected reporting interval")
    thresholds: dict[str, float] = Field(default_factory=dict)
    profile: str | None = Field(
        None,
        description="a bundled device profile (devices/profiles/), e.g. milesight-am307: its "
        "field_map and codec, under this device's own field_map entries",
    )
    field_map: dict[str, FieldMap] = Field(
        default_factory=dict,
        description="vendor field -> contract field; a bare name, null to drop, "
        "{to, scale, offset, unit, enum} or {expr}",
    )
    unknown_fields: UnknownFields | None = Field(
        None, description="ignore or reject fields nothing maps; default: the source's policy"
    )
    codec: str | None = Field(
        None,
        description="a LoRaWAN payload codec (JavaScript, decodeUplink) for uplinks that "
        "arrive without a decoded object; a path relative to the site file, or a profile's",
    )

    # Set when the site is validated: the kind from the site's catalogue, and the compiled
    # mapping (profile plus own entries); None where there is nothing to map.
    _spec: KindSpec | None = PrivateAttr(None)
    _mapper: FieldMapper | None = PrivateAttr(None)
    _names: dict[str, object] | None = PrivateAttr(None)
    _unknown_fields: UnknownFields | None = PrivateAttr(None)
    _codec_path: Path | None = PrivateAttr(None)
    _field_map: dict[str, FieldMap] = PrivateAttr(default_factory=dict)

    _shorthand = field_validator("field_map", mode="before")(field_map_shorthand)

    @field_validator("id")
    @classmethod
    def _not_a_service(cls, value: str) -> str:
        # The id is the device's broker user name: `kera-ingest` as a device would replace the
        # ingestor's password and inherit its rights (devices.onboarding).
        if reserved_name(value):
            raise ValueError(
                f"{value!r}: ids starting with {RESERVED_PREFIX!r} belong to the pipeline's own "
                "services (broker users kera-ingest, kera-sim); choose another id"
            )
        return value

    @model_validator(mode="after")
    def _bind_bundled(self) -> _DeviceBase:
        # A device made outside a site file (the serial simulators) still knows its kind. A
        # site binds every device again with its own catalogue and profiles, and reports what
        # does not compile there, where it can name the device.
        spec = KINDS.get(self.kind)
        if spec is not None:
            try:
                self.bind(spec, dict(self.field_map))
            except ValueError:
                self._spec = spec
        return self

    def bind(
        self,
        spec: KindSpec,
        field_map: dict[str, FieldMap],
        unknown_fields: UnknownFields | None = None,
        codec: Path | None = None,
    ) -> None:
        self._spec = spec
        self._mapper = FieldMapper(field_map, spec) if field_map else None
        self._field_map = field_map
        self._unknown_fields = self.unknown_fields or unknown_fields
        self._codec_path = codec

    # The properties below read the private values straight from pydantic's private dict: they
    # are on the per-message path, and an attribute lookup of a private name goes through
    # BaseModel.__getattr__, which costs about a microsecond each time.
    def _private(self, name: str) -> Any:
        private = self.__pydantic_private__
        assert private is not None
        return private[name]

    @property
    def spec(self) -> KindSpec:
        spec: KindSpec | None = self._private("_spec")
        if spec is None:
            raise RuntimeError(f"device {self.id!r}: kind {self.kind!r} is in no catalogue")
        return spec

    @property
    def mapper(self) -> FieldMapper | None:
        mapper: FieldMapper | None = self._private("_mapper")
        return mapper

    @property
    def mapping(self) -> Mapping[str, FieldMap]:
        """The entries in force: the profile's, then the device's own over them."""
        field_map: dict[str, FieldMap] = self._private("_field_map")
        return field_map

    @property
    def unknown_policy(self) -> UnknownFields | None:
        """The device's (or its profile's) unknown-field policy; None: the source's."""
        policy: UnknownFields | None = self._private("_unknown_fields")
        return policy

    @property
    def codec_path(self) -> Path | None:
        """The JavaScript payload codec for raw uplinks, resolved to a file, if any."""
        path: Path | None = self._private("_codec_path")
        return path

    def registry_values(self) -> dict[str, object]:
        """Registry attributes a derived field's expression may read (depth_mm, capacity...)."""
        names: dict[str, object] | None = self._private("_names")
        if names is None:
            names = {
                k: v
                for k, v in self.__dict__.items()
                if isinstance(v, int | float | str) and not isinstance(v, bool)
            }
            self._names = names
        return names

    @property
    def expected_interval_s(self) -> float:
        return self.interval_s if self.interval_s is not None else self.spec.default_interval_s

    def extra_tags(self) -> dict[str, str]:
        """Tags beyond site/space/device, as the kind's contract lists them."""
        tags: dict[str, str] = {}
        for name in self.spec.extra_tags:
            value = self.registry_values().get(name)
            if value is not None:
                tags[name] = str(value)
        return tags


class EnergyMeter(_DeviceBase):
    kind: Literal["energy_meter"]
    phases: Literal[1, 3] = 3
    role: TagText | None = Field(
        default=None, description="a tag: main-supply, sub-meter, pv-production, ev-charging"
    )


class OccupancySensor(_DeviceBase):
    kind: Literal["occupancy"]
    capacity: int | None = Field(default=None, ge=1, description="people the room is made for")


class WasteBin(_DeviceBase):
    kind: Literal["waste_bin"]
    depth_mm: float = Field(gt=0, le=20_000, description="sensor to bin bottom")
    fraction: WasteFraction = WasteFraction.MIXED
    volume_l: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _thresholds_are_percent(self) -> WasteBin:
        for key, value in self.thresholds.items():
            if key.endswith("_pct") and not 0 <= value <= 100:
                raise ValueError(f"threshold {key}={value} is not a percentage 0..100")
        return self


class HeatMeter(_DeviceBase):
    kind: Literal["heat_meter"]
    role: TagText | None = Field(
        default=None, description="a tag: district-heat-supply (the substation) or sub-meter"
    )


class WaterMeter(_DeviceBase):
    kind: Literal["water_meter"]
    role: TagText | None = Field(default=None, description="a tag: main-supply or sub-meter")


class IndoorAirSensor(_DeviceBase):
    kind: Literal["indoor_air"]


class WeatherStation(_DeviceBase):
    kind: Literal["weather_station"]


class PeopleCounter(_DeviceBase):
    kind: Literal["people_counter"]
    capacity: int | None = Field(default=None, ge=1, description="people the area is made for")


AttributeValue = Annotated[str, StringConstraints(max_length=128)] | float


class CatalogueDevice(_DeviceBase):
    """A device of a kind the site file adds under `kinds:`; `attributes` give its extra tags
    and the registry values its derived fields read."""

    kind: str
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)

    def registry_values(self) -> dict[str, object]:
        names: dict[str, object] | None = self._private("_names")
        if names is None:
            names = {**super().registry_values(), **self.attributes}
            self._names = names
        return names


_DEVICE_CLASSES: dict[str, type[_DeviceBase]] = {
    "energy_meter": EnergyMeter,
    "occupancy": OccupancySensor,
    "waste_bin": WasteBin,
    "heat_meter": HeatMeter,
    "water_meter": WaterMeter,
    "indoor_air": IndoorAirSensor,
    "weather_station": WeatherStation,
    "people_counter": PeopleCounter,
}
_CUSTOM = "custom"


def _device_class(raw: Any) -> str:
    kind = raw.get("kind") if isinstance(raw, dict) else getattr(raw, "kind", None)
    return kind if isinstance(kind, str) and kind in _DEVICE_CLASSES else _CUSTOM


Device = Annotated[
    Annotated[EnergyMeter, Tag("energy_meter")]
    | Annotated[OccupancySensor, Tag("occupancy")]
    | Annotated[WasteBin, Tag("waste_bin")]
    | Annotated[HeatMeter, Tag("heat_meter")]
    | Annotated[WaterMeter, Tag("water_meter")]
    | Annotated[IndoorAirSensor, Tag("indoor_air")]
    | Annotated[WeatherStation, Tag("weather_station")]
    | Annotated[PeopleCounter, Tag("people_counter")]
    | Annotated[CatalogueDevice, Tag(_CUSTOM)],
    Discriminator(_device_class),
]


class _SerialPort(BaseModel):
    """A serial link: where it is and how its bytes are framed (docs/serial.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: DeviceId = Field(description="names the link in logs and metrics")
    port: str = Field(min_length=1, description="e.g. /dev/serial/by-id/usb-FTDI_...-if00-port0")
    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    republish: bool = Field(
        False,
        description="publish readings on kera/{site}/{device}/telemetry instead of writing "
        "them directly; the ingestor then takes them from the broker like any device",
    )


MeterModel = Literal["sdm630", "sdm120"]


class ModbusMeter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device: DeviceId = Field(description="an energy_meter of the site")
    unit: int = Field(ge=1, le=247, description="Modbus unit (slave) id on the bus")
    model: MeterModel = Field(description="register map: sdm630 (3-phase) or sdm120 (1-phase)")
    interval_s: float = Field(10.0, gt=0, description="poll interval")


class ModbusBus(_SerialPort):
    framing: Literal["modbus_rtu"]
    timeout_s: float = Field(1.0, gt=0, description="answer timeout per request")
    retries: int = Field(2, ge=0, le=10, description="retries per request before it fails")
    offline_after: int = Field(
        3, ge=1, description="failed polls in a row before the meter is marked offline"
    )
    meters: list[ModbusMeter] = Field(min_length=1)


class P1Port(_SerialPort):
    framing: Literal["p1"]
    baudrate: int = 115200
    device: DeviceId = Field(description="the energy_meter the HAN/P1 port belongs to")
    spec: Literal["nordic", "dsmr5"] = Field(
        "nordic",
        description="OBIS list: nordic (Finnish/Swedish HAN: 1.8.0/2.8.0 totals) or dsmr5 "
        "(Dutch DSMR 5: tariff registers)",
    )


class LinePort(_SerialPort):
    framing: Literal["lines"]
    baudrate: int = 115200
    max_line_bytes: int = Field(4096, ge=64, description="longer lines are cut frames")


SerialSource = Annotated[ModbusBus | P1Port | LinePort, Field(discriminator="framing")]


class AlertRule(BaseModel):
    """One alert rule, as written in the site file's `alerts.rules`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    kind: Literal["threshold", "rate", "offline"]
    measurement: str | None = Field(None, description="threshold/rate: the measurement")
    field_name: str | None = Field(None, alias="field", description="threshold/rate: the field")
    warning: float | bool | None = None
    critical: float | bool | None = None
    clear: float | None = Field(None, description="threshold: clears only past this value")
    below: bool = Field(False, description="threshold: fire when under, not over")
    for_s: float = Field(0.0, ge=0, description="threshold: must hold this long before firing")
    limit_key: str | None = Field(
        None, description="threshold: take the critical level from the device's thresholds"
    )
    intervals: float = Field(3.0, gt=0, description="offline: missed expected intervals")
    description: str = ""


DEFAULT_RULES: tuple[AlertRule, ...] = tuple(
    AlertRule.model_validate(r)
    for r in (
        {"name": "bin_fill", "kind": "threshold", "measurement": "waste_bin", "field": "fill_pct",
         "warning": 80, "critical": 95, "clear": 60,
         "description": "The bin needs emptying."},
        {"name": "bin_fire", "kind": "threshold", "measurement": "waste_bin",
         "field": "temperature_c", "critical": 60, "clear": 45,
         "description": "Hot bin: possible fire. Check now."},
        {"name": "bin_tilted", "kind": "threshold", "measurement": "waste_bin", "field": "tilt",
         "warning": True, "description": "Bin tipped over or lid open."},
        {"name": "co2_high", "kind": "threshold", "measurement": "occupancy", "field": "co2_ppm",
         "warning": 1200, "clear": 1000, "for_s": 900,
         "description": "Stale air: ventilate or move people."},
        {"name": "battery_low", "kind": "threshold", "measurement": "waste_bin",
         "field": "battery_pct", "warning": 15, "clear": 20, "below": True,
         "description": "Replace the sensor's battery."},
        {"name": "power_max", "kind": "threshold", "measurement": "energy", "field": "power_w",
         "limit_key": "max_power_w",
         "description": "Power over the meter's configured maximum."},
        {"name": "air_co2_high", "kind": "threshold", "measurement": "indoor_air",
         "field": "co2_ppm", "warning": 1200, "clear": 1000, "for_s": 900,
         "description": "Stale air in a room without people counting: ventilate."},
        {"name": "heat_cooling_low", "kind": "threshold", "measurement": "heat",
         "field": "delta_t_k", "warning": 15, "clear": 18, "below": True, "for_s": 3600,
         "description": "District heat returns too warm: check the substation's control "
                        "and radiator valves (poor cooling costs the network and the bill)."},
        {"name": "water_leak", "kind": "threshold", "measurement": "water", "field": "leak",
         "critical": True, "description": "The water meter reports a leak or burst."},
        {"name": "device_offline", "kind": "offline", "intervals": 3,
         "description": "The device has gone silent."},
    )
)  # fmt: skip


_ENV_PART = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Environment variables no site file may send anywhere: the pipeline's own credentials.
_SECRET_ENV = re.compile(r"^(KERA_INFLUX_|KERA_MQTT_|INFLUXDB_|GRAFANA_)|PASSWORD", re.IGNORECASE)
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


class Webhook(BaseModel):
    """An alert webhook. The URL is code a site file points the ingestor at, so it is bounded:
    http(s) only, `${NAME}` only for the variables listed in `env`, no redirects followed, and
    no loopback, link-local or private address unless `allow_private`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        description="http(s) URL; `${NAME}` parts are read from the environment variables "
        "listed in `env`, so a secret token in the URL stays out of the file"
    )
    env: tuple[EnvName, ...] = Field(
        (),
        description="the environment variables the URL may use as ${NAME}; none of the "
        "pipeline's own credentials (KERA_INFLUX_*, KERA_MQTT_*, INFLUXDB_*, GRAFANA_*, "
        "anything with PASSWORD)",
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="per attempt, connection included")
    allow_private: bool = Field(
        False,
        description="deliver to loopback, link-local and private addresses too (a receiver on "
        "the same host or LAN); off, such targets are refused, so a site file cannot make the "
        "ingestor call the services beside it",
    )

    @model_validator(mode="after")
    def _bounded(self) -> Webhook:
        for name in self.env:
            if _SECRET_ENV.search(name):
                raise ValueError(f"env: {name} is one of the pipeline's own credentials")
        used = set(_ENV_PART.findall(self.url))
        if unlisted := sorted(used - set(self.env)):
            raise ValueError(
                f"the URL uses ${{{unlisted[0]}}}, which is not in the hook's `env` list; name "
                "every variable a hook may send"
            )
        scheme = self.url.split(":", 1)[0].lower()
        if scheme not in ("http", "https") or not self.url.lower().startswith(scheme + "://"):
            raise ValueError(f"{self.shown()}: only http:// and https:// webhooks are allowed")
        return self

    def resolved_url(self) -> str:
        """The URL with its listed variables filled in; raises KeyError naming a missing one."""

        def value(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.env:  # cannot happen after validation; never expand others
                raise KeyError(name)
            return os.environ[name]

        return _ENV_PART.sub(value, self.url)

    def shown(self) -> str:
        """The URL as logs show it: scheme, host and port only, since a path, query or user
        part may carry a token (Slack and Teams put theirs in the path)."""
        return redacted_url(self.url)


def redacted_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<not a URL>"
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/…"


class Alerts(BaseModel):
    """The site file's `alerts` section; without it, DEFAULT_RULES and no webhooks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[AlertRule, ...] = DEFAULT_RULES
    webhooks: tuple[Webhook, ...] = ()
    cooldown_s: float = Field(
        900.0, ge=0, description="a re-firing alert is not sent again within this time"
    )
    retries: int = Field(5, ge=0, le=20, description="webhook delivery attempts after the first")


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HoursText = Annotated[
    str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")
]


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class Impact(BaseModel):
    """The site file's `impact` section (docs/impact.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    emission_factor_kg_per_kwh: float | None = Field(
        None,
        ge=0,
        le=2,
        description="grid electricity, kgCO2e per kWh; the factor for hours the CSV series "
        "does not cover; with neither, no emissions are computed",
    )
    emission_factors_csv: str | None = Field(
        None,
        description="an hourly factor series, CSV with columns time (ISO 8601 with offset, or "
        "epoch seconds) and kg_per_kwh; a relative path is read from the site file's folder",
    )
    emission_factor_source: FactorSource | None = Field(
        None,
        description="where the factor comes from (devices/factor_source.py): a publication "
        "(publisher, year, where) or an example; stated in reports, required with a factor",
    )
    heat_emission_factor_kg_per_kwh: float | None = Field(
        None,
        ge=0,
        le=2,
        description="district heat, kgCO2e per kWh delivered (the heat supplier's published "
        "figure); without it, heat is counted in kWh but no emissions",
    )
    heat_emission_factor_source: FactorSource | None = Field(
        None, description="where the heat factor comes from, as emission_factor_source; required"
    )
    opening_hours: dict[Weekday, HoursText] = Field(
        default_factory=dict,
        description="local opening hours per weekday, e.g. {mon: '08:00-20:00'}; a day not "
        "listed is closed; the base of space utilisation",
    )

    @field_validator("emission_factor_source", "heat_emission_factor_source", mode="before")
    @classmethod
    def _source_has_a_kind(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_plain_text(value, str(info.field_name))

    def factors(self) -> list[Factor]:
        """The factors emissions are computed with, electricity first; none without a factor."""
        out = []
        grid, source = self.emission_factor_kg_per_kwh, self.emission_factor_source
        if source is not None and (grid is not None or self.emission_factors_csv):
            value = "an hourly series" if self.emission_factors_csv else ""
            if grid is not None:
                value = f"{value}, else {grid:g} kg/kWh" if value else f"{grid:g} kg/kWh"
            out.append(Factor("electricity", GRID_FIELD, value, source, ELECTRICITY_HOW_TO))
        heat, heat_source = self.heat_emission_factor_kg_per_kwh, self.heat_emission_factor_source
        if heat_source is not None and heat is not None:
            out.append(
                Factor("district heat", HEAT_FIELD, f"{heat:g} kg/kWh", heat_source, HEAT_HOW_TO)
            )
        return out

    def example_notices(self) -> list[str]:
        """One sentence per factor that is an example, not a publication: what it is used for
        and how to set a real one."""
        return [
            f"The {f.energy} emissions use an example emission factor ({f.value}), not a "
            f"published statistic: {f.how_to}."
            for f in self.factors()
            if f.source.example
        ]

    @model_validator(mode="after")
    def _factor_has_source(self) -> Impact:
        factor = self.emission_factor_kg_per_kwh is not None or self.emission_factors_csv
        if factor and not self.emission_factor_source:
            raise ValueError("an emission factor needs emission_factor_source, named in reports")
        if (
            self.heat_emission_factor_kg_per_kwh is not None
            and not self.heat_emission_factor_source
        ):
            raise ValueError(
                "heat_emission_factor_kg_per_kwh needs heat_emission_factor_source (for reports)"
            )
        for day, hours in self.opening_hours.items():
            start, end = hours.split("-")
            if _minutes(start) >= _minutes(end):
                raise ValueError(f"opening_hours {day}: {hours!r} must open before it closes")
        return self

    def open_minutes(self, weekday: int) -> tuple[int, int] | None:
        """(opens, closes) in minutes after local midnight for weekday 0=Monday, or None."""
        hours = self.opening_hours.get(WEEKDAYS[weekday])
        if hours is None:
            return None
        start, end = hours.split("-")
        return _minutes(start), _minutes(end)


class Discovery(BaseModel):
    """Home Assistant MQTT discovery (ingest/codecs/discovery.py): announced devices that are
    not in the site file are recorded for `kera-ingest quarantine`, never stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="subscribe to discovery config messages")
    prefix: Annotated[str, StringConstraints(pattern=r"^[^/+#\x00]{1,64}$")] = Field(
        "homeassistant", description="the discovery prefix the firmwares publish under"
    )

    def filters(self) -> tuple[str, ...]:
        return (f"{self.prefix}/+/+/config", f"{self.prefix}/+/+/+/config")


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: SiteId
    name: str | None = None
    timezone: str = "Europe/Helsinki"
    sources: tuple[Source, ...] = Field(
        default=(Source(codec=Codec.NATIVE),),
        description="codecs and the topics they decode; default: the native contract only",
    )
    unknown_devices: Literal["reject", "quarantine"] = Field(
        "reject",
        description="reject: dead-letter messages of unregistered devices; quarantine: also "
        "record them for a technician to adopt (kera-ingest quarantine)",
    )
    discovery: Discovery = Field(
        default_factory=Discovery,
        description="Home Assistant discovery: announced devices appear in `kera-ingest "
        "quarantine` with a ready site-file entry (they imply the quarantine file)",
    )
    alerts: Alerts = Field(default_factory=Alerts, description="alert rules and webhooks")
    impact: Impact = Field(default_factory=Impact, description="impact metric settings")
    serial: list[SerialSource] = Field(
        default_factory=list, description="serial links the ingestor reads (docs/serial.md)"
    )
    kinds: dict[str, Any] = Field(
        default_factory=dict,
        description="kinds this site adds to the bundled catalogue, or fields it adds to a "
        "catalogue kind; same rules as devices/catalogue.yaml",
    )
    devices: list[Device] = Field(min_length=1)
    pilots: tuple[Pilot, ...] = Field(
        (), description="pilot experiments and what they are judged on (docs/pilots.md)"
    )
    weather: Weather = Field(
        default_factory=Weather,
        description="outdoor temperature beyond the site's own weather station (docs/pilots.md)",
    )

    _catalogue: dict[str, KindSpec] = PrivateAttr(default_factory=dict)
    # Where relative codec paths are read from: the site file's folder.
    _base_dir: Path | None = PrivateAttr(None)

    @property
    def catalogue(self) -> Mapping[str, KindSpec]:
        """The bundled kinds plus this site's own."""
        return self._catalogue

    @model_validator(mode="after")
    def _bind_devices(self) -> Site:
        self.bind_devices(None)
        return self

    def bind_devices(self, base_dir: Path | None) -> None:
        """Each device's kind from the site's catalogue, its profile and its compiled mapping.
        Run again by load_site once the file's folder is known (relative codec paths)."""
        from devices.profiles import ProfileError, load_profile

        try:
            catalogue = build_kinds(self.kinds, KINDS) if self.kinds else dict(KINDS)
        except CatalogueError as exc:
            raise ValueError(f"kinds: {exc}") from None
        for i, d in enumerate(self.devices):
            where = f"device {d.id!r} (devices[{i}])"
            spec = catalogue.get(d.kind)
            if spec is None:
                raise ValueError(
                    f"{where}: field 'kind': {d.kind!r} is not in the catalogue "
                    f"({', '.join(catalogue)}); a site file adds a kind under `kinds:`"
                )
            field_map: dict[str, FieldMap] = {}
            unknown: UnknownFields | None = None
            codec: Path | None = None
            if d.profile is not None:
                try:
                    profile = load_profile(d.profile)
                except ProfileError as exc:
                    raise ValueError(f"{where}: {exc}") from None
                if profile.kind != d.kind:
                    raise ValueError(
                        f"{where}: profile {d.profile!r} is for kind {profile.kind!r}, "
                        f"not {d.kind!r}"
                    )
                unknown = profile.unknown_fields
                codec = profile.codec_path
            # The device's own entries first: where both write one field, the first entry
            # that applies to a message wins (devices/mapping.py).
            field_map.update(d.field_map)
            if d.profile is not None:
                for key, entry in profile.field_map.items():
                    field_map.setdefault(key, entry)
            if d.codec is not None:
                codec = Path(d.codec)
                if not codec.is_absolute() and base_dir is not None:
                    codec = base_dir / codec
            try:
                d.bind(spec, field_map, unknown, codec)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        self._check_rules(catalogue)
        self._catalogue = catalogue
        self._base_dir = base_dir

    def _check_rules(self, catalogue: Mapping[str, KindSpec]) -> None:
        """Alert rules name a measurement and field of the catalogue, so a typo cannot leave a
        rule that never fires."""
        fields: dict[str, set[str]] = {}
        for spec in catalogue.values():
            fields.setdefault(spec.measurement, set()).update(spec.all_fields())
        for rule in self.alerts.rules:
            if rule.kind == "offline":
                continue
            known = fields.get(rule.measurement or "")
            if known is None:
                raise ValueError(
                    f"alerts.rules {rule.name!r}: no kind writes measurement "
                    f"{rule.measurement!r} (there are: {', '.join(sorted(fields))})"
                )
            if rule.field_name not in known:
                raise ValueError(
                    f"alerts.rules {rule.name!r}: measurement {rule.measurement!r} has no field "
                    f"{rule.field_name!r} (it has {', '.join(sorted(known))})"
                )

    @model_validator(mode="after")
    def _serial_devices(self) -> Site:
        kinds = {d.id: d.kind for d in self.devices}
        names: set[str] = set()
        for link in self.serial:
            if link.name in names:
                raise ValueError(f"serial link name {link.name!r} appears more than once")
            names.add(link.name)
            fed = (
                [m.device for m in link.meters]
                if isinstance(link, ModbusBus)
                else [link.device]
                if isinstance(link, P1Port)
                else []
            )
            for device_id in fed:
                if kinds.get(device_id) != "energy_meter":
                    raise ValueError(
                        f"serial link {link.name!r}: {device_id!r} is not an energy_meter of "
                        "this site"
                    )
            if isinstance(link, ModbusBus):
                units = [m.unit for m in link.meters]
                if len(units) != len(set(units)):
                    raise ValueError(f"serial link {link.name!r}: a unit id appears twice")
        return self

    @model_validator(mode="after")
    def _check_pilots(self) -> Site:
        check_against(self.pilots, self.devices)
        return self

    @model_validator(mode="after")
    def _unique(self) -> Site:
        filters: set[str] = set()
        for source in self.sources:
            for f in source.filters(self.site):
                if f in filters:
                    raise ValueError(f"topic filter {f!r} is given to more than one source")
                filters.add(f)
        seen: set[str] = set()
        euis: set[str] = set()
        aliases: dict[str, str] = {}
        for device in self.devices:
            if device.mqtt_name is not None:
                other = aliases.get(device.mqtt_name)
                if other is not None:
                    raise ValueError(
                        f"mqtt_name {device.mqtt_name!r} is given to both {other!r} and "
                        f"{device.id!r}; a topic must name one device"
                    )
                aliases[device.mqtt_name] = device.id
            if device.id in seen:
                raise ValueError(
                    f"device id {device.id!r} appears more than once; give each device its own id"
                )
            seen.add(device.id)
            if device.dev_eui is not None:
                if device.dev_eui in euis:
                    raise ValueError(f"dev_eui {device.dev_eui!r} appears more than once")
                euis.add(device.dev_eui)
        for name, owner in aliases.items():
            if name in seen and name != owner:
                raise ValueError(
                    f"mqtt_name {name!r} of {owner!r} is another device's id; a topic naming "
                    "it could be either"
                )
        return self


class SiteConfigError(ValueError):
    """A site file that cannot be used; the message names the file, the device and the field."""


def _describe(source: str, raw: Any, err: ValidationError) -> str:
    lines = [f"{source}: invalid site file ({err.error_count()} problem(s))"]
    for e in err.errors():
        loc = list(e["loc"])
        where = "site"
        if len(loc) >= 2 and loc[0] == "devices" and isinstance(loc[1], int):
            index = loc[1]
            device_id = "?"
            try:
                candidate = raw["devices"][index]
                if isinstance(candidate, dict):
                    device_id = str(candidate.get("id", "?"))
            except (KeyError, IndexError, TypeError):
                pass
            where = f"device {device_id!r} (devices[{index}])"
            loc = loc[2:]
            # The discriminated union puts the device class's tag first; it is not a field.
            if loc and (loc[0] in _DEVICE_CLASSES or loc[0] == _CUSTOM):
                loc = loc[1:]
        if e["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            loc = ["kind"]
        field = ".".join(str(p) for p in loc)
        if not field and e["type"] == "value_error":
            # A whole-site check: its message already names the device and field.
            lines.append(f"  {e['msg'].removeprefix('Value error, ')}")
            continue
        lines.append(f"  {where}: field {field or '-'!r}: {e['msg']}")
    return "\n".join(lines)


def parse_site(text: str, source: str = "<site>") -> Site:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SiteConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SiteConfigError(f"{source}: expected a mapping with 'site' and 'devices'")
    try:
        return Site.model_validate(raw)
    except ValidationError as exc:
        raise SiteConfigError(_describe(source, raw, exc)) from None


def default_site_text() -> str:
    return resources.files("devices.sites").joinpath(DEFAULT_SITE_RESOURCE).read_text("utf-8")


def load_site(path: str | os.PathLike[str] | None = None) -> Site:
    """Load and validate a site file; with no path, the bundled Kera meeting-place site."""
    if path is None:
        return parse_site(default_site_text(), f"<bundled {DEFAULT_SITE_RESOURCE}>")
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise SiteConfigError(f"{p}: cannot read site file: {exc.strerror}") from exc
    site = parse_site(text, str(p))
    if any(d.codec is not None for d in site.devices):
        try:
            site.bind_devices(p.parent)
        except ValueError as exc:
            raise SiteConfigError(f"{p}: {exc}") from None
    csv = site.impact.emission_factors_csv
    if csv is not None and not Path(csv).is_absolute():
        # The series travels with its site file, wherever the service is started from.
        impact = site.impact.model_copy(update={"emission_factors_csv": str(p.parent / csv)})
        site = site.model_copy(update={"impact": impact})
    return site
