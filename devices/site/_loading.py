"""Reading a site file: YAML to a validated `Site`, with errors that name the file, the device
and the field."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from devices.site._devices import (
    _CUSTOM,
    _DEVICE_CLASSES,
    IN_SITE,
)
from devices.site._site import (
    BASE_DIR,
    Site,
)

DEFAULT_SITE_RESOURCE = "kera.yaml"


class SiteConfigError(ValueError):
    """A site file that cannot be used; the message names the file, the device and the field."""


def _describe(source: str, raw: Any, err: ValidationError) -> str:
    lines = [f"{source}: invalid site file ({err.error_count()} problem(s))"]
    for e in err.errors():
        loc = list(e["loc"])
        where = "site"
        if len(loc) >= 2 and loc[0] == "devices" and isinstance(loc[1], int):
            index = loc[1]
            device_id = "?"
            try:
                candidate = raw["devices"][index]
                if isinstance(candidate, dict):
                    device_id = str(candidate.get("id", "?"))
            except (KeyError, IndexError, TypeError):
                pass
            where = f"device {device_id!r} (devices[{index}])"
            loc = loc[2:]
            # The discriminated union puts the device class's tag first; it is not a field.
            if loc and (loc[0] in _DEVICE_CLASSES or loc[0] == _CUSTOM):
                loc = loc[1:]
        if e["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            loc = ["kind"]
        field = ".".join(str(p) for p in loc)
        if not field and e["type"] == "value_error":
            # A whole-site check: its message already names the device and field.
            lines.append(f"  {e['msg'].removeprefix('Value error, ')}")
            continue
        lines.append(f"  {where}: field {field or '-'!r}: {e['msg']}")
    return "\n".join(lines)


def parse_site(text: str, source: str = "<site>", base_dir: Path | None = None) -> Site:
    """A site from YAML text, validated and compiled once; `base_dir`: where relative codec
    paths start (the site file's folder)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SiteConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SiteConfigError(f"{source}: expected a mapping with 'site' and 'devices'")
    try:
        return Site.model_validate(raw, context={IN_SITE: True, BASE_DIR: base_dir})
    except ValidationError as exc:
        raise SiteConfigError(_describe(source, raw, exc)) from None


def default_site_text() -> str:
    return resources.files("devices.sites").joinpath(DEFAULT_SITE_RESOURCE).read_text("utf-8")


def load_site(path: str | os.PathLike[str] | None = None) -> Site:
    """Load and validate a site file; with no path, the bundled Kera meeting-place site."""
    if path is None:
        return parse_site(default_site_text(), f"<bundled {DEFAULT_SITE_RESOURCE}>")
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise SiteConfigError(f"{p}: cannot read site file: {exc.strerror}") from exc
    site = parse_site(text, str(p), p.parent)
    csv = site.impact.emission_factors_csv
    if csv is not None and not Path(csv).is_absolute():
        # The series travels with its site file, wherever the service is started from.
        impact = site.impact.model_copy(update={"emission_factors_csv": str(p.parent / csv)})
        site = site.model_copy(update={"impact": impact})
    return site
