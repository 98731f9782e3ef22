"""Adopting unknown devices: what quarantine mode recorded, summarised per device, with a site-file
entry to start from. Used by `kera-ingest quarantine`.

A technician checks the suggestion (the kind is guessed from the field names the device sends),
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
from ingest.codecs import Router
from ingest.reading import Rejected


@dataclass(slots=True)
class Candidate:
    device_id: str | None
    dev_eui: str | None
    messages: int = 0
    first_ms: int = 0
    last_ms: int = 0
    topics: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)

    @property
    def kind(self) -> str | None:
        """The contract kind sharing most field names with what the device sent."""
        best, score = None, 0
        for kind, spec in KINDS.items():
            n = len(self.fields & set(spec.fields))
            if n > score:
                best, score = str(kind), n
        return best

    def site_entry(self) -> str:
        name = self.device_id or f"eui-{self.dev_eui}"
        # A firmware's own name (shellyplug-s-C572BE, a Zigbee2MQTT friendly name) is rarely a
        # valid id: the entry gets an id made from it and keeps the name as its mqtt_name.
        slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:64] or "device"
        lines = [
            f"  - id: {slug}",
            f"    kind: {self.kind or 'TODO'}  # sends {', '.join(sorted(self.fields)) or '?'}",
            "    space: TODO",
        ]
        if self.device_id is not None and slug != self.device_id:
            lines.append(f"    mqtt_name: {json.dumps(self.device_id, ensure_ascii=False)}")
        if self.dev_eui:
            lines.append(f"    dev_eui: {self.dev_eui}")
        return "\n".join(lines)


def entries(spool_dir: Path) -> Iterator[dict[str, object]]:
    for path in (spool_dir / "quarantine.jsonl.1", spool_dir / "quarantine.jsonl"):
        if path.exists():
            with path.open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        yield json.loads(line)


def summarise(site: Site, records: Iterable[dict[str, object]]) -> list[Candidate]:
    router = Router(site)
    found: dict[tuple[str | None, str | None], Candidate] = {}
    for e in records:
        topic, payload = str(e.get("topic", "")), e.get("payload")
        if not isinstance(payload, str):
            continue
        received = int(e.get("received_ms", 0))  # type: ignore[call-overload]
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
