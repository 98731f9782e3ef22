"""What a field map, a profile and a device codec cost on the hot path (docs/performance.md).

    .venv/bin/python bench/mapping.py [--messages 20000] [--rounds 5]

Each case is a stream of distinct messages of one device through the ingestor's Pipeline.handle
(decode, validate, map, encode), as the MQTT callback runs it, in this process: no broker and
no InfluxDB, so the figure is the Python per-message cost that bounds an ingestor. The cases:

- native: a room sensor on its own topic, contract names (the baseline of bench/throughput.py);
- lorawan: the same kind of reading in a The Things Stack uplink, already in contract names;
- mapped (profile): a Milesight AM307 uplink through its profile (renames, an enumeration,
  units), the radio status beside it;
- mapped (expression): a Milesight VS133 uplink whose head count is a sum of four regions;
- codec: a raw AM103 uplink decoded by its JavaScript codec in QuickJS, then mapped.

- native heat, and native heat mapped: one heat-meter reading on its own topic, in contract
  names, and as wmbusmeters prints it (Kamstrup profile: six fields renamed, seven ignored).
- firmware cases (json sources, docs/onboarding.md): a Sonoff POW R2's Tasmota SENSOR message
  (preset topic template, local Time, nested ENERGY object, profile) against the same four
  values natively; a Shelly Gen1 plain value (relay/0/power = 0.57) against a native message
  of one field; a Zigbee2MQTT Aqara message (friendly name with spaces, profile) against the
  same five values natively.
- native, 20 templates: the native room-sensor message in a site that also subscribes to 20
  topic templates (every firmware preset): the native path must not slow down.

The target (a mapped reading at most twice a native one) compares like with like: the same
reading in the same transport, with and without a mapping (`vs unmapped` column: native heat
mapped against native heat, LoRaWAN cases against the unmapped LoRaWAN uplink, which carries a
JSON envelope and a radio-status point whether or not it is mapped). The ratio to the plain
native room-sensor message is given too. The best of `rounds` rounds counts (the least
disturbed by the machine).
Writes bench/results/mapping.json (ignored by git).
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from devices import Registry, parse_site
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from ingest.reading import DeadLetter

SITE = """
site: kera
sources: [{codec: native}, {codec: tts_v3}]
devices:
  - {id: occ-1, kind: occupancy, space: room}
  - {id: air-plain, kind: indoor_air, space: room, dev_eui: "00000000000000a1"}
  - {id: air-307, kind: indoor_air, space: room, dev_eui: "00000000000000a2",
     profile: milesight-am307}
  - {id: pc-133, kind: people_counter, space: hall, dev_eui: "00000000000000a3",
     profile: milesight-vs133}
  - {id: air-103, kind: indoor_air, space: room, dev_eui: "00000000000000a4",
     profile: milesight-am103}
  - {id: hm-plain, kind: heat_meter, space: plant}
  - {id: hm-603, kind: heat_meter, space: plant, profile: kamstrup-multical603-wmbusmeters}
"""

FIRMWARE_SITE = """
site: kera
sources:
  - codec: native
  - preset: tasmota
  - preset: shelly_gen1
  - preset: shelly_gen2
  - preset: zigbee2mqtt
  - preset: esphome
  - preset: wmbusmeters
  - preset: openmqttgateway
  - codec: json
    topics: ["lab/{device}/a", "lab/{device}/b", "lab/{device}/c", "lab/{device}/d",
             "lab/{device}/e", "lab/{device}/f"]
devices:
  - {id: occ-1, kind: occupancy, space: room}
  - {id: em-plain, kind: energy_meter, space: room}
  - {id: air-plain, kind: indoor_air, space: room}
  - {id: pow-1, kind: energy_meter, space: room, profile: sonoff-pow-r2-tasmota, mqtt_name: pow1}
  - {id: plug-1, kind: energy_meter, space: room, profile: shelly-plug-s,
     mqtt_name: shellyplug-s-C572BE}
  - {id: air-z2m, kind: indoor_air, space: room, profile: aqara-wsdcgq11lm-z2m,
     mqtt_name: "Hall sensor, north"}
"""
NOW = int(time.time() * 1000)


def _tts(device: str, eui: str, i: int, up: dict[str, Any]) -> tuple[str, bytes]:
    body = {
        "end_device_ids": {
            "device_id": device,
            "application_ids": {"application_id": "bench"},
            "dev_eui": eui.upper(),
        },
        "received_at": "2026-11-02T08:00:00.123Z",
        "uplink_message": {
            "f_port": 85,
            "f_cnt": i,
            "rx_metadata": [{"gateway_ids": {"gateway_id": "gw"}, "rssi": -97, "snr": 7.25}],
            **up,
        },
    }
    return f"v3/bench@ttn/devices/{device}/up", json.dumps(body).encode()


def _am103_frame(i: int) -> str:
    t = 200 + i % 50
    raw = bytes([0x01, 0x75, 90, 0x03, 0x67, t & 0xFF, t >> 8, 0x04, 0x68, 80, 0x07, 0x7D])
    raw += (400 + i % 300).to_bytes(2, "little")
    return base64.b64encode(raw).decode()


def _heat(i: int) -> dict[str, float]:
    return {"heat_energy_kwh": 165.0 + i, "volume_m3": 5.45 + i / 100, "flow_m3h": 0.018,
            "heat_power_kw": 1.2, "supply_temp_c": 53.28, "return_temp_c": 23.04}  # fmt: skip


def _wmbusmeters(i: int) -> dict[str, object]:
    """The same reading as wmbusmeters' kamheat driver prints it (its documented test JSON)."""
    return {
        "media": "heat", "meter": "kamheat", "name": "Heat", "id": "36363636", "status": "OK",
        "total_energy_consumption_kwh": 165.0 + i, "total_volume_m3": 5.45 + i / 100,
        "volume_flow_m3h": 0.018, "power_kw": 1.2, "t1_temperature_c": 53.28,
        "t2_temperature_c": 23.04, "forward_energy_m3c": 299, "return_energy_m3c": 156,
        "timestamp": "2026-11-02T08:00:00Z",
    }  # fmt: skip


def _native(i: int) -> tuple[str, bytes]:
    return CASES["native"](i)


def _local_now() -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Europe/Helsinki")).replace(tzinfo=None, microsecond=0).isoformat()


LOCAL = _local_now()

FIRMWARE_CASES: dict[str, Callable[[int], tuple[str, bytes]]] = {
    "native, 20 templates": _native,
    "native power": lambda i: (
        "kera/kera/em-plain/telemetry",
        json.dumps({"power_w": 2629 + i % 50, "voltage_v": 226, "current_a": 11.677,
                    "energy_kwh": 6.404 + i / 1000}).encode(),
    ),
    "tasmota (preset, profile)": lambda i: (
        "tele/pow1/SENSOR",
        json.dumps({"Time": LOCAL, "ENERGY": {
            "TotalStartTime": "2018-11-14T18:39:40", "Total": 6.404 + i / 1000,
            "Yesterday": 5.340, "Today": 1.064, "Power": 2629 + i % 50, "ApparentPower": 2645,
            "ReactivePower": 288, "Factor": 0.99, "Voltage": 226, "Current": 11.677}}).encode(),
    ),
    "native one value": lambda i: (
        "kera/kera/em-plain/telemetry", json.dumps({"power_w": 0.57 + i % 50}).encode()
    ),
    "shelly gen1 plain value": lambda i: (
        "shellies/shellyplug-s-C572BE/relay/0/power", str(0.57 + i % 50).encode()
    ),
    "native air": lambda i: (
        "kera/kera/air-plain/telemetry",
        json.dumps({"temperature_c": 21.34, "humidity_pct": 44.72 + i % 10,
                    "pressure_hpa": 1012, "battery_pct": 100, "battery_v": 3.055}).encode(),
    ),
    "zigbee2mqtt (profile)": lambda i: (
        "zigbee2mqtt/Hall sensor, north",
        json.dumps({"battery": 100, "humidity": 44.72 + i % 10, "linkquality": 81,
                    "pressure": 1012, "temperature": 21.34, "voltage": 3055}).encode(),
    ),
}  # fmt: skip

CASES: dict[str, Callable[[int], tuple[str, bytes]]] = {
    "native": lambda i: (
        "kera/kera/occ-1/telemetry",
        json.dumps(
            {"people": i % 40, "co2_ppm": 400 + i % 500, "temperature_c": 21.5,
             "humidity_pct": 35.0}
        ).encode(),
    ),
    "native heat": lambda i: ("kera/kera/hm-plain/telemetry", json.dumps(_heat(i)).encode()),
    "native heat, mapped (profile)": lambda i: (
        "kera/kera/hm-603/telemetry", json.dumps(_wmbusmeters(i)).encode()
    ),
    "lorawan": lambda i: _tts(
        "air-plain", "00000000000000a1", i,
        {"decoded_payload": {"co2_ppm": 400 + i % 500, "temperature_c": 21.5,
                             "humidity_pct": 35.0, "pressure_hpa": 1008.6}},
    ),
    "mapped (profile)": lambda i: _tts(
        "air-307", "00000000000000a2", i,
        {"decoded_payload": {"temperature": 23.8, "humidity": 62, "pir": "trigger",
                             "light_level": 2, "co2": 400 + i % 500, "tvoc": 37,
                             "pressure": 1008.6}},
    ),
    "mapped (expression)": lambda i: _tts(
        "pc-133", "00000000000000a3", i,
        {"decoded_payload": {"region_1_count": i % 5, "region_2_count": 16,
                             "region_3_count": 7, "region_4_count": 9}},
    ),
    "codec": lambda i: _tts("air-103", "00000000000000a4", i, {"frm_payload": _am103_frame(i)}),
}  # fmt: skip


# Each case's unmapped counterpart in the same format (LoRaWAN cases default to "lorawan").
_BASE = {
    "native": "native",
    "native heat": "native heat",
    "native heat, mapped (profile)": "native heat",
    "native, 20 templates": "native",
    "native power": "native power",
    "tasmota (preset, profile)": "native power",
    "native one value": "native one value",
    "shelly gen1 plain value": "native one value",
    "native air": "native air",
    "zigbee2mqtt (profile)": "native air",
}


def measure(messages: int, rounds: int) -> dict[str, float]:
    plain = Registry(parse_site(SITE))
    firmware = Registry(parse_site(FIRMWARE_SITE))
    assert len(Pipeline(firmware, Stats()).filters) >= 22  # native's 2 and 20 templates
    out: dict[str, float] = {}
    cases = [(n, make, plain) for n, make in CASES.items()]
    cases += [(n, make, firmware) for n, make in FIRMWARE_CASES.items()]
    for name, make, registry in cases:
        batch = [make(i) for i in range(messages)]
        best = float("inf")
        for _ in range(rounds):
            pipeline = Pipeline(registry, Stats())
            handle = pipeline.handle
            t0 = time.perf_counter()
            for topic, payload in batch:
                result = handle(topic, payload, NOW)
            elapsed = time.perf_counter() - t0
            if isinstance(result, DeadLetter):
                raise SystemExit(f"{name}: the ingestor rejected the message: {result.detail}")
            best = min(best, elapsed)
        out[name] = best / messages * 1e6
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print the results as JSON only")
    args = ap.parse_args()
    us = measure(args.messages, args.rounds)
    result = {
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "messages": args.messages,
        "rounds": args.rounds,
        "us_per_message": {k: round(v, 2) for k, v in us.items()},
        "ratio_to_unmapped": {k: round(v / us[_BASE.get(k, "lorawan")], 2) for k, v in us.items()},
        "ratio_to_native": {k: round(v / us["native"], 2) for k, v in us.items()},
    }
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "mapping.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
        return
    table = Table(
        title=f"hot-path cost per message ({args.messages} messages, best of {args.rounds})"
    )
    for col in ("case", "µs per message", "vs unmapped, same format", "vs native room sensor"):
        table.add_column(col)
    for k, v in us.items():
        table.add_row(
            k,
            f"{v:.1f}",
            f"{result['ratio_to_unmapped'][k]:.2f}",
            f"{result['ratio_to_native'][k]:.2f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
