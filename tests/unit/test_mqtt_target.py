"""Where the broker is: the MQTT URL setting and the CA the ingestor and the simulator trust."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_sim._cli_common import mqtt_target
from ingest.mqtt import MqttTarget, parse_mqtt_url
from ingest.service import Ingestor
from ingest.settings import IngestSettings


def test_urls_and_their_defaults() -> None:
    t = parse_mqtt_url("mqtts://ingest:p%40ss@broker.example")
    assert t == MqttTarget("broker.example", 8883, "ingest", "p@ss", tls=True)
    assert str(t) == "mqtts://ingest@broker.example:8883"  # never the password
    assert parse_mqtt_url("mqtt://127.0.0.1").port == 1883
    assert parse_mqtt_url("mqtt://h").ssl_context() is None
    with pytest.raises(ValueError, match="scheme"):
        parse_mqtt_url("http://user:secret@h")


def test_the_sites_ca_file_reaches_the_ingestor_and_the_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca.pem"
    monkeypatch.setenv("KERA_MQTT_CA_FILE", str(ca))
    monkeypatch.setenv("KERA_MQTT_URL", "mqtts://broker.example")
    assert mqtt_target(None).ca_file == str(ca)
    settings = IngestSettings(dev_mode=True, spool_dir=tmp_path / "spool")
    assert settings.mqtt_ca_file == ca
    assert Ingestor(settings)._mqtt.ca_file == str(ca)  # noqa: SLF001
    monkeypatch.setenv("KERA_MQTT_CA_FILE", "")  # empty is unset
    assert mqtt_target(None).ca_file is None


@pytest.mark.parametrize(("value", "level"), [("5", 5), ("3.1.1", 4)])
def test_protocol_setting(value: str, level: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERA_MQTT_PROTOCOL", value)
    assert IngestSettings(dev_mode=True).protocol_version() == level
