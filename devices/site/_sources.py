"""Sources: which codec decodes which topics, and the json sources' templates, presets and
time rules (docs/data-model.md, "Sources")."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from devices.field_maps import (
    UnknownFields,
)
from devices.presets import PRESETS, Preset, PresetLayout
from devices.topics import DEVICE, TemplateError, TopicTemplate


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
