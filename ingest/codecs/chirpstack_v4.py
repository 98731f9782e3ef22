"""ChirpStack v4 uplink events (MQTT integration, JSON encoding).

Topic: application/{application_id}/device/{dev_eui}/event/up. The payload's parts used here:

    deviceInfo.devEui, deviceInfo.deviceName     which device
    time                                         gateway time of reception, if known
    object                                       the device profile codec's output
    fCnt, rxInfo[]                               radio metadata -> device_status

https://www.chirpstack.io/docs/chirpstack/integrations/events.html
"""

from __future__ import annotations

from ingest.codecs._json import load_json
from ingest.codecs._lorawan import dev_eui_of, obj_at, readings
from ingest.reading import Decoded, Reason, Rejected


def decode(topic: str, payload: bytes, site: str, received_ms: int = 0) -> list[Decoded]:
    levels = topic.split("/")
    topic_eui = levels[3].lower() if len(levels) == 6 and levels[2] == "device" else None
    obj = load_json(payload, topic_eui)
    if type(obj) is not dict:
        raise Rejected(Reason.NOT_OBJECT, "ChirpStack event is not a JSON object", topic_eui)
    info = obj_at(obj, "deviceInfo", "ChirpStack uplink", topic_eui)
    dev_eui = dev_eui_of(info.get("devEui"), topic_eui)
    name = info.get("deviceName")
    device_id = name if type(name) is str and name else None
    if dev_eui is None and device_id is None:
        raise Rejected(Reason.BAD_FORMAT, "deviceInfo has neither devEui nor deviceName", None)
    if topic_eui is not None and dev_eui is not None and topic_eui != dev_eui:
        raise Rejected(
            Reason.BAD_TOPIC,
            f"topic names dev_eui {topic_eui} but the event is from {dev_eui}",
            device_id,
        )
    values = obj.get("object")
    if type(values) is not dict:
        raise Rejected(
            Reason.BAD_FORMAT,
            "uplink has no decoded object: give the device profile a codec",
            device_id,
        )
    return readings(device_id, dev_eui, values, obj.get("time"), obj.get("rxInfo"), obj.get("fCnt"))
