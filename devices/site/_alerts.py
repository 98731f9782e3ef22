"""Alert rules and the webhooks their transitions go to (docs/operators.md)."""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)


class AlertRule(BaseModel):
    """One alert rule, as written in the site file's `alerts.rules`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    kind: Literal["threshold", "rate", "offline"]
    measurement: str | None = Field(None, description="threshold/rate: the measurement")
    field_name: str | None = Field(None, alias="field", description="threshold/rate: the field")
    warning: float | bool | None = None
    critical: float | bool | None = None
    clear: float | None = Field(None, description="threshold: clears only past this value")
    below: bool = Field(False, description="threshold: fire when under, not over")
    for_s: float = Field(0.0, ge=0, description="threshold: must hold this long before firing")
    limit_key: str | None = Field(
        None, description="threshold: take the critical level from the device's thresholds"
    )
    intervals: float = Field(3.0, gt=0, description="offline: missed expected intervals")
    description: str = ""


DEFAULT_RULES: tuple[AlertRule, ...] = tuple(
    AlertRule.model_validate(r)
    for r in (
        {"name": "bin_fill", "kind": "threshold", "measurement": "waste_bin", "field": "fill_pct",
         "warning": 80, "critical": 95, "clear": 60,
         "description": "The bin needs emptying."},
        {"name": "bin_fire", "kind": "threshold", "measurement": "waste_bin",
         "field": "temperature_c", "critical": 60, "clear": 45,
         "description": "Hot bin: possible fire. Check now."},
        {"name": "bin_tilted", "kind": "threshold", "measurement": "waste_bin", "field": "tilt",
         "warning": True, "description": "Bin tipped over or lid open."},
        {"name": "co2_high", "kind": "threshold", "measurement": "occupancy", "field": "co2_ppm",
         "warning": 1200, "clear": 1000, "for_s": 900,
         "description": "Stale air: ventilate or move people."},
        {"name": "battery_low", "kind": "threshold", "measurement": "waste_bin",
         "field": "battery_pct", "warning": 15, "clear": 20, "below": True,
         "description": "Replace the sensor's battery."},
        {"name": "power_max", "kind": "threshold", "measurement": "energy", "field": "power_w",
         "limit_key": "max_power_w",
         "description": "Power over the meter's configured maximum."},
        {"name": "air_co2_high", "kind": "threshold", "measurement": "indoor_air",
         "field": "co2_ppm", "warning": 1200, "clear": 1000, "for_s": 900,
         "description": "Stale air in a room without people counting: ventilate."},
        {"name": "heat_cooling_low", "kind": "threshold", "measurement": "heat",
         "field": "delta_t_k", "warning": 15, "clear": 18, "below": True, "for_s": 3600,
         "description": "District heat returns too warm: check the substation's control "
                        "and radiator valves (poor cooling costs the network and the bill)."},
        {"name": "water_leak", "kind": "threshold", "measurement": "water", "field": "leak",
         "critical": True, "description": "The water meter reports a leak or burst."},
        {"name": "device_offline", "kind": "offline", "intervals": 3,
         "description": "The device has gone silent."},
    )
)  # fmt: skip


_ENV_PART = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Environment variables no site file may send anywhere: the pipeline's own credentials.
_SECRET_ENV = re.compile(r"^(KERA_INFLUX_|KERA_MQTT_|INFLUXDB_|GRAFANA_)|PASSWORD", re.IGNORECASE)
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


class Webhook(BaseModel):
    """An alert webhook. The URL is code a site file points the ingestor at, so it is bounded:
    http(s) only, `${NAME}` only for the variables listed in `env`, no redirects followed, and
    no loopback, link-local or private address unless `allow_private`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        description="http(s) URL; `${NAME}` parts are read from the environment variables "
        "listed in `env`, so a secret token in the URL stays out of the file"
    )
    env: tuple[EnvName, ...] = Field(
        (),
        description="the environment variables the URL may use as ${NAME}; none of the "
        "pipeline's own credentials (KERA_INFLUX_*, KERA_MQTT_*, INFLUXDB_*, GRAFANA_*, "
        "anything with PASSWORD)",
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="per attempt, connection included")
    allow_private: bool = Field(
        False,
        description="deliver to loopback, link-local and private addresses too (a receiver on "
        "the same host or LAN); off, such targets are refused, so a site file cannot make the "
        "ingestor call the services beside it",
    )

    @model_validator(mode="after")
    def _bounded(self) -> Webhook:
        for name in self.env:
            if _SECRET_ENV.search(name):
                raise ValueError(f"env: {name} is one of the pipeline's own credentials")
        used = set(_ENV_PART.findall(self.url))
        if unlisted := sorted(used - set(self.env)):
            raise ValueError(
                f"the URL uses ${{{unlisted[0]}}}, which is not in the hook's `env` list; name "
                "every variable a hook may send"
            )
        scheme = self.url.split(":", 1)[0].lower()
        if scheme not in ("http", "https") or not self.url.lower().startswith(scheme + "://"):
            raise ValueError(f"{self.shown()}: only http:// and https:// webhooks are allowed")
        return self

    def resolved_url(self) -> str:
        """The URL with its listed variables filled in; raises KeyError naming a missing one."""

        def value(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.env:  # cannot happen after validation; never expand others
                raise KeyError(name)
            return os.environ[name]

        return _ENV_PART.sub(value, self.url)

    def shown(self) -> str:
        """The URL as logs show it: scheme, host and port only, since a path, query or user
        part may carry a token (Slack and Teams put theirs in the path)."""
        return redacted_url(self.url)


def redacted_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<not a URL>"
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/…"


class Alerts(BaseModel):
    """The site file's `alerts` section; without it, DEFAULT_RULES and no webhooks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[AlertRule, ...] = DEFAULT_RULES
    webhooks: tuple[Webhook, ...] = ()
    cooldown_s: float = Field(
        900.0, ge=0, description="a re-firing alert is not sent again within this time"
    )
    retries: int = Field(5, ge=0, le=20, description="webhook delivery attempts after the first")
