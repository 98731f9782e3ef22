"""Ingestor settings: defaults < settings file (TOML) < environment (KERA_*) < command-line flags.

The settings file is named by `--settings` or `KERA_SETTINGS_FILE`; keys are the field names
below (`mqtt_url = "mqtt://..."`). Secrets (passwords in URLs, tokens) belong in the environment,
not in the file.
"""

from __future__ import annotations

import os
import re
import socket
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from devices.environment import env
from ingest.evaluation.shard import Shard

if TYPE_CHECKING:
    from ingest.storage.transports import InfluxTarget

# The settings file `load_settings` was given, read by the TOML source while it builds them.
_SETTINGS_FILE: ContextVar[Path | None] = ContextVar("settings_file", default=None)


class IngestSettings(BaseSettings):
    # An empty KERA_* variable is not set (devices/environment.py): `KERA_SPOOL_DIR=` must not
    # put the spool into the working directory.
    model_config = SettingsConfigDict(
        env_prefix="KERA_", extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    mqtt_url: str = Field(
        "mqtt://127.0.0.1:1883",
        description="Broker, mqtt://[user:pass@]host[:port] or mqtts:// for TLS (KERA_MQTT_URL)",
    )
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        "5",
        description="MQTT version the ingestor speaks (KERA_MQTT_PROTOCOL): 5 keeps the session "
        "for mqtt_session_expiry_s and announces the largest packet it takes; 3.1.1 for brokers "
        "without MQTT 5, where the broker's configuration says how long a session lasts",
    )
    mqtt_ca_file: Path | None = Field(
        None,
        description="PEM file of the CA that signed the broker's certificate, for mqtts:// "
        "(KERA_MQTT_CA_FILE); default: the system's CAs",
    )
    mqtt_client_id: str = Field(
        default_factory=lambda: f"kera-ingest-{socket.gethostname()}",
        description="Fixed client id: the broker keeps this id's session while the ingestor is "
        "down (KERA_MQTT_CLIENT_ID)",
    )
    dev_mode: bool = Field(
        False,
        description="Allow an anonymous broker connection (KERA_DEV_MODE); for local "
        "development and tests only",
    )
    mqtt_share_group: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Subscribe as `$share/<group>/...` (KERA_MQTT_SHARE_GROUP): replicas with "
        "the same group split the readings between them; each needs its own client id",
    )
    mqtt_session_expiry_s: int = Field(
        3600, ge=0, description="How long the broker keeps the session and its queued readings"
    )
    mqtt_receive_maximum: int = Field(
        65535,
        ge=1,
        le=65535,
        description="Unacknowledged QoS 1 readings the broker may have in flight to us; bounds "
        "memory while InfluxDB is slow or away",
    )
    influx_url: str = Field("http://127.0.0.1:8086", description="InfluxDB base URL")
    influx_db: str = Field("kera", description="Database (v1) or bucket (v2)")
    influx_api: Literal["v1", "v2"] = Field("v1", description="Write API: v1 /write or v2")
    influx_token: SecretStr | None = Field(None, description="Token (2.x/3.x); from environment")
    influx_org: str | None = Field(None, description="Organisation (v2 API)")
    influx_timeout_s: float = Field(10.0, gt=0)
    site_config: Path | None = Field(None, description="Site file; default: the bundled site")
    batch_size: int = Field(5000, ge=1, description="Lines per write")
    flush_interval_s: float = Field(
        0.2, gt=0, description="Longest a reading waits in a partial batch"
    )
    max_payload_bytes: int = Field(
        65536,
        ge=64,
        description="Larger payloads are rejected unread (payload_too_large). The MQTT CONNECT "
        "announces a Maximum Packet Size of twice this plus 64 KiB (max_packet_bytes), so the "
        "broker never sends a packet far over it: such a message is dropped by the broker",
    )
    max_future_s: float = Field(
        300.0,
        ge=0,
        description="A reading's time may be this far ahead of its receipt (clock skew); "
        "later is rejected as ts_in_future",
    )
    max_age_s: float = Field(
        30 * 86400.0,
        gt=0,
        description="A reading's time may be this old at receipt (a gateway's backlog); older "
        "is rejected as ts_too_old",
    )
    evaluate: bool = Field(
        True,
        validation_alias=AliasChoices("KERA_EVALUATE", "KERA_ALERTS"),
        description="Evaluate in this ingestor (KERA_EVALUATE; its former name KERA_ALERTS is "
        "still read): the "
        "site's alert rules and the impact rollups, for the whole site or for the share "
        "KERA_EVALUATION_SHARD names. Each share of a site has exactly one evaluator; other "
        "replicas only store: see docs/operators.md",
    )
    evaluation_shard: str | None = Field(
        None,
        validation_alias=AliasChoices("KERA_EVALUATION_SHARD", "KERA_ALERTS_SHARD"),
        description="This evaluator's share of the site (KERA_EVALUATION_SHARD; its former name "
        "KERA_ALERTS_SHARD is still read), as k/n: the spaces whose id hashes to k of n, with "
        "their devices' alerts and rollups; one evaluator per k (docs/deployment.md). Empty: "
        "the whole site",
    )
    rollups_window_h: float = Field(
        1.0,
        gt=0,
        le=48,
        description="Hours of raw readings the rollups keep per device (KERA_ROLLUPS_WINDOW_H; "
        "at least 20 readings of a slow device). A reading older than that is repaired from "
        "InfluxDB before the next flush (docs/impact.md): raise it for devices that always "
        "arrive that late, at 24 bytes a reading",
    )
    rollups_rp: str | None = Field(
        None,
        description="Where the impact rollups are written (KERA_ROLLUPS_RP): a retention "
        "policy of KERA_INFLUX_DB with the v1 API, a bucket with the v2 API. Give it a longer "
        "life than the raw readings' (docs/impact.md, Retention); empty: beside the readings",
    )
    pipeline_interval_s: float = Field(
        10.0, gt=0, description="How often the ingestor writes its own `pipeline` point"
    )
    codec_deadline_s: float = Field(
        1.0,
        gt=0,
        description="Longest a device's JavaScript codec may take on one uplink, in its worker "
        "process, before the worker is killed and the uplink rejected codec_failed",
    )
    shutdown_timeout_s: float = Field(
        15.0,
        gt=0,
        description="On SIGTERM/SIGINT: how long to store and acknowledge what was received "
        "before exiting anyway; the broker redelivers whatever is still unacknowledged",
    )
    spool_dir: Path | None = Field(
        None,
        description="Disk spool for batches InfluxDB cannot take (and the dead-letter file); "
        "one per ingestor. Default: spool/<client id> in the state directory (state_dir())",
    )
    spool_max_bytes: int = Field(
        1 << 30,
        ge=1 << 16,
        description="Bound on spooled data. When full, nothing more is acknowledged and the "
        "broker holds the backlog",
    )
    dead_letter_max_bytes: int = Field(
        100 << 20, ge=1 << 16, description="Size at which the dead-letter file is rotated"
    )
    health_host: str = Field(
        "127.0.0.1", description="Address of the /healthz and /metrics endpoint"
    )
    health_port: int = Field(
        9108, ge=0, le=65535, description="Port of /healthz and /metrics; 0 turns it off"
    )
    log_level: str = "INFO"
    stats_interval_s: float = Field(30.0, gt=0, description="How often a stats line is logged")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        settings_file = _SETTINGS_FILE.get()
        if settings_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=settings_file))
        return tuple(sources)

    def influx_target(self) -> InfluxTarget:
        """Where and how to write: the ingestor's, `kera-ingest rollups`' and the pilots'."""
        from ingest.storage.transports import InfluxTarget

        token = self.influx_token.get_secret_value() if self.influx_token else None
        return InfluxTarget(
            url=self.influx_url,
            database=self.influx_db,
            api=self.influx_api,
            token=token,
            org=self.influx_org,
            timeout_s=self.influx_timeout_s,
        )

    def as_env(self) -> dict[str, str]:
        """These settings as KERA_* environment variables, for a child `kera-ingest run`."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            plain = value.get_secret_value() if isinstance(value, SecretStr) else value
            env[f"KERA_{name.upper()}"] = str(plain)
        return env

    @model_validator(mode="before")
    @classmethod
    def _former_names(cls, raw: Any) -> Any:
        # A settings file written before the evaluation settings were renamed: its keys are
        # read under the new names (the KERA_ variables have aliases above; aliases without
        # the prefix would also read bare ALERTS from the environment).
        if isinstance(raw, dict):
            for old, new in (("alerts", "evaluate"), ("alerts_shard", "evaluation_shard")):
                if old in raw and new not in raw:
                    raw = {**raw, new: raw[old]}
                    del raw[old]
        return raw

    @field_validator("evaluation_shard")
    @classmethod
    def _shard(cls, value: str | None) -> str | None:
        return None if not value else str(Shard.parse(value))

    def shard(self) -> Shard | None:
        return None if self.evaluation_shard is None else Shard.parse(self.evaluation_shard)

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> IngestSettings:
        # Both would reach aiohttp as two Authorization headers, an error at the first write.
        if self.influx_token is not None and "@" in self.influx_url.split("://", 1)[-1]:
            raise ValueError(
                "KERA_INFLUX_URL carries a user and password and KERA_INFLUX_TOKEN is set too: "
                "use the token (2.x, 3.x) or the URL's user (1.x), not both"
            )
        return self

    def protocol_version(self) -> int:
        """The protocol level byte of CONNECT for `mqtt_protocol`."""
        return 5 if self.mqtt_protocol == "5" else 4

    def max_packet_bytes(self) -> int:
        """The Maximum Packet Size the ingestor announces: room for a payload twice over the
        limit, so a moderately oversized one still arrives and is dead-lettered with its
        reason, plus 64 KiB for the longest topic and the properties."""
        return 2 * self.max_payload_bytes + 65536

    def spool_path(self) -> Path:
        if self.spool_dir is not None:
            return self.spool_dir
        return state_dir() / "spool" / re.sub(r"[^A-Za-z0-9._-]", "_", self.mqtt_client_id)


def state_dir() -> Path:
    """Where Kera keeps what it writes at run time (spools, dead letters, alert state, the
    demo's and the local stack's servers), never the working directory, which may be a checkout:
    $KERA_STATE_DIR, else $XDG_STATE_HOME/kera, else /var/lib/kera for a system service (root
    without a home), else ~/.local/state/kera."""
    explicit = env("KERA_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = env("XDG_STATE_HOME")
    if xdg:
        return Path(xdg) / "kera"
    home = os.environ.get("HOME")
    if not home or (os.geteuid() == 0 and home == "/"):
        return Path("/var/lib/kera")
    return Path(home) / ".local" / "state" / "kera"


def load_settings(settings_file: Path | None = None, **overrides: Any) -> IngestSettings:
    """Settings from file, environment and explicit overrides (None values are ignored)."""
    path = settings_file or (Path(p) if (p := env("KERA_SETTINGS_FILE")) else None)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"settings file {path} does not exist")
    previous = _SETTINGS_FILE.set(path)
    try:
        return IngestSettings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _SETTINGS_FILE.reset(previous)
