"""Wi-Fi and Zigbee firmwares on a live ingestor: every firmware profile's published messages
(Tasmota, Shelly Gen1 and Gen2, Zigbee2MQTT, wmbusmeters, OpenMQTTGateway; each profile names
where its messages were published) and an ESPHome node, sent on their real topics to real
Mosquitto, stored in real InfluxDB through the site file the docs show
(docs/examples/firmware-site.yaml), with the values, tags and times worked out by hand in
tests/firmware.py. A name no device has is rejected and makes no series; a last will feeds the
device_offline alert."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices import load_site
from devices.profiles import load_profile
from devstack.services import Mosquitto
from ingest.settings import IngestSettings
from tests.firmware import FIRMWARE, now_in
from tests.helpers import query, rows, running_ingestor, wait_until

# Run again with the clock 400 days ahead by scripts/test (device times against the limits).
pytestmark = pytest.mark.shifted_clock

SITE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "firmware-site.yaml"
KERA_INGEST = Path(sys.executable).parent / "kera-ingest"


async def test_firmware_messages_are_stored_as_computed_by_hand(
    settings: IngestSettings, broker: Mosquitto
) -> None:
    site = load_site(SITE)
    by_profile = {d.profile: d for d in site.devices if d.profile is not None}
    settings = settings.model_copy(update={"site_config": SITE})
    # (device id, measurement, fields, time or None for the receive time)
    expected: list[tuple[str, str, dict[str, object], int | None]] = []
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="firmware-pub")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    async with running_ingestor(settings) as ingestor:
        try:
            sent_ms = time.time_ns() // 1_000_000
            for name, wants in FIRMWARE.items():
                device = by_profile[name]
                for message, want in zip(load_profile(name).messages, wants, strict=True):
                    payload = message.payload.encode()
                    at = None
                    if message.payload.startswith("{"):
                        obj: dict[str, Any] = json.loads(message.payload)
                        at = now_in(obj, time.time_ns() // 1_000_000)
                        payload = json.dumps(obj).encode()
                    pub.publish(message.topic, payload, qos=1).wait_for_publish(5)
                    if want is not None:
                        measurement = (
                            "device_status" if "online" in want else device.spec.measurement
                        )
                        expected.append((device.id, measurement, want, at))
            # ESPHome (esphome.io/components/mqtt): one plain value per entity topic.
            pub.publish("espHome-co2/sensor/co2/state", b"612", qos=1).wait_for_publish(5)
            pub.publish("espHome-co2/status", b"online", qos=1).wait_for_publish(5)
            expected += [
                ("co2-lobby", "indoor_air", {"co2_ppm": 612.0}, None),
                ("co2-lobby", "device_status", {"online": True}, None),
            ]
            # A friendly name nobody registered.
            stray = pub.publish("zigbee2mqtt/Kitchen 3", b'{"temperature": 20.1}', qos=1)
            stray.wait_for_publish(5)
            done_ms = time.time_ns() // 1_000_000

            async def stored() -> bool:
                for device_id, measurement, want, _ in expected:
                    if not _matching(await rows(settings, measurement), device_id, want):
                        return False
                return ingestor.stats.rejected["unknown_device"] >= 1

            await wait_until(stored, timeout=30)

            async def offline_alert() -> list[dict[str, Any]]:
                return [
                    r
                    for r in await rows(settings, "alerts")
                    if r["device"] == "pow-workshop" and r["rule"] == "device_offline"
                ]

            # Tasmota's last will (tele/pow1/LWT = Offline) fires the offline alert.
            (alert,) = await wait_until(offline_alert, timeout=20)
            assert alert["firing"] is True
        finally:
            pub.disconnect()
            pub.loop_stop()

    spaces = {d.id: d.space for d in site.devices}
    for device_id, measurement, want, at in expected:
        (row,) = _matching(await rows(settings, measurement), device_id, want)
        assert row["space"] == spaces[device_id]
        assert row["site"] == "kera"
        if at is not None:
            assert row["time"] == at, (device_id, want)
        else:
            assert sent_ms <= row["time"] <= done_ms + 1000, (device_id, want)
    # The made-up name made no series (the pipeline's own counters count it as "unknown").
    readings = "|".join(sorted({m for _, m, _, _ in expected}))
    tags = await query(settings, f'SHOW TAG VALUES FROM /^({readings})$/ WITH KEY = "device"')
    devices = {v[1] for s in tags for v in s["values"]}
    assert devices <= set(spaces)
    assert "Kitchen 3" not in devices


def _matching(
    found: list[dict[str, Any]], device_id: str, want: dict[str, object]
) -> list[dict[str, Any]]:
    """The device's points holding these values (plain values of one moment share a point)."""
    return [
        r
        for r in found
        if r["device"] == device_id and all(r.get(k) == pytest.approx(v) for k, v in want.items())
    ]


def _z2m_announcements(ieee: str, name: str) -> list[tuple[str, bytes]]:
    """Discovery configs shaped as Zigbee2MQTT's Home Assistant extension publishes them for an
    Aqara WSDCGQ11LM (homeassistant/sensor/<ieee>/<key>/config: device, device_class, unit,
    state_topic, value_template), one per exposed value, linkquality without a device class."""
    out = []
    for key, device_class, unit in [
        ("temperature", "temperature", "°C"),
        ("humidity", "humidity", "%"),
        ("pressure", "atmospheric_pressure", "hPa"),
        ("battery", "battery", "%"),
        ("voltage", "voltage", "mV"),
        ("linkquality", None, "lqi"),
    ]:
        config: dict[str, Any] = {
            "availability": [{"topic": "zigbee2mqtt/bridge/state"}],
            "device": {
                "identifiers": [f"zigbee2mqtt_{ieee}"],
                "manufacturer": "Aqara",
                "model": "Temperature, humidity and pressure sensor (WSDCGQ11LM)",
                "name": name,
            },
            "enabled_by_default": True,
            "object_id": f"{name.lower().replace(' ', '_')}_{key}",
            "origin": {"name": "Zigbee2MQTT", "url": "https://www.zigbee2mqtt.io"},
            "state_class": "measurement",
            "state_topic": f"zigbee2mqtt/{name}",
            "unique_id": f"{ieee}_{key}_zigbee2mqtt",
            "unit_of_measurement": unit,
            "value_template": f"{{{{ value_json.{key} }}}}",
        }
        if device_class is not None:
            config["device_class"] = device_class
        out.append((f"homeassistant/sensor/{ieee}/{key}/config", json.dumps(config).encode()))
    return out


async def test_an_announced_device_is_adopted_from_quarantine(
    settings: IngestSettings, broker: Mosquitto, tmp_path: Path
) -> None:
    """Home Assistant discovery: a Zigbee sensor nobody registered announces itself; it is not
    stored, `kera-ingest quarantine` prints an entry for it, the entry pasted into the site
    file passes check-site, and the device's next message is stored."""
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE.read_text() + "discovery: {enabled: true}\n")
    settings = settings.model_copy(update={"site_config": site_file})
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="z2m-pub")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    state = {"battery": 91, "humidity": 40.5, "linkquality": 60, "pressure": 1003.2,
             "temperature": 20.75, "voltage": 2985}  # fmt: skip
    try:
        async with running_ingestor(settings) as ingestor:
            announcements = _z2m_announcements("0x00158d00045b2a11", "Kitchen 3")
            # the registered sensor announces itself too: counted, not quarantined
            announcements += _z2m_announcements("0x00158d0001234567", "Hall sensor, north")
            for topic, payload in announcements:
                pub.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
            pub.publish("zigbee2mqtt/Kitchen 3", json.dumps(state), qos=1).wait_for_publish(5)
            quarantine = settings.spool_path() / "quarantine.jsonl"

            def recorded() -> bool:
                return quarantine.exists() and len(quarantine.read_text().splitlines()) >= 7

            await wait_until(recorded, timeout=20)
            assert ingestor.stats.no_reading >= 6  # the registered sensor's announcements
        assert await rows(settings, "indoor_air") == []
        cli = subprocess.run(
            [str(KERA_INGEST), "quarantine", "--spool-dir", str(settings.spool_path()),
             "--config", str(site_file), "--json"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        (found,) = [json.loads(line) for line in cli.stdout.splitlines()]
        entry = found["site_entry"]
        assert 'mqtt_name: "Kitchen 3"' in entry
        assert "kind: indoor_air" in entry
        assert 'voltage: {to: battery_v, unit: "mV"}' in entry
        assert "# not guessed: linkquality (no device class)" in entry
        site_file.write_text(
            _with_device(site_file.read_text(), entry.replace("space: TODO", "space: kitchen"))
        )
        check = subprocess.run(
            [str(KERA_INGEST), "check-site", str(site_file)],
            check=False,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        async with running_ingestor(settings):
            later = {**state, "temperature": 21.0}
            pub.publish("zigbee2mqtt/Kitchen 3", json.dumps(later), qos=1).wait_for_publish(5)

            async def stored() -> list[dict[str, Any]]:
                return [r for r in await rows(settings, "indoor_air") if r["device"] == "kitchen-3"]

            (row,) = await wait_until(stored, timeout=20)
    finally:
        pub.disconnect()
        pub.loop_stop()
    assert row["space"] == "kitchen"
    assert {
        k: row[k]
        for k in ("temperature_c", "humidity_pct", "pressure_hpa", "battery_pct", "battery_v")
    } == {
        "temperature_c": 21.0,
        "humidity_pct": 40.5,
        "pressure_hpa": 1003.2,
        "battery_pct": 91.0,
        "battery_v": 2.985,
    }


def _with_device(site_text: str, entry: str) -> str:
    """The site file with one more device, pasted at the end of `devices:`."""
    head, tail = site_text.split("discovery:", 1)
    return head.rstrip("\n") + "\n" + entry + "\ndiscovery:" + tail
