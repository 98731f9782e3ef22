"""Published messages of Wi-Fi and Zigbee firmwares and what they must become, for the unit and
integration tests of json sources (their sources are named in devices/profiles/*.yaml)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from devices.presets import PRESETS, Preset
from devices.topics import TopicTemplate
from ingest.storage.lineproto import parse_line, parse_value

HELSINKI = ZoneInfo("Europe/Helsinki")

# What each firmware profile's published messages become, message by message, worked out by
# hand from the payloads in the profile files: the stored fields, or "status" with online, or
# None for a message that carries no reading.
FIRMWARE: dict[str, list[dict[str, object] | None]] = {
    "shelly-plug-s": [
        {"power_w": 0.57},
        {"energy_kwh": 0.1162},  # 6972 Watt-minutes / 60,000
        {"online": True},
    ],
    "shelly-ht": [
        {"temperature_c": 21.5}, {"humidity_pct": 45.5}, {"battery_pct": 97.0}, None,
    ],
    "shelly-plus-1pm": [
        {"power_w": 0.0, "voltage_v": 237.571, "energy_kwh": 0.014093},
        {"power_w": 8.9, "current_a": 0.04},
        {"online": False},
    ],
    "shelly-pro-3em": [
        # voltage and current: the mean of the three phases
        {"power_w": 715.5, "voltage_v": 236.233333333, "current_a": 3.69533333333},
        {"energy_kwh": 4.79028, "energy_export_kwh": 2.7628},
    ],
    "sonoff-pow-r2-tasmota": [
        {"power_w": 2629.0, "voltage_v": 226.0, "current_a": 11.677, "energy_kwh": 6.404},
        {"online": False},
    ],
    "tasmota-scd40-bme280": [
        # the BME280's temperature and humidity, the first alternatives
        {"co2_ppm": 834.0, "temperature_c": 22.1, "humidity_pct": 38.4, "pressure_hpa": 1008.9},
    ],
    "aqara-wsdcgq11lm-z2m": [
        {
            "temperature_c": 21.34, "humidity_pct": 44.72, "pressure_hpa": 1012.0,
            "battery_pct": 100.0, "battery_v": 3.055,
        },
        {"online": True},
    ],
    "aqara-rtcgq11lm-z2m": [
        {"motion": True, "illuminance_lux": 39.0, "battery_pct": 97.0, "battery_v": 3.005},
    ],
    "kamstrup-multical21-wmbusmeters": [{"volume_m3": 6.388, "temperature_c": 8.0}],
    "xiaomi-lywsd03mmc-omg": [
        {"temperature_c": 26.3, "humidity_pct": 49.0, "battery_pct": 29.0, "battery_v": 2.487},
    ],
}  # fmt: skip


def point(line: str) -> tuple[str, str, dict[str, object], int]:
    """measurement, series key, typed fields, time of a line the pipeline wrote."""
    key, fields, ts = parse_line(line)
    return key.split(",")[0], key, {k: parse_value(v) for k, v in fields.items()}, ts


def device_name(preset: Preset, topic: str) -> str:
    layout = PRESETS[preset]
    for text in (*layout.topics, *layout.status_topics):
        bound = TopicTemplate.parse(text).match(topic.split("/"))
        if bound is not None:
            return bound["device"]
    raise AssertionError(f"{topic} matches no template of {preset}")


def now_in(payload: dict[str, Any], now_ms: int) -> int | None:
    """Move a published message's own time to now, as the firmware would stamp it today; the
    time it should be stored at."""
    if "Time" in payload:  # Tasmota: local time without offset
        local = datetime.fromtimestamp(now_ms // 1000, HELSINKI).replace(tzinfo=None)
        payload["Time"] = local.isoformat()
        return now_ms // 1000 * 1000
    if "timestamp" in payload:  # wmbusmeters: RFC 3339
        payload["timestamp"] = datetime.fromtimestamp(now_ms // 1000, UTC).isoformat()
        return now_ms // 1000 * 1000
    params = payload.get("params")
    if isinstance(params, dict) and "ts" in params:  # Shelly Gen2 NotifyStatus: Unix seconds
        params["ts"] = (now_ms - 1500) / 1000
        return now_ms - 1500
    return None
