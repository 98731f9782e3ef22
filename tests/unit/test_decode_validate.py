from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import Registry, parse_site
from devices.contract import KINDS
from ingest.codecs import native
from ingest.codecs._time import parse_time_ms
from ingest.reading import NoReading, Reason, Rejected
from ingest.validate import Validator
from tests.strategies import json_values

# Run again with the clock 400 days ahead by scripts/test (the age and future limits).
pytestmark = pytest.mark.shifted_clock

REG = Registry(
    parse_site(
        "site: kera\ndevices:\n"
        "  - {id: em-1, kind: energy_meter, space: hall}\n"
        "  - {id: occ-1, kind: occupancy, space: room 1}\n"
        "  - {id: bin-1, kind: waste_bin, space: yard, depth_mm: 1000, fraction: bio}\n"
    )
)
VALIDATOR = Validator(REG)
NOW = 1_790_000_000_000
TOPIC = "kera/kera/{}/telemetry"


def accept(device: str, payload: object) -> dict[str, object]:
    decoded = native.decode(TOPIC.format(device), json.dumps(payload).encode(), "kera")[0]
    reading = VALIDATOR.check(decoded, NOW)
    return {"measurement": reading.measurement, "time": reading.time_ms, **reading.fields}


def reason(device: str, payload: bytes | object, topic: str | None = None) -> Reason:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(Rejected) as info:
        VALIDATOR.check(native.decode(topic or TOPIC.format(device), raw, "kera")[0], NOW)
    return info.value.reason


def test_energy_reading() -> None:
    out = accept("em-1", {"ts": 1_790_000_000_123, "power_w": 1200, "energy_kwh": 5.5})
    assert out == {
        "measurement": "energy",
        "time": 1_790_000_000_123,
        "power_w": 1200.0,
        "energy_kwh": 5.5,
    }
    assert type(out["power_w"]) is float


def test_receive_time_when_ts_absent_and_rfc3339() -> None:
    assert accept("occ-1", {"people": 3})["time"] == NOW
    out = accept("occ-1", {"ts": "2026-09-21T10:00:00.250+03:00", "people": 3})
    assert out["time"] == parse_time_ms("2026-09-21T07:00:00.250Z")


def test_people_is_integer() -> None:
    out = accept("occ-1", {"people": 4.0, "co2_ppm": 700})
    assert out["people"] == 4
    assert type(out["people"]) is int
    assert type(out["co2_ppm"]) is float


@pytest.mark.parametrize(
    ("distance", "expected"),
    [(1000, 0.0), (0, 100.0), (250, 75.0), (1300, 0.0), (999.5, 0.05)],
)
def test_fill_pct(distance: float, expected: float) -> None:
    out = accept("bin-1", {"distance_mm": distance})
    assert out["fill_pct"] == pytest.approx(expected)


def test_fill_pct_cannot_be_sent_by_a_device() -> None:
    # Not a payload field: ignored like any unmapped vendor field, and the derived value wins.
    decoded = native.decode(TOPIC.format("bin-1"), b'{"distance_mm": 100, "fill_pct": 3}', "kera")
    reading = VALIDATOR.check(decoded[0], NOW)
    assert reading.fields["fill_pct"] == pytest.approx(90.0)
    assert reading.ignored == ("fill_pct",)
    with pytest.raises(Rejected) as info:
        VALIDATOR.check(decoded[0], NOW, unknown_fields="reject")
    assert info.value.reason is Reason.UNKNOWN_FIELD


@pytest.mark.parametrize(
    ("device", "payload", "expected"),
    [
        ("em-1", b"{not json", Reason.BAD_JSON),
        ("em-1", b"\xff\xfe\xfa", Reason.NOT_UTF8),
        ("em-1", [1, 2], Reason.NOT_OBJECT),
        ("ghost", {"power_w": 1, "energy_kwh": 1}, Reason.UNKNOWN_DEVICE),
        ("em-1", {"power_w": "12", "energy_kwh": 1}, Reason.WRONG_TYPE),
        ("em-1", {"power_w": True, "energy_kwh": 1}, Reason.WRONG_TYPE),
        ("occ-1", {"people": 2.5}, Reason.WRONG_TYPE),
        ("bin-1", {"distance_mm": 10, "tilt": 1}, Reason.WRONG_TYPE),
        ("em-1", {}, Reason.MISSING_FIELD),
        ("em-1", {"ts": 1_790_000_000_000}, Reason.MISSING_FIELD),
        ("occ-1", {"people": -1}, Reason.OUT_OF_RANGE),
        ("occ-1", {"people": 1, "humidity_pct": 101}, Reason.OUT_OF_RANGE),
        ("em-1", {"power_w": 1, "energy_kwh": 1, "voltage_v": 900}, Reason.OUT_OF_RANGE),
        ("em-1", {"power_w": 1, "energy_kwh": 10**400}, Reason.OUT_OF_RANGE),
        ("em-1", b'{"power_w": NaN, "energy_kwh": 1}', Reason.NOT_FINITE),
        ("em-1", b'{"power_w": Infinity, "energy_kwh": 1}', Reason.NOT_FINITE),
        ("occ-1", {"ts": 1_790_000_000, "people": 1}, Reason.BAD_TIMESTAMP),
        ("occ-1", {"ts": "yesterday", "people": 1}, Reason.BAD_TIMESTAMP),
        ("occ-1", {"ts": "2026-09-21T10:00:00", "people": 1}, Reason.BAD_TIMESTAMP),
        ("occ-1", {"ts": True, "people": 1}, Reason.BAD_TIMESTAMP),
    ],
)
def test_rejections(device: str, payload: bytes | object, expected: Reason) -> None:
    assert reason(device, payload) is expected


def test_partial_readings_store_what_they_carry() -> None:
    """A meter that reports only some quantities is stored, not rejected."""
    assert accept("em-1", {"voltage_v": 231.5, "current_a": 2}) == {
        "measurement": "energy", "time": NOW, "voltage_v": 231.5, "current_a": 2.0,
    }  # fmt: skip
    assert accept("em-1", {"energy_kwh": 12.5})["energy_kwh"] == 12.5
    assert accept("occ-1", {"co2_ppm": 650}) == {
        "measurement": "occupancy", "time": NOW, "co2_ppm": 650.0,
    }  # fmt: skip
    # A bin reading without a distance has no fill level: the derived field needs its input.
    assert accept("bin-1", {"battery_pct": 80}) == {
        "measurement": "waste_bin", "time": NOW, "battery_pct": 80.0,
    }  # fmt: skip


def test_unknown_fields_are_ignored_and_counted_or_rejected_by_policy() -> None:
    decoded = native.decode(
        TOPIC.format("em-1"), b'{"power_w": 1, "energy_kwh": 1, "colour": "red"}', "kera"
    )[0]
    reading = VALIDATOR.check(decoded, NOW)
    assert reading.fields == {"power_w": 1.0, "energy_kwh": 1.0}
    assert reading.ignored == ("colour",)
    with pytest.raises(Rejected) as info:
        VALIDATOR.check(decoded, NOW, unknown_fields="reject")
    assert info.value.reason is Reason.UNKNOWN_FIELD
    # Only unknown fields: no reading at all, which is not an error.
    only = native.decode(TOPIC.format("em-1"), b'{"firmware": "1.2.3"}', "kera")[0]
    with pytest.raises(NoReading) as none:
        VALIDATOR.check(only, NOW)
    assert none.value.ignored == ("firmware",)


def test_seconds_timestamp_gets_a_hint() -> None:
    with pytest.raises(Rejected, match="looks like seconds"):
        parse_time_ms(1_790_000_000)


@pytest.mark.parametrize(
    "topic",
    [
        "kera/other/em-1/telemetry",
        "kera/kera/em-1",
        "kera/kera/em-1/telemetry/x",
        "kera/kera/em-1/config",
        "x/kera/em-1/telemetry",
    ],
)
def test_bad_topics(topic: str) -> None:
    assert reason("em-1", {"power_w": 1, "energy_kwh": 1}, topic) is Reason.BAD_TOPIC


def test_status_messages() -> None:
    for payload, online in ((b"online", True), (b"offline", False), (b"OFFLINE\n", False)):
        decoded = native.decode("kera/kera/bin-1/status", payload, "kera")[0]
        reading = VALIDATOR.check(decoded, NOW)
        assert reading.measurement == "device_status"
        assert reading.fields == {"online": online}
        assert reading.time_ms == NOW
    with pytest.raises(Rejected) as info:
        native.decode("kera/kera/bin-1/status", b"maybe", "kera")
    assert info.value.reason is Reason.BAD_STATUS


def _outcome(topic: str, payload: bytes) -> None:
    try:
        reading = VALIDATOR.check(native.decode(topic, payload, "kera")[0], NOW)
    except Rejected as exc:
        assert isinstance(exc.reason, Reason)  # noqa: PT017 - either outcome is valid; a typed error is the property
        return
    except NoReading as none:
        assert none.ignored  # noqa: PT017 - either outcome is valid; a typed error is the property
        return
    spec = KINDS[reading.device.spec.kind]
    for name, value in reading.fields.items():
        if isinstance(value, float):
            assert math.isfinite(value)
        assert name in spec.fields or name == "fill_pct" or reading.measurement == "device_status"


@settings(max_examples=400)
@given(
    st.binary(max_size=300),
    st.sampled_from(["em-1", "occ-1", "bin-1", "x"]),
    st.sampled_from(["telemetry", "status"]),
)
def test_arbitrary_bytes_only_reject(payload: bytes, device: str, channel: str) -> None:
    _outcome(f"kera/kera/{device}/{channel}", payload)


field_names = st.sampled_from(
    [
        "ts",
        "power_w",
        "energy_kwh",
        "voltage_v",
        "people",
        "co2_ppm",
        "distance_mm",
        "tilt",
        "battery_pct",
        "humidity_pct",
        "other",
    ]
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(field_names, json_values, max_size=6),
    st.sampled_from(["em-1", "occ-1", "bin-1"]),
)
def test_arbitrary_json_objects_only_reject(obj: dict[str, object], device: str) -> None:
    payload = json.dumps(obj, allow_nan=True).encode()
    _outcome(f"kera/kera/{device}/telemetry", payload)
