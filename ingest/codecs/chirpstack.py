"""ChirpStack uplink events (MQTT integration, JSON), versions 4 and 3.

Both publish on application/{application}/device/{dev_eui}/event/up. Which version sent a
message is told by its fields, so one source takes both:

    v4                              v3 (protobuf JSON marshaler; the legacy json_v3 is alike)
    deviceInfo.devEui (hex)         devEUI (base64 of the 8 bytes; hex in json_v3)
    deviceInfo.deviceName           deviceName
    time                            rxInfo[].time (gateway time, when known)
    object                          objectJSON (the codec's output as a JSON string), or object
    rxInfo[].rssi, .snr             rxInfo[].rssi, .loRaSNR
    fCnt, fPort, data (base64)      fCnt, fPort, data (base64)

https://www.chirpstack.io/docs/chirpstack/integrations/events.html (v4) and the v3 application
server's integrations/events page.
"""

from __future__ import annotations

import json
from typing import Any

from ingest.codecs._json import _check_shape, load_json
from ingest.codecs._lorawan import dev_eui_of, frm_payload, radio, readings
from ingest.reading import Decoded, Reason, Rejected


def decode(topic: str, payload: bytes, site: str, received_ms: int = 0) -> list[Decoded]:
    levels = topic.split("/")
    topic_eui = levels[3].lower() if len(levels) == 6 and levels[2] == "device" else None
    obj = load_json(payload, topic_eui)
    if type(obj) is not dict:
        raise Rejected(Reason.NOT_OBJECT, "ChirpStack event is not a JSON object", topic_eui)
    info = obj.get("deviceInfo")
    if type(info) is dict:
        return _v4(obj, info, topic_eui)
    if "devEUI" in obj or "applicationID" in obj:
        return _v3(obj, topic_eui)
    raise Rejected(
        Reason.BAD_FORMAT,
        "ChirpStack uplink has neither deviceInfo (v4) nor devEUI/applicationID (v3)",
        topic_eui,
    )


def _identity(
    dev_eui: str | None, name: object, topic_eui: str | None
) -> tuple[str | None, str | None]:
    device_id = name if type(name) is str and name else None
    if dev_eui is None and device_id is None:
        raise Rejected(Reason.BAD_FORMAT, "the uplink names neither a devEUI nor a device", None)
    if topic_eui is not None and dev_eui is not None and topic_eui != dev_eui:
        raise Rejected(
            Reason.BAD_TOPIC,
            f"topic names dev_eui {topic_eui} but the event is from {dev_eui}",
            device_id,
        )
    return device_id, dev_eui


def _v4(obj: dict[str, Any], info: dict[str, Any], topic_eui: str | None) -> list[Decoded]:
    device_id, dev_eui = _identity(
        dev_eui_of(info.get("devEui"), topic_eui), info.get("deviceName"), topic_eui
    )
    label = device_id or dev_eui
    return readings(
        device_id, dev_eui, obj.get("object"), obj.get("time"),
        radio(obj.get("rxInfo"), obj.get("fCnt")),
        frm_payload(obj.get("data"), label), obj.get("fPort"),
    )  # fmt: skip


def _v3(obj: dict[str, Any], topic_eui: str | None) -> list[Decoded]:
    device_id, dev_eui = _identity(
        dev_eui_of(obj.get("devEUI"), topic_eui), obj.get("deviceName"), topic_eui
    )
    label = device_id or dev_eui
    values = obj.get("object")
    text = obj.get("objectJSON")
    if values is None and type(text) is str and text:
        try:
            values = json.loads(text)
        except (ValueError, RecursionError):
            raise Rejected(
                Reason.BAD_FORMAT, "ChirpStack v3 objectJSON is not JSON", label
            ) from None
        _check_shape(values, label)
    gateways = obj.get("rxInfo")
    times = [g.get("time") for g in gateways if type(g) is dict] if type(gateways) is list else []
    when = next((t for t in times if type(t) is str and t), None)
    return readings(
        device_id, dev_eui, values, when, radio(gateways, obj.get("fCnt"), "loRaSNR"),
        frm_payload(obj.get("data"), label), obj.get("fPort"),
    )  # fmt: skip
