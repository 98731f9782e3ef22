"""Firmware presets for `json` sources: where each firmware publishes, how it says it is online,
and where its messages carry their own time. Written from each firmware's own documentation
(linked below); docs/onboarding.md has a worked example per firmware.

A preset only lays out topics: which device a message is from is still the site file's
(`mqtt_name`), and what its fields mean is a device profile's (devices/profiles/).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class Preset(enum.StrEnum):
    TASMOTA = "tasmota"
    SHELLY_GEN1 = "shelly_gen1"
    SHELLY_GEN2 = "shelly_gen2"
    ZIGBEE2MQTT = "zigbee2mqtt"
    ESPHOME = "esphome"
    WMBUSMETERS = "wmbusmeters"
    OPENMQTTGATEWAY = "openmqttgateway"


@dataclass(frozen=True, slots=True)
class PresetLayout:
    firmware: str
    documentation: str
    topics: tuple[str, ...]
    status_topics: tuple[str, ...] = ()
    # (path, format) of the device's own time in a message, when the firmware sends one.
    time: tuple[str, str] | None = None
    text_numbers: bool = False
    # What {device} is in this firmware's topics: what to put in a device's `mqtt_name`.
    device_level: str = ""


PRESETS: Final[dict[Preset, PresetLayout]] = {
    Preset.TASMOTA: PresetLayout(
        "Tasmota",
        "https://tasmota.github.io/docs/MQTT/",
        # The default FullTopic %prefix%/%topic%/: telemetry every TelePeriod (300 s).
        ("tele/{device}/SENSOR",),
        # The last will: Online / Offline, retained.
        ("tele/{device}/LWT",),
        # "Time":"2019-09-08T16:44:03": the device's local time, no offset (TimeZone setting).
        ("Time", "local"),
        device_level="the device's Topic (default tasmota_XXXXXX, the MAC's last 6 hex digits)",
    ),
    Preset.SHELLY_GEN1: PresetLayout(
        "Shelly Gen1",
        "https://shelly-api-docs.shelly.cloud/gen1/#shelly-plug-plugs-mqtt",
        # One plain value per topic: relay/0/power = 0.57 (W), relay/0/energy (Watt-minutes),
        # emeter/0/power, sensor/temperature on the H&T.
        (
            "shellies/{device}/relay/{channel}/{field}",
            "shellies/{device}/emeter/{channel}/{field}",
            "shellies/{device}/sensor/{field}",
        ),
        # true / false, retained; the last will says false.
        ("shellies/{device}/online",),
        device_level="the device id, e.g. shellyplug-s-C572BE (model and MAC)",
    ),
    Preset.SHELLY_GEN2: PresetLayout(
        "Shelly Gen2 (Plus, Pro)",
        "https://shelly-api-docs.shelly.cloud/gen2/General/Notifications",
        # Generic status updates: <id>/status/switch:0 {"apower": ...}; RPC notifications:
        # <id>/events/rpc {"method": "NotifyStatus", "params": {"ts": ..., "switch:0": {...}}}
        ("{device}/status/{component}", "{device}/events/rpc"),
        ("{device}/online",),
        # params.ts: Unix seconds with a fraction, in NotifyStatus only.
        ("params.ts", "unix_s"),
        device_level="the MQTT topic prefix, by default the device id (shellyplus1pm-<mac>)",
    ),
    Preset.ZIGBEE2MQTT: PresetLayout(
        "Zigbee2MQTT",
        "https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html",
        ("zigbee2mqtt/{device}",),
        # {"state": "online"} (or plain online from older versions), with availability on.
        ("zigbee2mqtt/{device}/availability",),
        device_level="the device's friendly_name (spaces and commas allowed; not one with /)",
    ),
    Preset.ESPHOME: PresetLayout(
        "ESPHome",
        "https://esphome.io/components/mqtt.html",
        # One plain value per entity: <topic_prefix>/sensor/<object_id>/state = 21.5
        ("{device}/sensor/{field}/state", "{device}/binary_sensor/{field}/state"),
        # online / offline (birth message and last will), retained.
        ("{device}/status",),
        device_level="the node's topic_prefix (by default its name, e.g. esphome-co2)",
    ),
    Preset.WMBUSMETERS: PresetLayout(
        "wmbusmeters",
        "https://github.com/wmbusmeters/wmbusmeters#readme",
        # Its shell= hook with mosquitto_pub -t wmbusmeters/$METER_NAME -m "$METER_JSON".
        ("wmbusmeters/{device}",),
        (),
        # "timestamp":"2018-02-08T09:07:22Z": when wmbusmeters decoded the telegram.
        ("timestamp", "rfc3339"),
        device_level="the meter's name in wmbusmeters' configuration ($METER_NAME)",
    ),
    Preset.OPENMQTTGATEWAY: PresetLayout(
        "OpenMQTTGateway (BLE)",
        "https://docs.openmqttgateway.com/use/ble.html",
        # home/<gateway name>/BTtoMQTT/<MAC without colons> {"tempc": 21.4, ...}
        ("home/{gateway}/BTtoMQTT/{device}",),
        device_level="the sensor's MAC address without colons (A4C1386E4AE8)",
    ),
}
