"""The native Kera MQTT contract (docs/data-model.md):

kera/{site}/{device_id}/telemetry   JSON object: optional "ts" plus the kind's fields
kera/{site}/{device_id}/status      "online" | "offline" (retained; the device's last will)
"""

from __future__ import annotations

from devices.contract import STATUS_PAYLOADS, TS_KEY
from ingest.codecs._json import load_json
from ingest.codecs._time import parse_time_ms
from ingest.reading import Decoded, Reason, Rejected


def decode(topic: str, payload: bytes, site: str, received_ms: int = 0) -> list[Decoded]:
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "kera" or parts[1] != site:
        raise Rejected(
            Reason.BAD_TOPIC, f"topic {topic!r} is not kera/{site}/<device>/telemetry|status"
        )
    device_id = parts[2]
    channel = parts[3]
    if channel == "telemetry":
        return [_telemetry(device_id, payload)]
    if channel == "status":
        return [_status(device_id, payload)]
    raise Rejected(Reason.BAD_TOPIC, f"topic {topic!r}: unknown channel {channel!r}", device_id)


def _telemetry(device_id: str, payload: bytes) -> Decoded:
    obj = load_json(payload, device_id)
    if type(obj) is not dict:
        raise Rejected(
            Reason.NOT_OBJECT, f"payload is JSON {type(obj).__name__}, not an object", device_id
        )
    raw_ts = obj.pop(TS_KEY, None)
    try:
        ts = None if raw_ts is None else parse_time_ms(raw_ts)
    except Rejected as exc:
        exc.device_id = device_id
        raise
    return Decoded(device_id, ts, obj)


def _status(device_id: str, payload: bytes) -> Decoded:
    text = payload.strip().lower()
    try:
        online = STATUS_PAYLOADS[text.decode("ascii", "replace")]
    except KeyError:
        raise Rejected(
            Reason.BAD_STATUS,
            f"status payload {payload[:40]!r} is neither 'online' nor 'offline'",
            device_id,
        ) from None
    return Decoded(device_id, None, {"online": online}, status=True)
