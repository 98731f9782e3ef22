"""Where the broker is: parsed from the MQTT URL setting, shared with the simulator's links."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class MqttTarget:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    # PEM file of the CA(s) that signed the broker's certificate (KERA_MQTT_CA_FILE); None:
    # the system's CAs. The host name is verified either way.
    ca_file: str | None = None

    def __str__(self) -> str:
        # Never the password: this string goes to logs.
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=self.ca_file)


def parse_mqtt_url(url: str, ca_file: str | None = None) -> MqttTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(
            f"MQTT URL {url.rsplit('@', maxsplit=1)[-1]!r}: scheme must be mqtt:// or mqtts://"
        )
    tls = parts.scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise ValueError("MQTT URL has no host")
    return MqttTarget(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
        ca_file=ca_file,
    )
