"""The Things Stack v3 uplink messages (MQTT integration).

Topic: v3/{application}@{tenant}/devices/{device}/up. The payload's parts used here:

    end_device_ids.device_id, end_device_ids.dev_eui     which device
    received_at                                          when the network server got it
    uplink_message.decoded_payload                       the payload formatter's output
    uplink_message.frm_payload, f_port                   the raw payload, for a device codec
    uplink_message.f_cnt, uplink_message.rx_metadata[]   radio metadata -> device_status

https://www.thethingsindustries.com/docs/integrations/data-formats/
"""

from __future__ import annotations

from ingest.codecs._json import load_json
from ingest.codecs._lorawan import dev_eui_of, frm_payload, obj_at, radio, readings
from ingest.reading import Decoded, Reason, Rejected


def decode(topic: str, payload: bytes, site: str, received_ms: int = 0) -> list[Decoded]:
    levels = topic.split("/")
    topic_device = levels[3] if len(levels) == 5 and levels[2] == "devices" else None
    obj = load_json(payload, topic_device)
    if type(obj) is not dict:
        raise Rejected(Reason.NOT_OBJECT, "TTS uplink is not a JSON object", topic_device)
    ids = obj_at(obj, "end_device_ids", "TTS uplink", topic_device)
    device_id = ids.get("device_id")
    if type(device_id) is not str or not device_id:
        raise Rejected(Reason.BAD_FORMAT, "end_device_ids.device_id missing", topic_device)
    if topic_device is not None and topic_device != device_id:
        raise Rejected(
            Reason.BAD_TOPIC,
            f"topic names device {topic_device!r} but the uplink is from {device_id!r}",
            device_id,
        )
    dev_eui = dev_eui_of(ids.get("dev_eui"), device_id)
    up = obj_at(obj, "uplink_message", "not an uplink", device_id)
    return readings(
        device_id, dev_eui, up.get("decoded_payload"),
        obj.get("received_at", up.get("received_at")),
        radio(up.get("rx_metadata"), up.get("f_cnt")),
        frm_payload(up.get("frm_payload"), device_id), up.get("f_port"),
    )  # fmt: skip
