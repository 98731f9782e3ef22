"""Adopting unknown devices: what quarantine mode recorded, summarised per device, with a site-file
entry to start from. Used by `kera-ingest quarantine`.

A technician checks the suggestion (the kind is guessed from the field names the device sends,
or, for a device that announced itself through Home Assistant discovery, from its device
classes, which also give its field map where the value templates are plain paths),
fills in the space, adds it to the site file and restarts the ingestor. Nothing is stored for a
device until then, so tags stay bounded and nobody writes as a device that was never registered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devices import KINDS, Site
from devices.contract import UNIT_CONVERSIONS, KindSpec
from devices.presets import PRESETS
from devices.topics import DEVICE, FIELD, TopicTemplate
from ingest.codecs import Router
from ingest.codecs.discovery import Announcement, DiscoveryCodec, parse_announcement
from ingest.reading import Rejected

# What a Home Assistant device class is in the contract (the kind decides between the two
# voltages: a sensor's is its battery's).
DEVICE_CLASS_FIELDS: dict[str, str] = {
    "temperature": "temperature_c",
    "humidity": "humidity_pct",
    "carbon_dioxide": "co2_ppm",
    "pressure": "pressure_hpa",
    "atmospheric_pressure": "pressure_hpa",
    "illuminance": "illuminance_lux",
    "battery": "battery_pct",
    "power": "power_w",
    "energy": "energy_kwh",
    "voltage": "voltage_v",
    "current": "current_a",
    "frequency": "frequency_hz",
    "motion": "motion",
    "occupancy": "motion",
    "presence": "motion",
    "pm25": "pm2_5_ugm3",
    "pm10": "pm10_ugm3",
    "volatile_organic_compounds": "tvoc_ugm3",
    "water": "volume_m3",
    "sound_pressure": "sound_dba",
}


@dataclass(slots=True)
class Candidate:
    device_id: str | None
    dev_eui: str | None
    messages: int = 0
    first_ms: int = 0
    last_ms: int = 0
    topics: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    # Home Assistant discovery configs the device published, by entity.
    announced: dict[str, Announcement] = field(default_factory=dict)
    # No json source of the site takes the announced state topics: the preset that would, or
    # None with `unrouted` when no preset would either.
    preset: str | None = None
    unrouted: bool = False

    def _guesses(self) -> dict[str, str]:
        """Announced device classes as contract fields, by entity."""
        return {
            entity: DEVICE_CLASS_FIELDS[a.device_class]
            for entity, a in self.announced.items()
            if a.device_class in DEVICE_CLASS_FIELDS
        }

    @property
    def kind(self) -> str | None:
        """The contract kind sharing most field names with what the device sent, or with what
        its announced device classes are."""
        names = self.fields | set(self._guesses().values())
        best, score = None, 0
        for kind, spec in KINDS.items():
            n = len(names & set(spec.fields))
            if n > score:
                best, score = str(kind), n
        return best

    def site_entry(self) -> str:
        name = self.device_id or f"eui-{self.dev_eui}"
        # A firmware's own name (shellyplug-s-C572BE, a Zigbee2MQTT friendly name) is rarely a
        # valid id: the entry gets an id made from it and keeps the name as its mqtt_name.
        slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:64] or "device"
        kind = self.kind
        because = (
            "from the announced device classes"
            if self.announced
            else f"sends {', '.join(sorted(self.fields)) or '?'}"
        )
        lines = [
            f"  - id: {slug}",
            f"    kind: {kind or 'TODO'}  # {because}",
            "    space: TODO",
        ]
        if self.device_id is not None and slug != self.device_id:
            lines.append(f"    mqtt_name: {json.dumps(self.device_id, ensure_ascii=False)}")
        if self.dev_eui:
            lines.append(f"    dev_eui: {self.dev_eui}")
        if self.announced:
            lines += self._announced_entry(kind)
        return "\n".join(lines)

    def _announced_entry(self, kind: str | None) -> list[str]:
        spec = KINDS.get(kind) if kind is not None else None
        first = next(iter(self.announced.values()))
        lines: list[str] = []
        if first.model or first.manufacturer:
            model = " ".join(t for t in (first.manufacturer, first.model) if t)
            lines.append(f"    model: {json.dumps(model, ensure_ascii=False)}")
        entries: list[str] = []
        unsure: list[str] = []
        for entity, a in sorted(self.announced.items()):
            entry, doubt = self._guess(entity, a, spec)
            if doubt is not None:
                unsure.append(doubt)
            elif entry is not None:
                entries.append(entry)
        if entries:
            lines.append("    field_map:")
            lines += entries
        if unsure:
            lines.append(f"    # not guessed: {'; '.join(unsure)}")
        if self.preset is not None:
            lines.append(
                f"    # no source of this site takes {first.state_topic}: add "
                f"`- preset: {self.preset}` under sources"
            )
        elif self.unrouted:
            lines.append(
                f"    # no source of this site, and no preset, takes {first.state_topic}: add a "
                "json source whose topics match it, with a {device} level (docs/data-model.md)"
            )
        return lines

    def _guess(
        self, entity: str, a: Announcement, spec: KindSpec | None
    ) -> tuple[str | None, str | None]:
        """One announced entity's field_map entry (None: its name is already the field), or
        why it is not guessed."""
        target = DEVICE_CLASS_FIELDS.get(a.device_class or "")
        if spec is not None and target == "voltage_v" and target not in spec.fields:
            target = "battery_v"
        if target is None or spec is None or target not in spec.fields:
            why = f"device class {a.device_class}" if a.device_class else "no device class"
            return None, f"{entity} ({why})"
        if a.path is not None:
            key = ".".join(a.path)
        else:
            key = (self._level_field(a) or "") if a.template is None else ""
        if not key:
            return None, f"{entity} (value_template {a.template!r} is not a plain path)"
        unit, contract = a.unit, spec.fields[target].unit
        how = target
        if unit and unit != contract:
            if (unit, contract) not in UNIT_CONVERSIONS:
                return None, f"{entity} (unit {unit!r} is not convertible to {contract!r})"
            how = f"{{to: {target}, unit: {json.dumps(unit, ensure_ascii=False)}}}"
        if key == target and how == target:
            return None, None
        return f"      {_yaml_key(key)}: {how}", None

    def _level_field(self, a: Announcement) -> str | None:
        """For a plain value on its own topic (ESPHome): the topic's {field} level."""
        if a.state_topic is None:
            return None
        for layout in PRESETS.values():
            for text in layout.topics:
                bound = TopicTemplate.parse(text).match(a.state_topic.split("/"))
                if bound is not None and FIELD in bound:
                    return bound[FIELD]
        return None


def _yaml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]*", key) else json.dumps(key)


def entries(spool_dir: Path) -> Iterator[dict[str, object]]:
    for path in (spool_dir / "quarantine.jsonl.1", spool_dir / "quarantine.jsonl"):
        if path.exists():
            with path.open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        yield json.loads(line)


def summarise(site: Site, records: Iterable[dict[str, object]]) -> list[Candidate]:
    router = Router(site)
    discovery = DiscoveryCodec(site) if site.discovery.enabled else None
    found: dict[tuple[str | None, str | None], Candidate] = {}
    for e in records:
        topic, payload = str(e.get("topic", "")), e.get("payload")
        if not isinstance(payload, str):
            continue
        received = int(e.get("received_ms", 0))  # type: ignore[call-overload]
        if discovery is not None and topic.startswith(site.discovery.prefix + "/"):
            _announced(site, discovery, found, topic, payload.encode(), received)
            continue
        try:
            decoded = router.route(topic).decode(topic, payload.encode(), site.site, received)
        except Rejected:
            continue
        for d in decoded:
            c = found.setdefault((d.device_id, d.dev_eui), Candidate(d.device_id, d.dev_eui))
            c.messages += 1
            c.first_ms = min(c.first_ms or received, received)
            c.last_ms = max(c.last_ms, received)
            c.topics.add(topic)
            if not d.status:
                c.fields.update(d.values)
    return sorted(found.values(), key=lambda c: -c.messages)


def _announced(
    site: Site,
    discovery: DiscoveryCodec,
    found: dict[tuple[str | None, str | None], Candidate],
    topic: str,
    payload: bytes,
    received: int,
) -> None:
    try:
        a = parse_announcement(topic, payload, site.discovery.prefix)
    except Rejected:
        return
    assert a.state_topic is not None
    name = discovery.device_of(a.state_topic)
    preset = None
    if name is None:  # no source of the site takes it: which preset would
        for key, layout in PRESETS.items():
            for text in (*layout.topics, *layout.status_topics):
                bound = TopicTemplate.parse(text).match(a.state_topic.split("/"))
                if bound is not None:
                    name, preset = bound[DEVICE], key.value
                    break
            if preset is not None:
                break
    who = name or a.device_name or a.device_key
    c = found.setdefault((who, None), Candidate(who, None))
    c.unrouted = c.unrouted or name is None
    c.messages += 1
    c.first_ms = min(c.first_ms or received, received)
    c.last_ms = max(c.last_ms, received)
    c.topics.add(topic)
    c.announced[a.entity] = a
    c.preset = c.preset or preset
