r"""InfluxDB line protocol, the one format the writer sends (v1 /write and v2 /api/v2/write alike).

Escaping rules (InfluxDB line protocol reference):
- measurement: comma and space are escaped with a backslash;
- tag keys, tag values, field keys: comma, equals sign and space;
- string field values: double quote and backslash; they sit in double quotes, so a newline inside
  one is kept as it is.
A newline cannot be escaped in a measurement, key or tag value, and InfluxDB 1.x keeps a
backslash there literally (so `a\` before a separator cannot be read back): both are refused
there. The registry already rejects control characters and backslashes in anything that becomes
a tag, so this only fires on a programming error.
Times are epoch milliseconds: the writer sends precision=ms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from devices.contract import DEVICE_TAG, SITE_TAG, SPACE_TAG
from devices.registry import AnyDevice
from ingest.reading import FieldValue, Reading

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})


def _checked(text: str, what: str) -> str:
    if "\n" in text or "\r" in text or "\\" in text:
        raise ValueError(
            f"{what} {text!r} contains a line break or backslash, which line protocol cannot "
            "carry there"
        )
    return text


def escape_measurement(name: str) -> str:
    return _checked(name, "measurement").translate(_MEASUREMENT)


def escape_key(text: str) -> str:
    """Tag key, tag value or field key."""
    return _checked(text, "tag or field key").translate(_KEY)


def escape_string(value: str) -> str:
    return '"' + value.translate(_STRING) + '"'


def format_value(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return escape_string(value)


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """`measurement,tag=value,...` with tags sorted by key, as InfluxDB stores them."""
    parts = [escape_measurement(measurement)]
    for key in sorted(tags):
        parts.append(f"{escape_key(key)}={escape_key(tags[key])}")
    return ",".join(parts)


# Field names come from the contract (a payload's unknown fields are rejected before this), so
# the cache stays small and each name is escaped once rather than once per message.
_FIELD_KEYS: dict[str, str] = {}


def _field_key(name: str) -> str:
    escaped = _FIELD_KEYS.get(name)
    if escaped is None:
        escaped = _FIELD_KEYS[name] = escape_key(name)
    return escaped


def format_line(key: str, fields: Mapping[str, FieldValue], time_ms: int) -> str:
    # One loop with the common value types inline: three calls per field (a generator,
    # format_value, _field_key) were a tenth of a reading's cost (docs/performance.md).
    keys = _FIELD_KEYS
    parts = []
    for k, v in fields.items():
        fk = keys.get(k)
        if fk is None:
            fk = _field_key(k)
        t = type(v)
        if t is float:
            parts.append(f"{fk}={v!r}")
        elif t is int:
            parts.append(f"{fk}={v}i")
        else:
            parts.append(f"{fk}={format_value(v)}")
    return f"{key} {','.join(parts)} {time_ms}"


def device_tags(site: str, device: AnyDevice) -> dict[str, str]:
    tags = {SITE_TAG: site, SPACE_TAG: device.space, DEVICE_TAG: device.id}
    tags.update(device.extra_tags())
    return tags


class LineEncoder:
    """Readings to lines, with each device's escaped series key computed once, not per message."""

    __slots__ = ("_keys", "_site")

    def __init__(self, site: str) -> None:
        self._site = site
        self._keys: dict[tuple[str, str], str] = {}

    def encode(self, reading: Reading) -> str:
        device = reading.device
        cache_key = (reading.measurement, device.id)
        key = self._keys.get(cache_key)
        if key is None:
            key = series_key(reading.measurement, device_tags(self._site, device))
            self._keys[cache_key] = key
        return format_line(key, reading.fields, reading.time_ms)


def split_lines(body: str) -> list[str]:
    """Split a batch body back into its lines.

    Not `str.split("\\n")`: a string field value may hold a raw newline (line protocol allows it
    inside quotes), and a quote is an ordinary character in tag values and keys. So this follows
    each line's sections: the series key up to the first unescaped space, then the fields, where
    a quote right after a field's `=` opens a string, then the timestamp."""
    lines: list[str] = []
    start = i = 0
    n = len(body)
    section = 0  # 0 series key, 1 fields, 2 timestamp
    quoted = False
    value_at = -1  # index where the current field's value starts
    while i < n:
        c = body[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == "\\" and section < 2:
            i += 1
        elif section == 1 and c == '"' and i == value_at:
            quoted = True
        elif section == 1 and c == "=":
            value_at = i + 1
        elif c == " " and section < 2:
            section += 1
        elif c == "\n":
            lines.append(body[start:i])
            start = i + 1
            section = 0
        i += 1
    if start < n:
        lines.append(body[start:])
    return lines


_FIELD = re.compile(r'((?:[^=,\\]|\\.)+)=("(?:[^"\\]|\\.)*"|[^,"]*)(?:,|$)', re.DOTALL)


def parse_line(line: str) -> tuple[str, dict[str, str], int]:
    """A line of ours back into its series key (as written), its fields as written (a string
    keeps its quotes) and its time: for comparing points without a database (the rollups'
    tests and bench/rollups_oracle.py). Not a general parser: it reads what format_line wrote,
    where a string may hold spaces, commas and escaped quotes."""
    head, _, time_text = line.rpartition(" ")
    i = 0
    while i < len(head) and head[i] != " ":
        i += 2 if head[i] == "\\" else 1
    key, body = head[:i], head[i + 1 :]
    fields: dict[str, str] = {}
    at = 0
    while at < len(body):
        match = _FIELD.match(body, at)
        if match is None:
            raise ValueError(f"cannot read the fields of {line!r} at {body[at:]!r}")
        fields[match.group(1)] = match.group(2)
        at = match.end()
    return key, fields, int(time_text)


def parse_value(text: str) -> FieldValue:
    """A field value as parse_line gives it, typed as InfluxDB stores it."""
    if text.startswith('"'):
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)
    if text in ("true", "false"):
        return text == "true"
    return int(text[:-1]) if text.endswith("i") else float(text)
