"""What The Things Stack and ChirpStack uplinks share: the radio metadata worth keeping."""

from __future__ import annotations

from typing import Any

from ingest.codecs._time import parse_time_ms
from ingest.reading import Decoded, Reason, Rejected


def obj_at(parent: dict[str, Any], key: str, what: str, device: str | None) -> dict[str, Any]:
    value = parent.get(key)
    if type(value) is not dict:
        raise Rejected(Reason.BAD_FORMAT, f"{what}: {key!r} must be an object", device)
    return value


def dev_eui_of(value: object, device: str | None) -> str | None:
    if value is None:
        return None
    if type(value) is not str or len(value) != 16:
        raise Rejected(Reason.BAD_FORMAT, f"dev_eui {value!r:.40} is not 16 hex digits", device)
    try:
        int(value, 16)
    except ValueError:
        raise Rejected(
            Reason.BAD_FORMAT, f"dev_eui {value!r} is not 16 hex digits", device
        ) from None
    return value.lower()


def readings(
    device_id: str | None,
    dev_eui: str | None,
    values: dict[str, Any],
    raw_time: object,
    gateways: object,
    frame_counter: object,
) -> list[Decoded]:
    """An uplink's reading, and its radio metadata as a device_status reading."""
    try:
        ts = None if raw_time is None else parse_time_ms(raw_time)
    except Rejected as exc:
        exc.device_id = device_id
        raise
    out = [Decoded(device_id, ts, dict(values), dev_eui=dev_eui)]
    status = radio(gateways, frame_counter)
    if status:
        out.append(Decoded(device_id, ts, status, status=True, dev_eui=dev_eui))
    return out


def radio(gateways: object, frame_counter: object) -> dict[str, object]:
    """device_status fields from the gateways' reports: the best gateway's RSSI and SNR, how
    many gateways heard the uplink, and the frame counter."""
    out: dict[str, object] = {}
    if type(gateways) is list:
        reports = [g for g in gateways if type(g) is dict]
        heard = [g for g in reports if isinstance(g.get("rssi"), int | float)]
        if heard:
            best = max(heard, key=lambda g: g["rssi"])
            out["rssi_dbm"] = best["rssi"]
            if isinstance(best.get("snr"), int | float):
                out["snr_db"] = best["snr"]
        out["gateways"] = len(reports)
    if frame_counter is not None:
        out["frame_counter"] = frame_counter
    return out
