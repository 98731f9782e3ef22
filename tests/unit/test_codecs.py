"""Partner formats (SenML, The Things Stack v3, ChirpStack v4) and hostile input, table-driven
from realistic payloads written after each format's public documentation."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import Registry, parse_site
from ingest.codecs import Router, topic_matches
from ingest.codecs._time import parse_time_ms
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from ingest.reading import DeadLetter, NoReading, Reason, Rejected
from ingest.validate import Validator
from tests.strategies import json_values

# Run again with the clock 400 days ahead by scripts/test (LoRaWAN and SenML time limits).
pytestmark = pytest.mark.shifted_clock

SITE = """
site: kera
sources:
  - codec: native
  - codec: tts_v3
  - codec: chirpstack_v4
  - codec: senml
devices:
  - {id: em-main, kind: energy_meter, space: main-hall}
  - {id: occ-cafe, kind: occupancy, space: cafe}
  - id: bin-bio-1
    kind: waste_bin
    space: yard
    depth_mm: 1000
    fraction: bio
    dev_eui: 70B3D57ED0061001
    field_map: {distance: {to: distance_mm, scale: 10}, battery: battery_pct, rssi: null}
  - {id: bin-glass-1, kind: waste_bin, space: yard, depth_mm: 1000, fraction: glass,
     dev_eui: 70b3d57ed0061004, field_map: {distance: {to: distance_mm, scale: 10}}}
"""
REG = Registry(parse_site(SITE))
ROUTER = Router(REG.site)
VALIDATOR = Validator(REG, max_future_s=300, max_age_s=30 * 86400)
NOW = parse_time_ms("2026-11-02T08:00:05Z")

TTS_TOPIC = "v3/kera-waste@ttn/devices/eui-70b3d57ed0061001/up"
TTS_UPLINK: dict[str, Any] = {
    "end_device_ids": {
        "device_id": "eui-70b3d57ed0061001",
        "application_ids": {"application_id": "kera-waste"},
        "dev_eui": "70B3D57ED0061001",
        "join_eui": "0000000000000000",
        "dev_addr": "260B1234",
    },
    "correlation_ids": ["as:up:01JC9Z5Y6K3", "gs:conn:01JC9Y2", "ns:uplink:01JC9Z5Y4"],
    "received_at": "2026-11-02T08:00:00.123456789Z",
    "uplink_message": {
        "session_key_id": "AZL0xX5v9yTnk3b1",
        "f_port": 2,
        "f_cnt": 1234,
        "frm_payload": "AZwAVw==",
        "decoded_payload": {"distance": 41.2, "battery": 87, "rssi": -97},
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": "kera-gw-1", "eui": "B827EBFFFE000001"},
                "time": "2026-11-02T08:00:00.091Z",
                "timestamp": 2431246467,
                "rssi": -97,
                "channel_rssi": -97,
                "snr": 7.25,
                "uplink_token": "ChcKFQoJa2VyYS1ndy0xEgi4J+v//gAAARCD",
                "received_at": "2026-11-02T08:00:00.095Z",
            },
            {"gateway_ids": {"gateway_id": "kera-gw-2"}, "rssi": -112, "snr": -4.5},
        ],
        "settings": {
            "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}},
            "frequency": "868100000",
        },
        "received_at": "2026-11-02T08:00:00.101Z",
        "consumed_airtime": "0.061696s",
        "network_ids": {"net_id": "000013", "tenant_id": "ttn", "cluster_id": "eu1"},
    },
}

CS_TOPIC = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/70b3d57ed0061004/event/up"
CS_UPLINK: dict[str, Any] = {
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    "time": "2026-11-02T08:00:00.541+00:00",
    "deviceInfo": {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "tenantName": "Kera",
        "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
        "applicationName": "waste",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "ultrasonic-fill",
        "deviceName": "glass bin by the gate",
        "devEui": "70b3d57ed0061004",
        "deviceClassEnabled": "CLASS_A",
        "tags": {},
    },
    "devAddr": "00189440",
    "adr": True,
    "dr": 5,
    "fCnt": 10,
    "fPort": 1,
    "confirmed": False,
    "data": "AZIB",
    "object": {"distance": 63.5},
    "rxInfo": [
        {
            "gatewayId": "0016c001f153a14c",
            "uplinkId": 4217106255,
            "rssi": -36,
            "snr": 10.5,
            "channel": 2,
            "location": {},
            "context": "EFwMtA==",
            "crcStatus": "CRC_OK",
        }
    ],
    "txInfo": {"frequency": 868500000, "modulation": {"lora": {"bandwidth": 125000}}},
}

SENML_TOPIC = "kera/kera/senml/gw-1"
SENML_ENERGY = [
    {"bn": "em-main/", "bt": 1793606400, "n": "power_w", "u": "W", "v": 5230.5},
    {"n": "energy_kwh", "u": "kWh", "v": 18234.112},
    {"n": "voltage_v", "u": "V", "v": 229.8},
    {"n": "power_w", "u": "kW", "v": 5.1, "t": 2},
    {"n": "energy_kwh", "u": "Wh", "s": 18234126, "t": 2},
]


def readings(topic: str, payload: bytes | object) -> list[tuple[str, str, int, dict[str, Any]]]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    decoded = ROUTER.route(topic).decode(topic, raw, "kera", NOW)
    out = []
    for d in decoded:
        r = VALIDATOR.check(d, NOW)
        out.append((r.measurement, r.device.id, r.time_ms, r.fields))
    return out


def reason(topic: str, payload: bytes | object) -> Reason:
    with pytest.raises(Rejected) as info:
        readings(topic, payload)
    return info.value.reason


def test_tts_v3_uplink() -> None:
    got = readings(TTS_TOPIC, TTS_UPLINK)
    t = parse_time_ms("2026-11-02T08:00:00.123Z")
    assert got == [
        (
            "waste_bin",
            "bin-bio-1",
            t,
            {"distance_mm": 412.0, "battery_pct": 87.0, "fill_pct": pytest.approx(58.8)},
        ),
        (
            "device_status",
            "bin-bio-1",
            t,
            {"rssi_dbm": -97.0, "snr_db": 7.25, "gateways": 2, "frame_counter": 1234},
        ),
    ]


def test_chirpstack_v4_uplink_matched_by_dev_eui() -> None:
    got = readings(CS_TOPIC, CS_UPLINK)
    t = parse_time_ms("2026-11-02T08:00:00.541Z")
    assert got[0] == (
        "waste_bin",
        "bin-glass-1",
        t,
        {"distance_mm": 635.0, "fill_pct": pytest.approx(36.5)},
    )
    assert got[1] == (
        "device_status",
        "bin-glass-1",
        t,
        {"rssi_dbm": -36.0, "snr_db": 10.5, "gateways": 1, "frame_counter": 10},
    )


def test_senml_pack_resolves_base_values_times_and_units() -> None:
    got = readings(SENML_TOPIC, SENML_ENERGY)
    assert got == [
        (
            "energy",
            "em-main",
            1_793_606_400_000,
            {"power_w": 5230.5, "energy_kwh": 18234.112, "voltage_v": 229.8},
        ),
        (
            "energy",
            "em-main",
            1_793_606_402_000,
            {"power_w": 5100.0, "energy_kwh": pytest.approx(18234.126)},
        ),
    ]


def test_senml_units_relative_time_base_value_and_eui_names() -> None:
    pack = [
        {"bn": "occ-cafe:", "n": "people", "u": "count", "v": 14, "t": -5},
        {"n": "temperature_c", "u": "K", "v": 294.55, "t": -5},
        {"n": "humidity_pct", "u": "%RH", "v": 33, "t": -5},
        {
            "bn": "urn:dev:eui64:70B3D57ED0061001:",
            "bv": 50,
            "n": "distance_mm",
            "u": "cm",
            "v": -20,
        },
    ]
    got = readings(SENML_TOPIC, pack)
    assert got[0][:3] == ("occupancy", "occ-cafe", NOW - 5000)
    assert got[0][3] == {
        "people": 14,
        "temperature_c": pytest.approx(21.4),
        "humidity_pct": 33.0,
    }
    assert got[1][:3] == ("waste_bin", "bin-bio-1", NOW)
    assert got[1][3]["distance_mm"] == 300.0


def test_native_payloads_still_pass_through_a_field_mapped_device() -> None:
    assert readings("kera/kera/bin-bio-1/telemetry", {"distance_mm": 250})[0][3] == {
        "distance_mm": 250.0,
        "fill_pct": 75.0,
    }
    assert readings("kera/kera/bin-bio-1/telemetry", {"distance": 25, "rssi": -80})[0][3] == {
        "distance_mm": 250.0,
        "fill_pct": 75.0,
    }


def _tts(**changes: Any) -> dict[str, Any]:
    msg = copy.deepcopy(TTS_UPLINK)
    for path, value in changes.items():
        node = msg
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        if value is None:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return msg


def _cs(**changes: Any) -> dict[str, Any]:
    msg = copy.deepcopy(CS_UPLINK)
    for key, value in changes.items():
        if value is None:
            del msg[key]
        else:
            msg[key] = value
    return msg


REJECTIONS: list[tuple[str, str, bytes | object, Reason]] = [
    ("tts: no formatter", TTS_TOPIC, _tts(uplink_message__decoded_payload=None), Reason.BAD_FORMAT),
    ("tts: a join, not an uplink", TTS_TOPIC, _tts(uplink_message=None), Reason.BAD_FORMAT),
    (
        "tts: another device's topic",
        "v3/kera-waste@ttn/devices/someone-else/up",
        TTS_UPLINK,
        Reason.BAD_TOPIC,
    ),
    (
        "tts: unregistered",
        TTS_TOPIC.replace("eui-70b3d57ed0061001", "eui-0000000000000001"),
        _tts(
            end_device_ids__device_id="eui-0000000000000001",
            end_device_ids__dev_eui="0000000000000001",
        ),
        Reason.UNKNOWN_DEVICE,
    ),
    ("tts: bad dev_eui", TTS_TOPIC, _tts(end_device_ids__dev_eui="70B3D5"), Reason.BAD_FORMAT),
    ("tts: bad time", TTS_TOPIC, _tts(received_at="yesterday"), Reason.BAD_TIMESTAMP),
    (
        "tts: decoder says cm as text",
        TTS_TOPIC,
        _tts(uplink_message__decoded_payload={"distance": "41"}),
        Reason.WRONG_TYPE,
    ),
    (
        "tts: implausible battery",
        TTS_TOPIC,
        _tts(uplink_message__decoded_payload={"distance": 41, "battery": 140}),
        Reason.OUT_OF_RANGE,
    ),
    ("cs: no codec", CS_TOPIC, _cs(object=None), Reason.BAD_FORMAT),
    ("cs: no deviceInfo", CS_TOPIC, _cs(deviceInfo=None), Reason.BAD_FORMAT),
    (
        "cs: topic and devEui differ",
        CS_TOPIC.replace("70b3d57ed0061004", "70b3d57ed0061001"),
        CS_UPLINK,
        Reason.BAD_TOPIC,
    ),
    (
        "cs: in the future",
        CS_TOPIC,
        _cs(time="2026-11-02T09:00:00Z"),
        Reason.TS_IN_FUTURE,
    ),
    ("cs: far too old", CS_TOPIC, _cs(time="2026-01-01T00:00:00Z"), Reason.TS_TOO_OLD),
    ("senml: not a pack", SENML_TOPIC, {"n": "em-main/power_w", "v": 1}, Reason.BAD_FORMAT),
    ("senml: record not object", SENML_TOPIC, [1, 2], Reason.BAD_FORMAT),
    ("senml: no device in name", SENML_TOPIC, [{"n": "power_w", "v": 1}], Reason.BAD_FORMAT),
    (
        "senml: wrong unit",
        SENML_TOPIC,
        [{"bn": "em-main/", "n": "power_w", "u": "Cel", "v": 1}],
        Reason.BAD_UNIT,
    ),
    (
        "senml: string value",
        SENML_TOPIC,
        [{"bn": "em-main/", "n": "power_w", "vs": "1"}, {"n": "energy_kwh", "v": 1}],
        Reason.WRONG_TYPE,
    ),
    (
        "senml: field twice at one time",
        SENML_TOPIC,
        [{"bn": "occ-cafe/", "n": "people", "v": 1}, {"n": "people", "v": 2}],
        Reason.BAD_FORMAT,
    ),
    (
        "senml: two values in a record",
        SENML_TOPIC,
        [{"bn": "occ-cafe/", "n": "people", "v": 1, "vb": True}],
        Reason.BAD_FORMAT,
    ),
    ("senml: unknown device", SENML_TOPIC, [{"n": "ghost/people", "v": 1}], Reason.UNKNOWN_DEVICE),
    ("topic of no source", "factory/line-3/temp", {"people": 1}, Reason.BAD_TOPIC),
    (
        "native: future",
        "kera/kera/occ-cafe/telemetry",
        {"ts": NOW + 3_600_000, "people": 1},
        Reason.TS_IN_FUTURE,
    ),
    (
        "native: too old",
        "kera/kera/occ-cafe/telemetry",
        {"ts": NOW - 40 * 86_400_000, "people": 1},
        Reason.TS_TOO_OLD,
    ),
    ("nesting bomb", "kera/kera/occ-cafe/telemetry", b"[" * 50_000, Reason.JSON_TOO_DEEP),
    (
        "nesting past the limit",
        TTS_TOPIC,
        _tts(uplink_message__decoded_payload={"a": json.loads("[" * 20 + "]" * 20)}),
        Reason.JSON_TOO_DEEP,
    ),
    (
        "key-count bomb",
        "kera/kera/occ-cafe/telemetry",
        {f"k{i}": 0 for i in range(5000)},
        Reason.TOO_MANY_KEYS,
    ),
    (
        "array bomb",
        SENML_TOPIC,
        [{"n": "occ-cafe/people", "v": i} for i in range(3000)],
        Reason.TOO_MANY_KEYS,
    ),
    (
        "mapped field not a number",
        "kera/kera/bin-bio-1/telemetry",
        {"distance": "far"},
        Reason.WRONG_TYPE,
    ),
]


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [r[1:] for r in REJECTIONS],
    ids=[r[0] for r in REJECTIONS],
)
def test_rejections(topic: str, payload: bytes | object, expected: Reason) -> None:
    assert reason(topic, payload) is expected


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("v3/+/devices/+/up", "v3/app@ttn/devices/d1/up", True),
        ("v3/+/devices/+/up", "v3/app@ttn/devices/d1/join", False),
        ("kera/#", "kera/kera/x/telemetry", True),
        ("kera/+/x", "kera/kera/x/telemetry", False),
        ("a/b", "a/b", True),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


def test_a_message_is_all_or_nothing() -> None:
    stats = Stats()
    pipeline = Pipeline(REG, stats)
    bad_second = [{"bn": "em-main/", "n": "power_w", "v": 1}, {"n": "energy_kwh", "v": -5}]
    result = pipeline.handle(SENML_TOPIC, json.dumps(bad_second).encode(), NOW)
    assert isinstance(result, DeadLetter)
    assert result.reason is Reason.OUT_OF_RANGE
    lines = pipeline.handle(TTS_TOPIC, json.dumps(TTS_UPLINK).encode(), NOW)
    assert isinstance(lines, list)
    assert len(lines) == 2
    assert lines[0].startswith("waste_bin,")
    assert lines[1].startswith("device_status,")
    assert stats.messages == 2
    assert stats.accepted == 1
    assert stats.rejected == {"out_of_range": 1}


def test_site_file_checks_sources_and_field_maps() -> None:
    from devices import SiteConfigError

    with pytest.raises(SiteConfigError, match="has no field 'distance_cm'"):
        parse_site(
            "site: kera\ndevices:\n  - {id: b, kind: waste_bin, space: y, depth_mm: 9,"
            " field_map: {distance: distance_cm}}\n"
        )
    with pytest.raises(SiteConfigError, match="more than one source"):
        parse_site(
            "site: kera\nsources: [{codec: native},"
            " {codec: senml, topics: ['kera/{site}/+/status']}]\n"
            "devices:\n  - {id: o, kind: occupancy, space: y}\n"
        )
    with pytest.raises(SiteConfigError, match="whole topic level"):
        parse_site(
            "site: kera\nsources: [{codec: senml, topics: ['kera/sen+ml']}]"
            "\ndevices:\n  - {id: o, kind: occupancy, space: y}\n"
        )


# -- hypothesis: nothing but Rejected, whatever arrives ------------------------------------------

TOPICS = [TTS_TOPIC, CS_TOPIC, SENML_TOPIC, "kera/kera/occ-cafe/telemetry", "kera/kera/x/status"]


def _verdict(topic: str, payload: bytes) -> None:
    try:
        for measurement, _device, time_ms, fields in readings(topic, payload):
            assert measurement in {"energy", "occupancy", "waste_bin", "device_status"}
            assert fields
            assert isinstance(time_ms, int)
    except Rejected as exc:
        assert isinstance(exc.reason, Reason)  # noqa: PT017 - either outcome is valid; a typed error is the property
    except NoReading as none:
        assert none.detail  # noqa: PT017 - either outcome is valid; a typed error is the property


@settings(max_examples=300)
@given(st.sampled_from(TOPICS), st.binary(max_size=400))
def test_arbitrary_bytes_only_reject(topic: str, payload: bytes) -> None:
    _verdict(topic, payload)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TOPICS), json_values)
def test_arbitrary_json_only_rejects(topic: str, value: object) -> None:
    _verdict(topic, json.dumps(value).encode())


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


SAMPLES = [(TTS_TOPIC, TTS_UPLINK), (CS_TOPIC, CS_UPLINK), (SENML_TOPIC, SENML_ENERGY)]


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data())
def test_realistic_payloads_with_one_value_replaced_only_reject(
    sample: tuple[str, Any], data: st.DataObject
) -> None:
    """Deeper than random JSON gets: a real uplink with any one part replaced by anything."""
    topic, message = sample
    message = copy.deepcopy(message)
    path = data.draw(st.sampled_from(_paths(message)[1:]))
    node = message
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(json_values)
    _verdict(topic, json.dumps(message).encode())


# -- ChirpStack v3, radio status on its own, SenML records with their own times ------------------

V3_SITE = Registry(
    parse_site(
        """
site: kera
sources: [{codec: chirpstack_v3}, {codec: senml}]
devices:
  - id: garden-sensor
    kind: indoor_air
    space: garden
    dev_eui: "0202020202020202"
    field_map: {temperatureSensor: temperature_c, humiditySensor: humidity_pct}
  - id: em-main
    kind: energy_meter
    space: hall
    field_map: {voltage: voltage_v, current: current_a}
"""
    )
)
# The "up" event of the ChirpStack v3 application server's integration documentation
# (protobuf JSON marshaler: devEUI and gatewayID in base64, the codec's output in objectJSON).
CS3_UP: dict[str, Any] = {
    "applicationID": "123",
    "applicationName": "temperature-sensor",
    "deviceName": "garden-sensor",
    "devEUI": "AgICAgICAgI=",
    "rxInfo": [
        {
            "gatewayID": "AwMDAwMDAwM=",
            "time": "2019-11-08T13:59:25.048445Z",
            "timeSinceGPSEpoch": None,
            "rssi": -48,
            "loRaSNR": 9,
            "channel": 5,
            "rfChain": 0,
            "board": 0,
            "antenna": 0,
            "location": {"latitude": 52.3740364, "longitude": 4.9144401, "altitude": 10.5},
            "fineTimestampType": "NONE",
            "context": "9u/uvA==",
            "uplinkID": "jhMh8Gq6RAOChSKbi83RHQ==",
        }
    ],
    "txInfo": {
        "frequency": 868100000,
        "modulation": "LORA",
        "loRaModulationInfo": {
            "bandwidth": 125,
            "spreadingFactor": 11,
            "codeRate": "4/5",
            "polarizationInversion": False,
        },
    },
    "adr": True,
    "dr": 1,
    "fCnt": 10,
    "fPort": 5,
    "data": "...",
    "objectJSON": '{"temperatureSensor":25,"humiditySensor":32}',
    "tags": {"key": "value"},
}
CS3_TOPIC = "application/123/device/0202020202020202/event/up"


def _v3(body: dict[str, Any]) -> list[Any]:
    v = Validator(V3_SITE)
    router = Router(V3_SITE.site)
    raw = json.dumps(body).encode()
    return [v.check(d, NOW) for d in router.route(CS3_TOPIC).decode(CS3_TOPIC, raw, "kera", NOW)]


def test_chirpstack_v3_uplink_from_its_documentation() -> None:
    body = dict(CS3_UP, data="AQ==")  # the docs' "..." stands for the payload
    reading, status = _v3(body)
    assert reading.device.id == "garden-sensor"
    assert reading.measurement == "indoor_air"
    assert reading.fields == {"temperature_c": 25.0, "humidity_pct": 32.0}
    assert reading.time_ms == parse_time_ms("2019-11-08T13:59:25.048Z")
    assert status.fields == {"rssi_dbm": -48.0, "snr_db": 9.0, "gateways": 1, "frame_counter": 10}


def test_chirpstack_v3_legacy_json_marshaler() -> None:
    """json_v3: hex devEUI and the decoded `object` inline (older v3 servers)."""
    body = {k: v for k, v in CS3_UP.items() if k not in ("objectJSON", "data")}
    body |= {"devEUI": "0202020202020202", "object": {"temperatureSensor": 21.5}}
    reading, _ = _v3(body)
    assert reading.fields == {"temperature_c": 21.5}
    bad = dict(CS3_UP, objectJSON="{not json")
    with pytest.raises(Rejected) as info:
        _v3(bad)
    assert info.value.reason is Reason.BAD_FORMAT
    assert "v3" in info.value.detail


def test_neither_chirpstack_version_says_so() -> None:
    with pytest.raises(Rejected) as info:
        _v3({"applicationName": "x", "object": {}})
    assert "neither deviceInfo (v4) nor devEUI/applicationID (v3)" in info.value.detail


def test_radio_status_is_kept_when_the_reading_is_rejected() -> None:
    stats = Stats()
    pipeline = Pipeline(REG, stats)
    broken = copy.deepcopy(TTS_UPLINK)
    broken["uplink_message"]["decoded_payload"] = {"distance": "far", "battery": 87}
    result = pipeline.handle(TTS_TOPIC, json.dumps(broken).encode(), NOW)
    assert isinstance(result, DeadLetter)
    assert result.reason is Reason.WRONG_TYPE
    assert len(result.kept) == 1
    assert result.kept[0].startswith("device_status,")
    assert "rssi_dbm=-97.0" in result.kept[0]
    assert "frame_counter=1234i" in result.kept[0]
    from ingest.storage.deadletter import entry

    assert entry(result)["stored"] == ["device_status"]


def test_senml_multiple_measurements_with_their_own_times() -> None:
    """RFC 8428 section 5.1.2 ("Multiple Measurements"), with the base name of a registered
    meter: a voltage and six currents at their own times become partial readings."""
    pack = [
        {"bn": "em-main:", "bt": 1.276020076001e09, "bu": "A", "bver": 5,
         "n": "voltage", "u": "V", "v": 120.1},
        {"n": "current", "t": -5, "v": 1.2},
        {"n": "current", "t": -4, "v": 1.3},
        {"n": "current", "t": -3, "v": 1.4},
        {"n": "current", "t": -2, "v": 1.5},
        {"n": "current", "t": -1, "v": 1.6},
        {"n": "current", "v": 1.7},
    ]  # fmt: skip
    topic = "kera/kera/senml/gw"
    decoded = (
        Router(V3_SITE.site).route(topic).decode(topic, json.dumps(pack).encode(), "kera", NOW)
    )
    readings = sorted(
        (r.time_ms, r.fields) for r in map(lambda d: Validator(V3_SITE).check(d, NOW), decoded)
    )
    base = 1_276_020_076_001
    assert readings == [
        (base - 5000, {"current_a": 1.2}), (base - 4000, {"current_a": 1.3}),
        (base - 3000, {"current_a": 1.4}), (base - 2000, {"current_a": 1.5}),
        (base - 1000, {"current_a": 1.6}), (base, {"voltage_v": 120.1, "current_a": 1.7}),
    ]  # fmt: skip


def test_the_alert_observers_judge_encodes_nothing_and_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Beside shared subscriptions the evaluator sees every message but stores none: no lines
    are encoded and the rejections the writing ingestor logs are not logged twice."""
    seen: list[str] = []
    stats = Stats()
    judge = Pipeline(REG, stats, observe=lambda r: seen.append(r.measurement), judge_only=True)
    with caplog.at_level("WARNING", logger="ingest.rejected"):
        assert judge.handle(TTS_TOPIC, json.dumps(TTS_UPLINK).encode(), NOW) == []
        bad = judge.handle("kera/kera/occ-cafe/telemetry", b'{"people": "many"}', NOW)
    assert seen == ["waste_bin", "device_status"]
    assert isinstance(bad, DeadLetter)
    assert stats.rejected == {"wrong_type": 1}
    assert not caplog.records
