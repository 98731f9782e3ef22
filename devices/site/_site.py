"""The site: its sources, devices, serial links, alerts, impact settings and pilots, checked
against each other and compiled once (each device bound to its kind, profile and codec)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

from devices.contract import (
    KINDS,
    CatalogueError,
    KindSpec,
    build_kinds,
)
from devices.field_maps import (
    FieldMap,
    UnknownFields,
)
from devices.pilots import Pilot, Weather, check_against
from devices.profiles import ProfileError, load_profile
from devices.site._alerts import (
    Alerts,
)
from devices.site._devices import (
    Device,
)
from devices.site._impact import (
    Impact,
)
from devices.site._serial import (
    ModbusBus,
    P1Port,
    SerialSource,
)
from devices.site._sources import (
    Codec,
    Source,
)
from devices.site._types import (
    SiteId,
)

# The validation context key for the site file's folder, where relative codec paths start.
BASE_DIR = "kera_base_dir"


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
    def _bind_devices(self, info: ValidationInfo) -> Site:
        base_dir = info.context.get(BASE_DIR) if info.context is not None else None
        self._bind(base_dir)
        return self

    def _bind(self, base_dir: Path | None) -> None:
        """Each device's kind from the site's catalogue, its profile and its compiled mapping,
        once, as the site is validated; relative codec paths from `base_dir`, the site file's
        folder (`parse_site`)."""
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
