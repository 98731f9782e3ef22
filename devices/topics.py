"""Topic templates: MQTT topic patterns whose levels can be named, as firmwares lay them out.

    tele/{device}/SENSOR                      Tasmota
    shellies/{device}/relay/{channel}/{field} Shelly Gen1: one plain value per topic
    {device}/sensor/{field}/state             ESPHome

A named level matches exactly one topic level, as `+` does, and binds its text: `{device}` to
the device (through the site's `mqtt_name` aliases), `{field}` to the field a plain value is,
any other name to a value field-map entries can be conditioned on (`when:`). `+` and a final
`#` match without binding. The subscription filter is the template with every named level
made `+`. `{site}` is not a level name: it is replaced by the site id before anything else,
as in any source's topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAMED = re.compile(r"^\{([a-z][a-z0-9_]{0,31})\}$")
# A level that holds a brace but is not one whole name is a typo, never a literal level.
_BRACES = re.compile(r"[{}]")

DEVICE = "device"
FIELD = "field"


class TemplateError(ValueError):
    """A topic template that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    text: str
    # Per level: the literal text it must equal, or None where any text matches.
    literal: tuple[str | None, ...]
    # Per level: the name it binds, or None.
    names: tuple[str | None, ...]
    # Ends in `#`: any number of further levels (at least zero) match.
    rest: bool
    filter: str

    @classmethod
    def parse(cls, text: str, site: str = "") -> TopicTemplate:
        topic = text.replace("{site}", site)
        if not topic or "\x00" in topic:
            raise TemplateError("a topic template must be non-empty text without NUL")
        levels = topic.split("/")
        literal: list[str | None] = []
        names: list[str | None] = []
        rest = False
        for i, level in enumerate(levels):
            named = _NAMED.match(level)
            if named:
                name = named.group(1)
                if name in names:
                    raise TemplateError(f"{text!r}: level {{{name}}} appears twice")
                literal.append(None)
                names.append(name)
                continue
            if _BRACES.search(level):
                raise TemplateError(
                    f"{text!r}: {level!r} is not a level name; a named level is a whole level "
                    "in braces, lower-case letters, digits and _ (e.g. {device})"
                )
            if level == "#":
                if i != len(levels) - 1:
                    raise TemplateError(f"{text!r}: # may only be the last level")
                rest = True
                break
            if "+" in level and level != "+":
                raise TemplateError(f"{text!r}: + must fill a whole topic level")
            if "#" in level:
                raise TemplateError(f"{text!r}: # must fill a whole topic level")
            literal.append(None if level == "+" else level)
            names.append(None)
        filter_ = "/".join(
            "+" if name is not None else level
            for level, name in zip(levels, [*names, None], strict=False)
        )
        return cls(text, tuple(literal), tuple(names), rest, filter_)

    @property
    def named(self) -> frozenset[str]:
        return frozenset(n for n in self.names if n is not None)

    def match(self, levels: list[str]) -> dict[str, str] | None:
        """The named levels' texts when the topic (split on /) matches, else None."""
        n = len(self.literal)
        if len(levels) < n or (len(levels) > n and not self.rest):
            return None
        bound: dict[str, str] = {}
        for want, name, got in zip(self.literal, self.names, levels, strict=False):
            if want is not None:
                if got != want:
                    return None
            elif name is not None:
                bound[name] = got
        return bound
