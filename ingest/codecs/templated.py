"""The `json` codec: what Wi-Fi and Zigbee firmwares publish, read through topic templates.

A message's topic is matched against its source's templates (devices/topics.py), status
templates first. `{device}` finds the device: a device whose `mqtt_name` is that text, else a
device with that id; a name that is neither stays as it came, and the validator rejects it as
`unknown_device` (quarantine records it), so no topic creates a series. `{field}` names the
field a plain value is; other named levels go with the reading for field-map `when:` entries.

Payloads: a JSON object (a reading's fields, nested as the firmware nests them), or, on a
template with `{field}`, one plain value: a JSON number, true/false, on/off, or a number with
its unit ("21.5 °C", which the validator converts like a SenML unit). With `text_numbers`,
strings in an object that are numbers are read as numbers too.

Time: the source's time rule (site file or preset) says where the device's own time is and how
it is written; a message without it is stamped with its receive time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from devices import Site, Source
from devices.expressions import ExpressionError, parse_quantity
from devices.mapping import MISSING, walk
from devices.site import TimeRule
from devices.topics import DEVICE, FIELD, TopicTemplate
from ingest.codecs._cache import remember
from ingest.codecs._json import load_json
from ingest.codecs._time import check_window, parse_time_ms
from ingest.reading import Decoded, Reason, Rejected

# A device name longer than this is no firmware's: it is cut in dead letters and counters.
MAX_NAME = 128

_ON = frozenset({"on", "true", "online", "1", "yes"})
_OFF = frozenset({"off", "false", "offline", "0", "no"})
# (template, named levels, device id, a status topic)
_Match = tuple[TopicTemplate, dict[str, str], str, bool]
_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)
# (zone, wall-clock minute) -> the zone's first and second UTC offset then, in ms.
_OFFSETS: dict[tuple[str, int, int, int, int, int], tuple[int, int]] = {}


class TemplateCodec:
    """One json source's decoder, built once per site."""

    __slots__ = ("_data", "_ids", "_names", "_seen", "_status", "_text_numbers", "_time", "_tz")

    def __init__(self, source: Source, site: Site) -> None:
        self._data = source.templates(site.site)
        self._status = source.status_templates(site.site)
        self._names: Mapping[str, str] = {
            d.mqtt_name: d.id for d in site.devices if d.mqtt_name is not None
        }
        self._ids = frozenset(d.id for d in site.devices)
        self._time: TimeRule | None = source.time_rule
        self._tz = ZoneInfo(site.timezone)
        self._text_numbers = source.reads_text_numbers
        # What each topic matched: the template, its named levels, the device, status or not.
        self._seen: dict[str, _Match | None] = {}

    def decode(self, topic: str, payload: bytes, site: str, received_ms: int = 0) -> list[Decoded]:
        try:
            found = self._seen[topic]
        except KeyError:
            found = remember(self._seen, topic, self._match(topic))
        if found is None:
            raise Rejected(
                Reason.BAD_TOPIC,
                f"topic {topic[:120]!r} matches none of the source's templates "
                f"({', '.join(t.text for t in (*self._status, *self._data))})",
            )
        template, bound, device_id, status = found
        if status:
            return [self._status_of(device_id, payload)]
        return [self._reading(template, bound, device_id, payload, received_ms)]

    def _match(self, topic: str) -> _Match | None:
        levels = topic.split("/")
        for status, templates in ((True, self._status), (False, self._data)):
            for template in templates:
                bound = template.match(levels)
                if bound is not None:
                    return template, bound, self.device_id(bound[DEVICE]), status
        return None

    def name_in(self, topic: str) -> str | None:
        """The {device} level of a topic this source takes, or None (discovery)."""
        found = self._match(topic)
        return None if found is None else found[1][DEVICE]

    def known_device(self, name: str) -> str | None:
        """The registered device a firmware's name stands for, or None."""
        device_id = self._names.get(name, name)
        return device_id if device_id in self._ids else None

    def device_id(self, name: str) -> str:
        return self._names.get(name) or name[:MAX_NAME]

    def _status_of(self, device_id: str, payload: bytes) -> Decoded:
        text = payload.strip()
        state: object = text.decode("utf-8", "replace")
        if text.startswith(b"{"):
            obj = load_json(payload, device_id)
            state = obj.get("state", MISSING) if isinstance(obj, dict) else MISSING
        if isinstance(state, str):
            word = state.strip().lower()
            online = True if word in _ON else False if word in _OFF else None
        else:
            online = state if isinstance(state, bool) else None
        if online is None:
            raise Rejected(
                Reason.BAD_STATUS,
                f"status payload {payload[:40]!r} says neither online nor offline "
                '(Online/Offline, true/false, {"state": "online"})',
                device_id,
            )
        return Decoded(device_id, None, {"online": online}, status=True)

    def _reading(
        self,
        template: TopicTemplate,
        bound: dict[str, str],
        device_id: str,
        payload: bytes,
        received_ms: int,
    ) -> Decoded:
        field = bound.get(FIELD)
        units: dict[str, str] | None = None
        if field is None:
            obj = load_json(payload, device_id)
            if type(obj) is not dict:
                raise Rejected(
                    Reason.NOT_OBJECT,
                    f"payload is JSON {type(obj).__name__}, not an object; a plain value needs "
                    f"a {{field}} level in the topic template ({template.text})",
                    device_id,
                )
            values: dict[str, object] = obj
            if self._text_numbers:
                units = _numbers_from_text(values)
        else:
            value, unit = _plain(payload, device_id)
            values = {field: value}
            if unit is not None:
                units = {field: unit}
        time_ms = None
        if self._time is not None:
            time_ms = self._time_of(values, received_ms, device_id)
        extra = {k: v for k, v in bound.items() if k not in (DEVICE, FIELD)}
        return Decoded(device_id, time_ms, values, units=units, levels=extra or None)

    def _time_of(self, values: dict[str, object], received_ms: int, device_id: str) -> int | None:
        rule = self._time
        assert rule is not None
        parts = tuple(rule.path.split("."))
        node = walk(values, parts)
        if node is MISSING:
            return None
        if len(parts) == 1:
            del values[parts[0]]  # a time, not a field: not counted as an unknown one
        try:
            return read_time(node, rule.format, self._tz, received_ms)
        except Rejected as exc:
            exc.device_id = device_id
            raise


def read_time(raw: object, fmt: str, tz: ZoneInfo, received_ms: int) -> int:
    """A payload's time in epoch ms, read as the time rule's format says."""
    if fmt == "rfc3339":
        if type(raw) is not str:
            raise Rejected(Reason.BAD_TIMESTAMP, f"time {raw!r:.40} is not RFC 3339 text")
        return parse_time_ms(raw)
    if fmt in ("unix_s", "unix_ms"):
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise Rejected(Reason.BAD_TIMESTAMP, f"time {raw!r:.40} is not a number ({fmt})")
        if not math.isfinite(raw):
            raise Rejected(Reason.BAD_TIMESTAMP, f"time {raw!r} is not a finite number")
        return check_window(round(raw * 1000 if fmt == "unix_s" else raw), raw)
    assert fmt == "local"
    if type(raw) is not str:
        raise Rejected(Reason.BAD_TIMESTAMP, f"time {raw!r:.40} is not a local date-time text")
    try:
        naive = datetime.fromisoformat(raw)
    except ValueError:
        raise Rejected(Reason.BAD_TIMESTAMP, f"time {raw!r:.40} is not an ISO date-time") from None
    if naive.tzinfo is not None:  # an offset after all: it says which instant
        return check_window(round(naive.timestamp() * 1000), raw)
    return check_window(local_ms(naive, tz, received_ms), raw)


def local_ms(naive: datetime, tz: ZoneInfo, received_ms: int) -> int:
    """A wall-clock time without offset in `tz`, as epoch ms. In the autumn hour that happens
    twice, and in the spring hour that does not happen (a device clock moved late), both
    readings are possible instants: the one nearer the receive time wins, because a device
    sends its time when it measures."""
    wall = (naive - _EPOCH) // _MS  # the wall-clock time read as if it were UTC
    # The zone's offsets at this minute, computed once: zoneinfo's lookups cost more than the
    # rest of a message (bench/mapping.py).
    key = (tz.key, naive.year, naive.month, naive.day, naive.hour, naive.minute)
    offsets = _OFFSETS.get(key)
    if offsets is None:
        early = tz.utcoffset(naive)
        late = tz.utcoffset(naive.replace(fold=1))
        assert early is not None
        assert late is not None
        offsets = (early // _MS, late // _MS)
        if len(_OFFSETS) >= 4096:
            _OFFSETS.clear()
        _OFFSETS[key] = offsets
    first = wall - offsets[0]
    if offsets[0] == offsets[1]:  # every hour but two a year: one instant
        return first
    second = wall - offsets[1]
    return min((first, second), key=lambda ms: (abs(ms - received_ms), ms))


def _plain(payload: bytes, device_id: str) -> tuple[object, str | None]:
    """One value as a firmware publishes it alone on a topic."""
    text = payload.strip()
    if not text:
        raise Rejected(Reason.MISSING_FIELD, "empty payload on a plain-value topic", device_id)
    if text[:1] in b'{["' or text in (b"true", b"false", b"null"):
        value = load_json(payload, device_id)
        if not isinstance(value, str):
            # A list or an object (a Shelly H&T's act_reasons) is one value too: a field the
            # map drops, or one the validator refuses by its type if the map keeps it.
            return value, None
        text = value.encode()
    try:
        word = text.decode()
    except UnicodeDecodeError:
        raise Rejected(Reason.NOT_UTF8, "payload is not UTF-8", device_id) from None
    lowered = word.strip().lower()
    if lowered in ("on", "true"):
        return True, None
    if lowered in ("off", "false"):
        return False, None
    try:
        number, unit = parse_quantity(word)
    except ExpressionError:
        return word, None  # text: the validator says whether the field takes text
    if not math.isfinite(number):
        raise Rejected(Reason.NOT_FINITE, f"{word[:40]!r} is not a finite number", device_id)
    if unit is None and number.is_integer() and "." not in word and "e" not in lowered:
        return int(number), None
    return number, unit


def _numbers_from_text(values: dict[str, object]) -> dict[str, str] | None:
    """Strings that are numbers become numbers (in place, nested objects too); the units they
    named, by top-level key."""
    units: dict[str, str] | None = None
    stack = [values]
    top = True
    while stack:
        node = stack.pop()
        for key, value in node.items():
            if type(value) is dict:
                stack.append(value)
            elif type(value) is str:
                try:
                    number, unit = parse_quantity(value)
                except ExpressionError:
                    continue
                node[key] = number
                if unit is not None and top:
                    units = units or {}
                    units[key] = unit
        top = False
    return units
