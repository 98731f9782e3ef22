"""What a simulated device puts on the wire: the native contract, or what a partner's gateway or
LoRaWAN network server would publish for it (SenML, The Things Stack v3, ChirpStack v4).

The LoRaWAN formats apply to devices with a dev_eui; the others stay native, as in a mixed site.
They carry the values under the vendor names of the device's `field_map`
(a decoder's `distance` in cm, say), so the ingestor's mapping is exercised as in the field. The
radio metadata (RSSI, SNR, frame counter) comes from the device's own seeded stream.
"""

from __future__ import annotations

import base64
import enum
import json
import random
from datetime import UTC, datetime

from devices import AnyDevice
from devices.contract import telemetry_topic
from devices.expressions import Expression
from devices.mapping import unit_conversion
from firmware_sim.fleet import Values

# The contract's units as SenML (RFC 8428) unit symbols.
_SENML_UNITS = {
    "W": "W",
    "kWh": "kWh",
    "V": "V",
    "A": "A",
    "°C": "Cel",
    "%": "%",
    "ppm": "ppm",
    "mm": "mm",
    "people": "count",
}


class Format(enum.StrEnum):
    NATIVE = "native"
    SENML = "senml"
    TTS_V3 = "tts_v3"
    CHIRPSTACK_V4 = "chirpstack_v4"
    CHIRPSTACK_V3 = "chirpstack_v3"


def _iso(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="milliseconds")


def vendor_values(device: AnyDevice, values: Values) -> dict[str, object]:
    """Values as the device's decoder emits them, by inverting its mapping (profile and own
    entries): names, nesting, enumerations, units and scale. An expression over several vendor
    fields gets the whole value on its first field and 0 on the others."""
    out: dict[str, object] = dict(values)
    for key, m in device.mapping.items():
        if m.expr is not None:
            if key not in out:
                continue
            value = out.pop(key)
            names = sorted(Expression(m.expr).names)
            for i, name in enumerate(names):
                out[name] = value if i == 0 else 0
            continue
        if m.to is None or m.to not in out:
            continue
        value = out.pop(m.to)
        if m.enum is not None:
            value = next((k for k, v in m.enum.items() if v == value), value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = (float(value) - m.offset) / m.scale
            if m.unit is not None:
                scale, offset = unit_conversion(m.unit, device.spec.fields[m.to])
                number = (number - offset) / scale
            value = round(number, 3)
        _put(out, key, value)
    return out


def _put(out: dict[str, object], key: str, value: object) -> None:
    if "." not in key:
        out[key] = value
        return
    *parents, leaf = key.split(".")
    node = out
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return
        node = child
    node[leaf] = value


class Encoder:
    """One device's messages in one format. Stateful: LoRaWAN frame counters count up."""

    def __init__(self, fmt: Format, site: str, device: AnyDevice, seed: int) -> None:
        if (
            fmt in (Format.TTS_V3, Format.CHIRPSTACK_V4, Format.CHIRPSTACK_V3)
            and not device.dev_eui
        ):
            # Not a LoRaWAN device (no dev_eui in the site file): it keeps publishing natively,
            # as a mixed site does.
            fmt = Format.NATIVE
        self.fmt = fmt
        self.site = site
        self.device = device
        self._rng = random.Random(f"{seed}:{device.id}:radio")
        self._f_cnt = 0

    def encode(self, time_ms: int, values: Values) -> tuple[str, dict[str, object] | list[object]]:
        """(topic, JSON-ready body)."""
        d = self.device
        if self.fmt is Format.NATIVE:
            return telemetry_topic(self.site, d.id), {"ts": time_ms, **values}
        if self.fmt is Format.SENML:
            pack: list[object] = []
            for i, (name, value) in enumerate(values.items()):
                rec: dict[str, object] = {"n": name}
                if i == 0:
                    rec = {"bn": f"{d.id}/", "bt": time_ms / 1000, **rec}
                spec = d.spec.fields.get(name)
                if spec is not None and spec.unit in _SENML_UNITS:
                    rec["u"] = _SENML_UNITS[spec.unit]
                rec["vb" if isinstance(value, bool) else "v"] = value
                pack.append(rec)
            return f"kera/{self.site}/senml/{d.id}", pack
        self._f_cnt += 1
        rssi = round(self._rng.uniform(-120, -60))
        snr = round(self._rng.uniform(-10, 12), 1)
        decoded = vendor_values(d, values)
        if self.fmt is Format.TTS_V3:
            ids: dict[str, object] = {
                "device_id": d.id,
                "application_ids": {"application_id": "kera-sim"},
            }
            if d.dev_eui:
                ids["dev_eui"] = d.dev_eui.upper()
            return f"v3/kera-sim@kera/devices/{d.id}/up", {
                "end_device_ids": ids,
                "received_at": _iso(time_ms),
                "uplink_message": {
                    "f_port": 1,
                    "f_cnt": self._f_cnt,
                    "decoded_payload": decoded,
                    "rx_metadata": [
                        {"gateway_ids": {"gateway_id": "kera-sim-gw"}, "rssi": rssi, "snr": snr}
                    ],
                },
            }
        assert d.dev_eui is not None
        if self.fmt is Format.CHIRPSTACK_V3:
            # The v3 application server's protobuf JSON: bytes in base64, the codec's output
            # as a JSON string.
            return f"application/1/device/{d.dev_eui}/event/up", {
                "applicationID": "1",
                "applicationName": "kera-sim",
                "deviceName": d.id,
                "devEUI": base64.b64encode(bytes.fromhex(d.dev_eui)).decode(),
                "rxInfo": [
                    {"gatewayID": "ABbAAfFQAAE=", "time": _iso(time_ms), "rssi": rssi,
                     "loRaSNR": snr}
                ],
                "fCnt": self._f_cnt,
                "fPort": 1,
                "objectJSON": json.dumps(decoded, separators=(",", ":")),
            }  # fmt: skip
        return f"application/kera-sim/device/{d.dev_eui}/event/up", {
            "time": _iso(time_ms),
            "deviceInfo": {"devEui": d.dev_eui, "deviceName": d.id, "applicationName": "kera-sim"},
            "fCnt": self._f_cnt,
            "fPort": 1,
            "object": decoded,
            "rxInfo": [{"gatewayId": "0016c001f1500001", "rssi": rssi, "snr": snr}],
        }

    @staticmethod
    def dumps(body: object) -> bytes:
        return json.dumps(body, separators=(",", ":")).encode()
