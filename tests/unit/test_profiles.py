"""Device profiles, the field_map language and device codecs, table-driven from payloads in the
vendors' and network servers' public documentation (each profile names its source)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import Registry, SiteConfigError, parse_site
from devices.profiles import load_profile, profile_names
from ingest.codecs import Router
from ingest.codecs._time import parse_time_ms
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from ingest.reading import DeadLetter, FieldValue, NoReading, Reason, Rejected
from ingest.validate import Validator
from tests.strategies import json_values

# Run again with the clock 400 days ahead by scripts/test (vendor payloads, time limits).
pytestmark = pytest.mark.shifted_clock

NOW = parse_time_ms("2026-11-02T08:00:05Z")

# What each profile's documented example must become: the point's fields, by hand from the
# vendor's documentation (units converted where the contract's differ).
EXPECTED: dict[str, dict[str, object]] = {
    "milesight-am103": {
        "battery_pct": 100.0, "co2_ppm": 453.0, "temperature_c": 28.0, "humidity_pct": 54.5,
    },
    "milesight-am307": {
        "temperature_c": 23.8, "humidity_pct": 62.0, "motion": True, "co2_ppm": 936.0,
        "tvoc_index": 37.0, "pressure_hpa": 1008.6, "pm2_5_ugm3": 32.0, "pm10_ugm3": 48.0,
    },
    "milesight-em300-th": {"battery_pct": 92.0, "temperature_c": 30.8, "humidity_pct": 50.5},
    "milesight-em500-udl": {"battery_pct": 100.0, "distance_mm": 30.0, "fill_pct": 98.5},
    "milesight-em400-tld": {
        "battery_pct": 92.0, "temperature_c": 25.7, "distance_mm": 2116.0, "tilt": True,
        "fill_pct": 0.0,
    },
    "milesight-vs121": {
        "people": 3,
    },
    "milesight-vs133": {
        "people": 34, "zone_1_people": 2, "zone_2_people": 16, "zone_3_people": 7,
        "zone_4_people": 9,
    },
    "elsys-ers": {
        "temperature_c": 22.6, "humidity_pct": 41.0, "illuminance_lux": 39.0, "motion": True,
    },
    "elsys-ers-co2": {
        "temperature_c": 22.6, "humidity_pct": 41.0, "illuminance_lux": 39.0, "motion": True,
        "co2_ppm": 776.0,
    },
    "dragino-ldds75": {
        "battery_v": 3.331, "distance_mm": 1783.0, "temperature_c": 21.5,
        "fill_pct": pytest.approx(10.85),
    },
    "kamstrup-multical603-wmbusmeters": {
        "heat_energy_kwh": 165.0, "volume_m3": 5.45, "flow_m3h": 0.018, "supply_temp_c": 53.28,
        "return_temp_c": 23.04, "delta_t_k": pytest.approx(30.24),
    },
}  # fmt: skip


def _site(extra: str = "") -> Registry:
    lines = ["site: kera", "sources: [{codec: native}, {codec: tts_v3}, {codec: chirpstack_v3}]"]
    lines.append("devices:")
    for i, name in enumerate(profile_names()):
        p = load_profile(name)
        attrs = "depth_mm: 2000, " if p.kind == "waste_bin" else ""
        lines.append(
            f"  - {{id: {name}, kind: {p.kind}, space: lab, profile: {name}, {attrs}"
            f"dev_eui: '{i + 1:016x}'}}"
        )
    return Registry(parse_site("\n".join(lines) + "\n" + extra))


REG = _site()
ROUTER = Router(REG.site)
VALIDATOR = Validator(REG)


def _eui(device: str) -> str:
    found = REG.get(device)
    assert found is not None
    assert found.dev_eui is not None
    return found.dev_eui


def _tts(device: str, eui: str, up: dict[str, Any]) -> tuple[str, bytes]:
    eui = eui if device not in REG else _eui(device)
    body = {
        "end_device_ids": {"device_id": device, "dev_eui": eui.upper()},
        "received_at": "2026-11-02T08:00:00Z",
        "uplink_message": {"f_cnt": 7, "rx_metadata": [{"rssi": -101, "snr": -3.5}], **up},
    }
    return f"v3/kera@ttn/devices/{device}/up", json.dumps(body).encode()


def _check(topic: str, payload: bytes) -> list[Any]:
    return [
        VALIDATOR.check(d, NOW) for d in ROUTER.route(topic).decode(topic, payload, "kera", NOW)
    ]


def test_every_bundled_profile_is_covered_here() -> None:
    """Profiles with a decoded example (LoRaWAN) here; those of Wi-Fi and Zigbee firmwares,
    with published messages, in test_firmware.py."""
    assert set(EXPECTED) == {n for n in profile_names() if load_profile(n).example}
    assert len(EXPECTED) >= 10
    assert all(load_profile(n).example or load_profile(n).messages for n in profile_names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_profile_maps_its_documented_example(name: str) -> None:
    profile = load_profile(name)
    assert profile.documentation.startswith("https://")
    assert profile.example
    device = REG.get(name)
    assert device is not None
    topic, payload = _tts(name, device.dev_eui or "", {"decoded_payload": profile.example})
    reading, status = _check(topic, payload)
    assert reading.measurement == device.spec.measurement
    assert reading.fields == EXPECTED[name]
    assert status.fields == {"rssi_dbm": -101.0, "snr_db": -3.5, "gateways": 1, "frame_counter": 7}


def test_vs121_region_frame_and_device_information_frame() -> None:
    """Two more frames from Milesight's VS121 documentation: per-region counts map to zones,
    and the device-information frame carries no reading and is counted, not dead-lettered."""
    regions = {f"region_{n}_count": 0 for n in range(1, 17)}
    regions |= {"region_2_count": 1, "region_8_count": 3, "region_9_count": 1}
    topic, payload = _tts("milesight-vs121", "0000000000000006", {"decoded_payload": regions})
    reading, _ = _check(topic, payload)
    assert reading.fields["zone_8_people"] == 3
    assert len(reading.fields) == 16
    info = {
        "protocol_version": 1, "sn": "6600b0940976", "hardware_version": "1.0",
        "firmware_version": "31.7.0.75",
    }  # fmt: skip
    topic, payload = _tts("milesight-vs121", "0000000000000006", {"decoded_payload": info})
    stats = Stats()
    lines = Pipeline(REG, stats).handle(topic, payload, NOW)
    assert isinstance(lines, list)
    assert len(lines) == 1
    assert lines[0].startswith("device_status,")
    assert stats.no_reading == 1
    assert stats.accepted == 0
    assert not stats.rejected
    assert stats.unknown_fields[("milesight-vs121", "sn")] == 1


def test_dragino_words_in_place_of_a_distance_are_rejected_precisely() -> None:
    topic, payload = _tts(
        "dragino-ldds75", "000000000000000a",
        {"decoded_payload": {"Node_type": "LDDS75", "Bat": 3.3, "Distance": "No Sensor"}},
    )  # fmt: skip
    with pytest.raises(Rejected) as info:
        _check(topic, payload)
    assert info.value.reason is Reason.WRONG_TYPE
    assert "No Sensor" in info.value.detail


def test_am103_raw_uplink_through_the_device_codec() -> None:
    """No decoded object from the network server: the profile's JavaScript codec decodes the
    documented frame 017564 03671801 04686D 077DC501."""
    raw = bytes.fromhex("0175640367180104686D077DC501")
    up = {"f_port": 85, "frm_payload": base64.b64encode(raw).decode()}
    topic, payload = _tts("milesight-am103", "0000000000000005", up)
    reading, _ = _check(topic, payload)
    assert reading.fields == EXPECTED["milesight-am103"]
    broken = {"f_port": 85, "frm_payload": base64.b64encode(b"\x99\x99\x01").decode()}
    topic, payload = _tts("milesight-am103", "0000000000000005", broken)
    with pytest.raises(Rejected) as info:
        _check(topic, payload)
    assert info.value.reason is Reason.CODEC_FAILED
    assert "unknown channel 0x99" in info.value.detail


def test_uplink_without_payload_is_no_reading_and_without_codec_a_clear_rejection() -> None:
    topic, payload = _tts("elsys-ers", "0000000000000002", {"f_port": 0})
    decoded = ROUTER.route(topic).decode(topic, payload, "kera", NOW)
    with pytest.raises(NoReading):
        VALIDATOR.check(decoded[0], NOW)
    raw = {"f_port": 5, "frm_payload": base64.b64encode(b"\x01\x00\xe2").decode()}
    topic, payload = _tts("elsys-ers", "0000000000000002", raw)
    with pytest.raises(Rejected) as info:
        _check(topic, payload)
    assert info.value.reason is Reason.BAD_FORMAT
    assert "codec" in info.value.detail


def _codec_site(tmp_path: Path, js: str) -> Registry:
    (tmp_path / "c.js").write_text(js)
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: kera\nsources: [{codec: tts_v3}]\ndevices:\n"
        "  - {id: d1, kind: indoor_air, space: lab, codec: c.js, dev_eui: '00000000000000aa'}\n"
    )
    return Registry.load(site)


@pytest.mark.parametrize(
    ("js", "words"),
    [
        ("function decodeUplink(i) { throw new Error('bad frame'); }", "bad frame"),
        ("function decodeUplink(i) { while (true) {} }", "interrupted"),
        ("function decodeUplink(i) { var a = []; while (true) a.push(new Array(1e5)); }", ""),
        ("function decodeUplink(i) { return 42; }", "not {data, errors}"),
        ("function decodeUplink(i) { return {data: [1]}; }", "no data object"),
        ("function nothing() {}", "defines none"),
    ],
)
def test_a_misbehaving_codec_costs_one_message(tmp_path: Path, js: str, words: str) -> None:
    reg = _codec_site(tmp_path, js)
    up = {"f_port": 1, "frm_payload": base64.b64encode(b"\x01\x02").decode()}
    topic, payload = _tts("d1", "00000000000000aa", up)
    pipeline = Pipeline(reg, Stats())
    for _ in range(2):  # the codec is rebuilt after a failure and fails the same way
        result = pipeline.handle(topic, payload, NOW)
        assert isinstance(result, DeadLetter)
        assert result.reason is Reason.CODEC_FAILED
        assert words in result.detail
        assert result.kept
        assert result.kept[0].startswith("device_status,")


def test_old_codec_signatures_run_too(tmp_path: Path) -> None:
    reg = _codec_site(
        tmp_path, "function Decode(fPort, bytes, variables) { return {co2_ppm: bytes[0] * 10}; }"
    )
    up = {"f_port": 1, "frm_payload": base64.b64encode(b"\x50").decode()}
    topic, payload = _tts("d1", "00000000000000aa", up)
    lines = Pipeline(reg, Stats()).handle(topic, payload, NOW)
    assert isinstance(lines, list)
    assert "co2_ppm=800" in lines[0]


# -- the mapping language ------------------------------------------------------------------------

MAPPED = parse_site(
    """
site: kera
devices:
  - id: pc-1
    kind: people_counter
    space: hall
    field_map:
      people: {expr: "region_1 + region_2 + region_3"}
      counts.in: count_in
      counts.out: count_out
      battery: {to: battery_pct, unit: "/"}
  - id: bin-1
    kind: waste_bin
    space: yard
    depth_mm: 1000
    field_map:
      position: {to: tilt, enum: {normal: false, tilt: true}}
      level: {to: distance_mm, unit: cm}
      volts: {to: battery_v, unit: V}
  - id: air-1
    kind: indoor_air
    space: room
    unknown_fields: reject
    field_map:
      temperature_c: {expr: "(temp_f - 32) * 5 / 9"}
      sensor.co2: co2_ppm
      quiet: null
"""
)
MAPPED_REG = Registry(MAPPED)
MAPPED_VALIDATOR = Validator(MAPPED_REG)


def _mapped(device: str, values: dict[str, object]) -> dict[str, FieldValue]:
    from ingest.codecs import native

    decoded = native.decode(f"kera/kera/{device}/telemetry", json.dumps(values).encode(), "kera")
    return MAPPED_VALIDATOR.check(decoded[0], NOW).fields


def test_mapping_sum_nested_paths_and_units() -> None:
    out = _mapped("pc-1", {"region_1": 2, "region_2": 16, "region_3": 7, "counts": {"in": 5}})
    assert out == {"people": 25, "count_in": 5}
    assert _mapped("pc-1", {"battery": 0.93}) == {"battery_pct": 93.0}
    # A frame without the regions passes the expression by.
    assert _mapped("pc-1", {"counts": {"out": 4}}) == {"count_out": 4}


def test_mapping_enumeration_units_in_strings_and_constants() -> None:
    out = _mapped("bin-1", {"position": "tilt", "level": "41.5 cm", "volts": "3384 mV"})
    assert out == {"tilt": True, "distance_mm": 415.0, "battery_v": 3.384, "fill_pct": 58.5}
    assert _mapped("bin-1", {"level": 40})["distance_mm"] == 400.0
    with pytest.raises(Rejected) as info:
        _mapped("bin-1", {"position": "upside-down"})
    assert info.value.reason is Reason.MAPPING_FAILED
    assert "upside-down" in info.value.detail
    with pytest.raises(Rejected) as unit:
        _mapped("bin-1", {"volts": "3.3 kg"})
    assert unit.value.reason is Reason.BAD_UNIT


def test_expression_over_a_field_of_its_own_name_and_reject_policy() -> None:
    out = _mapped("air-1", {"temp_f": 68, "sensor": {"co2": 640}, "quiet": 1})
    assert out == {"temperature_c": 20.0, "co2_ppm": 640.0}
    with pytest.raises(Rejected) as info:
        _mapped("air-1", {"temp_f": 50, "firmware": "2.1"})
    assert info.value.reason is Reason.UNKNOWN_FIELD
    assert "firmware" in info.value.detail


@pytest.mark.parametrize(
    ("field_map", "words"),
    [
        ("{people: {expr: 'x +'}}", "is not an expression"),
        ("{people: {expr: '__import__(\"os\")'}}", "only these functions"),
        ("{people: {expr: 'x.__class__'}}", "starting with _"),
        ("{people: {expr: 'x', to: people}}", "do not apply"),
        ("{a: {scale: 2}}", "give `to`"),
        ("{a: {to: battery_pct, unit: kg}}", "cannot be converted"),
        ("{a: nope}", "has no field 'nope'"),
    ],
)
def test_check_site_refuses_bad_mappings(field_map: str, words: str) -> None:
    with pytest.raises(SiteConfigError) as info:
        parse_site(
            "site: kera\ndevices:\n"
            f"  - {{id: p, kind: people_counter, space: h, field_map: {field_map}}}\n"
        )
    assert words in str(info.value)
    assert "'p'" in str(info.value)


def test_profile_must_exist_and_match_the_kind() -> None:
    with pytest.raises(SiteConfigError, match="no bundled profile 'acme-x'"):
        parse_site("site: k\ndevices:\n  - {id: a, kind: indoor_air, space: h, profile: acme-x}\n")
    with pytest.raises(SiteConfigError, match="is for kind 'waste_bin'"):
        parse_site(
            "site: k\ndevices:\n  - {id: a, kind: indoor_air, space: h, profile: dragino-ldds75}\n"
        )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["pc-1", "bin-1", "air-1"]),
    st.dictionaries(
        st.sampled_from(
            ["region_1", "region_2", "region_3", "counts", "battery", "position", "level",
             "volts", "temp_f", "sensor", "quiet", "x"]
        ),
        json_values,
        max_size=6,
    ),
)  # fmt: skip
def test_mappings_only_reject_on_arbitrary_json(device: str, values: dict[str, Any]) -> None:
    try:
        _mapped(device, values)
    except Rejected as exc:
        assert isinstance(exc.reason, Reason)  # noqa: PT017 - either outcome is valid; a typed error is the property
    except NoReading:
        pass


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=0, max_value=255))
def test_codec_only_rejects_on_arbitrary_bytes(raw: bytes, port: int) -> None:
    up = {"f_port": port, "frm_payload": base64.b64encode(raw).decode()}
    topic, payload = _tts("milesight-am103", "0000000000000005", up)
    try:
        _check(topic, payload)
    except Rejected as exc:
        assert exc.reason in {Reason.CODEC_FAILED, Reason.OUT_OF_RANGE, Reason.WRONG_TYPE}  # noqa: PT017 - either outcome is valid; a typed error is the property
    except NoReading:
        pass
