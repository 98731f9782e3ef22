"""The devices of a site file, one model per kind of the catalogue (and one for kinds a site
adds), each bound to its kind, mapping and codec when the site is validated."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    StringConstraints,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from devices.contract import (
    KINDS,
    RESERVED_PREFIX,
    KindSpec,
    reserved_name,
)
from devices.field_maps import (
    FieldMap,
    UnknownFields,
    field_map_shorthand,
)
from devices.mapping import FieldMapper
from devices.site._types import (
    DevEui,
    DeviceId,
    MqttName,
    TagText,
)

# The validation context key a site sets while it validates its devices (`Site`, `parse_site`):
# they are bound by the site, not on their own.
IN_SITE = "kera_in_site"


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
    def _bind_bundled(self, info: ValidationInfo) -> _DeviceBase:
        # A device made outside a site file (the serial simulators, tests) knows its kind from
        # the bundled catalogue. Inside a site the site binds it, once, with its own catalogue
        # and profiles, and reports what does not compile where it can name the device.
        if info.context is not None and info.context.get(IN_SITE):
            return self
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
        self._names = self._registry_names()

    # The properties below read the private values straight from pydantic's private dict: they
    # are on the per-message path, and an attribute lookup of a private name goes through
    # BaseModel.__getattr__, which costs about a microsecond each time.
    def _private(self, name: str) -> Any:
        private = self.__pydantic_private__
        assert private is not None
        return private[name]

    @property
    def spec(self) -> KindSpec:
        private = self.__pydantic_private__  # inline: read for every message, twice
        spec: KindSpec | None = private["_spec"] if private is not None else None
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
        return names if names is not None else self._registry_names()

    def _registry_names(self) -> dict[str, object]:
        return {
            k: v
            for k, v in self.__dict__.items()
            if isinstance(v, int | float | str) and not isinstance(v, bool)
        }

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

    def _registry_names(self) -> dict[str, object]:
        return {**super()._registry_names(), **self.attributes}


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
