"""Devices that announce themselves: Home Assistant MQTT discovery messages.

Tasmota, Shelly, Zigbee2MQTT, ESPHome and OpenMQTTGateway can publish, for each value a device
has, a retained config message on `<prefix>/<component>/[<node_id>/]<object_id>/config` with
its state topic, device class, unit and value template. With `discovery: {enabled: true}` in the
site file the ingestor subscribes to them. They are never readings:

- an announcement for a registered device (its state topic goes to a `json` source and names a
  device of the site) is counted as a message with no reading;
- any other is rejected `unknown_device` and kept in the quarantine file, where `kera-ingest
  quarantine` turns a device's announcements into a site-file entry (ingest/quarantine.py).

Nothing is stored for an announced device until an operator adds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from devices import Codec, Site
from ingest.codecs._json import load_json
from ingest.codecs.templated import MAX_NAME, TemplateCodec
from ingest.reading import Decoded, Reason, Rejected

# Home Assistant's abbreviations of the keys read here (its MQTT integration's abbreviations
# list; Tasmota and ESPHome send the short forms).
_KEYS = {
    "stat_t": "state_topic",
    "avty_t": "availability_topic",
    "uniq_id": "unique_id",
    "dev_cla": "device_class",
    "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template",
    "json_attr_t": "json_attributes_topic",
    "dev": "device",
    "obj_id": "object_id",
    "avty": "availability",
}
_DEVICE_KEYS = {"ids": "identifiers", "mf": "manufacturer", "mdl": "model", "sw": "sw_version"}

# `{{ value_json.a.b }}`, `{{ value_json['A']['B'] }}`, optionally `| float`, `| int`,
# `| round(1)`: a plain path, which a field map can say. Anything else is left to a person.
_STEP = r"(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\s*'[^'\]]*'\s*\]|\[\s*\"[^\"\]]*\"\s*\])"
_FILTERS = r"(?:\|\s*(?:float|int|round|is_defined)(?:\(\s*\d*\s*\))?\s*)*"
_TEMPLATE = re.compile(r"^\{\{\s*value_json(?P<path>" + _STEP + r"+)\s*" + _FILTERS + r"\}\}$")
_PLAIN_VALUE = re.compile(r"^\{\{\s*value\s*" + _FILTERS + r"\}\}$")
_PART = re.compile(_STEP)


@dataclass(frozen=True, slots=True)
class Announcement:
    """One discovery config message, as far as it says where a value is and what it is."""

    component: str
    entity: str
    device_key: str
    device_name: str | None
    model: str | None
    manufacturer: str | None
    state_topic: str | None
    availability_topic: str | None
    device_class: str | None
    unit: str | None
    # The value's path in the state message (None: the whole payload is the value, or the
    # template is not a plain path: see `template`).
    path: tuple[str, ...] | None
    template: str | None


def _text(value: object) -> str | None:
    return value[:256] if isinstance(value, str) and value else None


def _expand_base(config: dict[str, Any]) -> None:
    """`~` abbreviates a base topic at either end of a topic."""
    base = config.get("~")
    if not isinstance(base, str):
        return
    for key in ("state_topic", "availability_topic", "json_attributes_topic"):
        value = config.get(key)
        if isinstance(value, str):
            if value.startswith("~"):
                value = base + value[1:]
            elif value.endswith("~"):
                value = value[:-1] + base
            config[key] = value


def _availability(config: dict[str, Any]) -> object:
    """The availability topic: `availability_topic`, or the first of an `availability` list."""
    availability = config.get("availability_topic")
    if availability is None and isinstance(config.get("availability"), list):
        first = config["availability"][0] if config["availability"] else None
        if isinstance(first, dict):
            availability = first.get("topic") or first.get("t")
    return availability


def _value_path(template: str | None) -> tuple[tuple[str, ...] | None, str | None]:
    """A value template as a path into the JSON payload ({{ value_json.a.b }}), or the payload
    itself ({{ value }}: neither), or kept as text (a template no path expresses)."""
    if template is None:
        return None, None
    m = _TEMPLATE.match(template)
    if m is not None:
        return tuple(p.strip(".[]'\" ") for p in _PART.findall(m.group("path"))), None
    if _PLAIN_VALUE.match(template):
        return None, None  # the payload itself is the value
    return None, template


def parse_announcement(topic: str, payload: bytes, prefix: str) -> Announcement:
    """A discovery config message; Rejected (bad_format) when it is not one."""
    levels = topic.split("/")
    if len(levels) not in (4, 5) or levels[-1] != "config" or levels[0] != prefix:
        raise Rejected(
            Reason.BAD_TOPIC,
            f"{topic[:120]!r} is not {prefix}/<component>/[<node_id>/]<object_id>/config",
        )
    obj = load_json(payload)
    if not isinstance(obj, dict):
        raise Rejected(Reason.NOT_OBJECT, "a discovery config must be a JSON object")
    config: dict[str, Any] = {_KEYS.get(str(k), str(k)): v for k, v in obj.items()}
    _expand_base(config)
    device = config.get("device")
    device = (
        {_DEVICE_KEYS.get(str(k), str(k)): v for k, v in device.items()}
        if isinstance(device, dict)
        else {}
    )
    ids = device.get("identifiers")
    if isinstance(ids, list) and ids:
        ids = ids[0]
    node = levels[2] if len(levels) == 5 else None
    device_key = _text(ids) or node or _text(config.get("unique_id")) or levels[-2]
    availability = _availability(config)
    path, template = _value_path(_text(config.get("value_template")))
    state_topic = _text(config.get("state_topic"))
    if state_topic is None:
        raise Rejected(Reason.MISSING_FIELD, "a discovery config without a state_topic")
    return Announcement(
        component=levels[1],
        entity=_text(config.get("name")) or levels[-2],
        device_key=device_key,
        device_name=_text(device.get("name")),
        model=_text(device.get("model")),
        manufacturer=_text(device.get("manufacturer")),
        state_topic=state_topic,
        availability_topic=_text(availability),
        device_class=_text(config.get("device_class")),
        unit=_text(config.get("unit_of_measurement")),
        path=path,
        template=template,
    )


class DiscoveryCodec:
    """The route of discovery config messages: registered or quarantined, never stored."""

    __slots__ = ("_prefix", "_sources")

    def __init__(self, site: Site) -> None:
        self._prefix = site.discovery.prefix
        self._sources = [
            TemplateCodec(source, site) for source in site.sources if source.codec is Codec.JSON
        ]

    def device_of(self, state_topic: str) -> str | None:
        """The device name a json source reads from this state topic, or None."""
        for codec in self._sources:
            name = codec.name_in(state_topic)
            if name is not None:
                return name
        return None

    def decode(self, topic: str, payload: bytes, site: str, received_ms: int = 0) -> list[Decoded]:
        found = parse_announcement(topic, payload, self._prefix)
        assert found.state_topic is not None
        name = self.device_of(found.state_topic)
        known = None
        for codec in self._sources:
            known = codec.known_device(name) if name is not None else None
            if known is not None:
                break
        if known is not None:
            return [Decoded(known, None, {}, no_reading="a Home Assistant discovery config")]
        who = name or found.device_name or found.device_key
        raise Rejected(
            Reason.UNKNOWN_DEVICE,
            f"{who!r:.80} announced itself (Home Assistant discovery, {found.component} "
            f"{found.entity!r:.60} on {found.state_topic!r:.120}) and is not in the site file; "
            "`kera-ingest quarantine` has an entry for it",
            who[:MAX_NAME],
        )
