"""Device profiles: a vendor model's mapping, written once from the vendor's decoder docs.

`profile: milesight-am307` on a device in the site file replaces a hand-written field_map. A
profile is a YAML file in this folder, named after the profile:

    vendor, model, kind     what it is; the device's kind must match
    documentation           the vendor's public decoder documentation it was written from
    field_map               the decoder's output fields -> contract fields (devices/mapping.py)
    unknown_fields          optional: ignore or reject fields the map does not name
    codec                   optional: a JavaScript payload codec (LoRaWAN Payload Codec API) in
                            codecs/, for uplinks the network server did not decode
    example                 a decoded payload from that documentation; tests and
                            `kera-ingest check-site --example` run the mapping on it
    preset                  for a Wi-Fi or Zigbee firmware's device: the source preset its
                            messages come through (devices/presets.py)
    messages                messages as the firmware publishes them (topic, payload, where
                            they were published); tests run each through the preset

A device's own field_map entries come before the profile's: where both write one field, the
first that applies to a message wins (devices/mapping.py).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from devices.field_maps import FieldMap, UnknownFields, field_map_shorthand
from devices.presets import Preset

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class ProfileError(ValueError):
    """A profile that does not exist or does not load."""


class ProfileMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    payload: str = Field(description="as published: JSON text or a plain value")
    source: str = Field(description="where it was published (URL), and what was changed")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    vendor: str
    model: str
    kind: str
    description: str = ""
    documentation: str = Field(description="the vendor's decoder documentation (URL)")
    field_map: dict[str, FieldMap]
    unknown_fields: UnknownFields | None = None
    codec: str | None = Field(None, description="a file in devices/profiles/codecs/")
    example: dict[str, Any] | None = Field(
        None, description="a decoded payload from the documentation"
    )
    preset: Preset | None = Field(None, description="the source preset its messages need")
    messages: tuple[ProfileMessage, ...] = ()

    _shorthand = field_validator("field_map", mode="before")(field_map_shorthand)

    @property
    def codec_path(self) -> Path | None:
        if self.codec is None:
            return None
        return Path(str(resources.files("devices.profiles").joinpath("codecs", self.codec)))


def profile_names() -> list[str]:
    folder = resources.files("devices.profiles")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


@functools.cache
def load_profile(name: str) -> Profile:
    if not _NAME.match(name):
        raise ProfileError(f"profile name {name!r} must be lower-case letters, digits and -")
    resource = resources.files("devices.profiles").joinpath(f"{name}.yaml")
    if not resource.is_file():
        raise ProfileError(
            f"no bundled profile {name!r}; there are: {', '.join(profile_names())} "
            "(`kera-ingest profiles` lists them)"
        )
    try:
        raw = yaml.safe_load(resource.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile {name!r}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"profile {name!r}: not a mapping")
    try:
        return Profile.model_validate({"name": name, **raw})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ProfileError(f"profile {name!r}: {problems}") from None
