"""What The Things Stack and ChirpStack uplinks share: the device's identity, the reading (a
decoded object, or the raw application payload for a device codec), and the radio metadata
worth keeping."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ingest.codecs._time import parse_time_ms
from ingest.reading import Decoded, Reason, Rejected


def obj_at(parent: dict[str, Any], key: str, what: str, device: str | None) -> dict[str, Any]:
    value = parent.get(key)
    if type(value) is not dict:
        raise Rejected(Reason.BAD_FORMAT, f"{what}: {key!r} must be an object", device)
    return value


def dev_eui_of(value: object, device: str | None) -> str | None:
    """16 hex digits, or (ChirpStack v3's protobuf JSON) the 8 bytes in base64."""
    if value is None:
        return None
    if type(value) is str and len(value) == 12 and value.endswith("="):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == 8:
            return raw.hex()
    if type(value) is not str or len(value) != 16:
        raise Rejected(
            Reason.BAD_FORMAT, f"dev_eui {value!r:.40} is not 16 hex digits (or 8 bytes base64)",
            device,
        )  # fmt: skip
    try:
        int(value, 16)
    except ValueError:
        raise Rejected(
            Reason.BAD_FORMAT, f"dev_eui {value!r} is not 16 hex digits", device
        ) from None
    return value.lower()


def frm_payload(value: object, device: str | None) -> bytes | None:
    """The application payload, base64 as both servers send it; None when absent."""
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise Rejected(Reason.BAD_FORMAT, "the uplink's payload must be base64 text", device)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(
            Reason.BAD_FORMAT, "the uplink's payload is not valid base64", device
        ) from None


def readings(
    device_id: str | None,
    dev_eui: str | None,
    values: object,
    raw_time: object,
    radio_status: dict[str, object],
    payload: bytes | None,
    f_port: object,
) -> list[Decoded]:
    """An uplink's reading and its radio metadata as a device_status reading.

    `values` is the network server's decoded object, or None when it sent none: then the raw
    `payload` goes to the device's own codec, and a frame without one carries no reading."""
    try:
        ts = None if raw_time is None else parse_time_ms(raw_time)
    except Rejected as exc:
        exc.device_id = device_id
        raise
    port = f_port if type(f_port) is int else None
    if type(values) is dict:
        out = [Decoded(device_id, ts, dict(values), dev_eui=dev_eui)]
    elif values is not None:
        raise Rejected(
            Reason.BAD_FORMAT, "the uplink's decoded object is not a JSON object", device_id
        )
    elif payload is not None and port != 0:
        out = [Decoded(device_id, ts, {}, dev_eui=dev_eui, frm_payload=payload, f_port=port)]
    else:
        note = "a frame with no application payload (MAC commands only)"
        out = [Decoded(device_id, ts, {}, dev_eui=dev_eui, no_reading=note)]
    if radio_status:
        out.append(Decoded(device_id, ts, radio_status, status=True, dev_eui=dev_eui))
    return out


def radio(gateways: object, frame_counter: object, snr_key: str = "snr") -> dict[str, object]:
    """device_status fields from the gateways' reports: the best gateway's RSSI and SNR, how
    many gateways heard the uplink, and the frame counter."""
    out: dict[str, object] = {}
    if type(gateways) is list:
        reports = [g for g in gateways if type(g) is dict]
        heard = [g for g in reports if isinstance(g.get("rssi"), int | float)]
        if heard:
            best = max(heard, key=lambda g: g["rssi"])
            out["rssi_dbm"] = best["rssi"]
            if isinstance(best.get(snr_key), int | float):
                out["snr_db"] = best[snr_key]
        out["gateways"] = len(reports)
    if frame_counter is not None:
        out["frame_counter"] = frame_counter
    return out
