"""Wi-Fi and Zigbee firmwares through `json` sources: topic templates, plain values, the device's
own time, several message shapes per device, and each firmware profile's published messages
(their sources are named in the profile files, devices/profiles/*.yaml)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import Registry, SiteConfigError, parse_site
from devices.presets import Preset
from devices.profiles import load_profile, profile_names
from devices.topics import TemplateError, TopicTemplate
from ingest.codecs import topic_matches
from ingest.codecs.discovery import parse_announcement
from ingest.codecs.templated import local_ms, read_time
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from ingest.quarantine import summarise
from ingest.reading import DeadLetter, Reason, Rejected
from ingest.storage.deadletter import entry
from tests.firmware import FIRMWARE, HELSINKI, device_name, now_in, point
from tests.strategies import json_values

pytestmark = pytest.mark.shifted_clock


def _firmware_site() -> Registry:
    presets = sorted({p for n in FIRMWARE if (p := load_profile(n).preset) is not None})
    lines = ["site: kera", "sources:", "  - codec: native"]
    lines += [f"  - preset: {p.value}" for p in presets]
    lines.append("devices:")
    for name in FIRMWARE:
        profile = load_profile(name)
        assert profile.preset is not None
        mqtt_name = device_name(profile.preset, profile.messages[0].topic)
        lines.append(
            f"  - {{id: {name}, kind: {profile.kind}, space: lab, profile: {name}, "
            f"mqtt_name: {json.dumps(mqtt_name)}}}"
        )
    return Registry(parse_site("\n".join(lines) + "\n"))


def test_every_firmware_profile_is_covered() -> None:
    assert set(FIRMWARE) == {n for n in profile_names() if load_profile(n).messages}
    assert {load_profile(n).preset for n in FIRMWARE} >= set(Preset) - {Preset.ESPHOME}


@pytest.mark.parametrize("name", sorted(FIRMWARE))
def test_firmware_profile_stores_its_published_messages(name: str) -> None:
    registry = _firmware_site()
    stats = Stats()
    pipeline = Pipeline(registry, stats, max_future_s=300, max_age_s=7 * 86400)
    profile = load_profile(name)
    assert profile.documentation.startswith("https://")
    assert len(profile.messages) == len(FIRMWARE[name])
    for message, want in zip(profile.messages, FIRMWARE[name], strict=True):
        now = time.time_ns() // 1_000_000
        payload, at = message.payload.encode(), None
        if message.payload.startswith("{"):
            obj = json.loads(message.payload)
            at = now_in(obj, now)
            payload = json.dumps(obj).encode()
        out = pipeline.handle(message.topic, payload, now)
        assert not isinstance(out, DeadLetter), (message.topic, out)
        if want is None:
            assert out == []
            continue
        (line,) = out
        measurement, key, fields, ts = point(line)
        assert f",device={name}," in key
        assert fields == pytest.approx(want), message.topic
        if "online" in want:
            assert measurement == "device_status"
        assert ts == (at if at is not None else now), message.topic


def test_a_topic_naming_no_device_never_makes_a_series() -> None:
    registry = _firmware_site()
    stats = Stats()
    pipeline = Pipeline(registry, stats)
    now = time.time_ns() // 1_000_000
    for i in range(10_000):
        out = pipeline.handle(f"zigbee2mqtt/made up {i}", b'{"temperature": 21}', now)
        assert isinstance(out, DeadLetter)
        assert out.reason is Reason.UNKNOWN_DEVICE
    long = "x" * 60_000
    out = pipeline.handle(f"shellies/{long}/relay/0/power", b"1", now)
    assert isinstance(out, DeadLetter)
    assert out.device_id is not None
    assert len(out.device_id) <= 128
    assert len(out.detail) < 200
    # 10,001 made-up names, one counter: memory does not grow with them.
    assert stats.rejected["unknown_device"] == 10_001
    assert set(stats.rejected_by_device) == {"unknown"}
    # A device's id is a name too; the alias is what the firmware says.
    assert pipeline.handle("shellies/shelly-plug-s/relay/0/power", b"3", now) != []


# -- templates --------------------------------------------------------------------------------


def test_templates_parse_match_and_give_their_filter() -> None:
    t = TopicTemplate.parse("shellies/{device}/relay/{channel}/{field}")
    assert t.filter == "shellies/+/relay/+/+"
    assert t.match(["shellies", "plug-1", "relay", "0", "power"]) == {
        "device": "plug-1", "channel": "0", "field": "power",
    }  # fmt: skip
    assert t.match(["shellies", "plug-1", "relay", "0"]) is None
    assert t.match(["shellies", "plug-1", "emeter", "0", "power"]) is None
    rest = TopicTemplate.parse("{site}/{device}/#", "kera")
    assert rest.filter == "kera/+/#"
    assert rest.match(["kera", "a"]) == {"device": "a"}
    assert rest.match(["kera", "a", "b", "c"]) == {"device": "a"}
    for bad, words in [
        ("a/{device}/{device}", "twice"),
        ("a/{Device}", "not a level name"),
        ("a/x{device}", "not a level name"),
        ("a/#/b", "last level"),
        ("a/b+", "whole topic level"),
        ("", "non-empty"),
    ]:
        with pytest.raises(TemplateError, match=words):
            TopicTemplate.parse(bad)


_LEVEL = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="/+#\x00"),
    min_size=1,
    max_size=30,
)


@given(device=_LEVEL, channel=_LEVEL, field=_LEVEL)
def test_a_template_binds_exactly_the_levels_the_broker_sends_it(
    device: str, channel: str, field: str
) -> None:
    t = TopicTemplate.parse("shellies/{device}/relay/{channel}/{field}")
    topic = f"shellies/{device}/relay/{channel}/{field}"
    assert topic_matches(t.filter, topic)
    assert t.match(topic.split("/")) == {"device": device, "channel": channel, "field": field}


@given(levels=st.lists(_LEVEL, min_size=0, max_size=7))
def test_template_matching_agrees_with_the_broker_filter(levels: list[str]) -> None:
    for text in ("tele/{device}/SENSOR", "{device}/sensor/{field}/state", "home/+/x/{device}/#"):
        t = TopicTemplate.parse(text)
        topic = "/".join(levels)
        assert (t.match(levels) is not None) == topic_matches(t.filter, topic)


def test_site_file_rules_for_json_sources() -> None:
    base = "site: kera\ndevices: [{id: a, kind: energy_meter, space: s, mqtt_name: X}]\n"
    for sources, words in [
        ("[{codec: json}]", "needs `topics`"),
        ("[{codec: json, topics: ['tele/+/SENSOR']}]", "no {device} level"),
        ("[{preset: tasmota, topics: ['x/{field}']}]", "no {device} level"),
        ("[{codec: native, preset: tasmota}]", "json sources only"),
        ("[{preset: nosuch}]", "preset"),
        ("[{topics: ['a/{device}']}]", "give `codec`"),
    ]:
        with pytest.raises(SiteConfigError, match=words):
            parse_site(base + f"sources: {sources}\n")
    two = (
        "site: kera\nsources: [{preset: tasmota}]\ndevices:\n"
        "  - {id: a, kind: energy_meter, space: s, mqtt_name: X}\n"
        "  - {id: b, kind: energy_meter, space: s, mqtt_name: X}\n"
    )
    with pytest.raises(SiteConfigError, match="given to both"):
        parse_site(two)
    with pytest.raises(SiteConfigError, match="another device's id"):
        parse_site(two.replace("mqtt_name: X}\n  - {id: b", "mqtt_name: b}\n  - {id: b"))
    with pytest.raises(SiteConfigError, match="mqtt_name"):
        parse_site(
            base.replace("mqtt_name: X", "mqtt_name: 'a/b'") + "sources: [{preset: esphome}]"
        )


# -- payload forms, time, shapes --------------------------------------------------------------

_SITE = """
site: kera
sources:
  - preset: esphome
  - preset: tasmota
  - codec: json
    topics: ["lab/{device}/json", "lab/{device}/{channel}/{field}"]
    text_numbers: true
    time: {path: at, format: unix_ms}
devices:
  - id: node-1
    kind: indoor_air
    space: lab
    mqtt_name: espHome-co2
    field_map:
      co2: co2_ppm
      temperature: temperature_c
      pir: motion
  - id: meter-1
    kind: energy_meter
    space: lab
    mqtt_name: Meter One
    field_map:
      power: {to: power_w, when: {channel: "a"}}
      kw: {to: power_w, unit: kW}
"""


def _pipeline() -> tuple[Pipeline, Stats]:
    stats = Stats()
    return Pipeline(Registry(parse_site(_SITE)), stats, max_future_s=300, max_age_s=86400), stats


def _fields(out: object) -> dict[str, object]:
    assert isinstance(out, list), out
    (line,) = out
    return point(line)[2]


def test_plain_values_as_firmwares_publish_them() -> None:
    pipeline, _ = _pipeline()
    now = time.time_ns() // 1_000_000
    handle = pipeline.handle
    # ESPHome (esphome.io/components/mqtt: <prefix>/sensor/<object_id>/state)
    assert _fields(handle("espHome-co2/sensor/co2/state", b"612", now)) == {"co2_ppm": 612.0}
    assert _fields(handle("espHome-co2/binary_sensor/pir/state", b"ON", now)) == {"motion": True}
    assert _fields(handle("espHome-co2/binary_sensor/pir/state", b"off", now)) == {"motion": False}
    # a number with its unit, converted as a SenML unit is
    out = handle("espHome-co2/sensor/temperature/state", b"295.15 K", now)
    assert _fields(out) == {"temperature_c": pytest.approx(22.0)}
    assert _fields(handle("espHome-co2/sensor/co2/state", b'"640"', now)) == {"co2_ppm": 640.0}
    # `when`: only channel a's power; channel b's is a field nothing maps
    assert _fields(handle("lab/Meter One/a/power", b"120.5", now)) == {"power_w": 120.5}
    assert handle("lab/Meter One/b/power", b"99", now) == []
    for payload, reason in [
        (b"", Reason.MISSING_FIELD),
        (b"abc", Reason.WRONG_TYPE),
        (b"1e999", Reason.NOT_FINITE),
        (b"\xff\xfe", Reason.NOT_UTF8),
        (b"21.5 furlongs", Reason.BAD_UNIT),
    ]:
        out = handle("espHome-co2/sensor/temperature/state", payload, now)
        assert isinstance(out, DeadLetter), payload
        assert out.reason is reason, (payload, out.detail)
    status = handle("espHome-co2/status", b"offline", now)
    assert _fields(status) == {"online": False}
    bad = handle("espHome-co2/status", b"maybe", now)
    assert isinstance(bad, DeadLetter)
    assert bad.reason is Reason.BAD_STATUS


def test_json_objects_text_numbers_and_time_rule() -> None:
    pipeline, _ = _pipeline()
    now = time.time_ns() // 1_000_000
    body = {"kw": "0.25 kW", "at": now - 5000}
    out = pipeline.handle("lab/Meter One/json", json.dumps(body).encode(), now)
    assert isinstance(out, list)
    _, _, fields, ts = point(out[0])
    assert fields == {"power_w": 250.0}
    assert ts == now - 5000
    old = pipeline.handle("lab/Meter One/json", json.dumps({"kw": 1, "at": 5}).encode(), now)
    assert isinstance(old, DeadLetter)
    assert old.reason is Reason.BAD_TIMESTAMP
    plain = pipeline.handle("lab/Meter One/json", b"12", now)
    assert isinstance(plain, DeadLetter)
    assert plain.reason is Reason.NOT_OBJECT
    assert "{field}" in plain.detail


def _last_sunday(year: int, month: int) -> int:
    """The day of the month's last Sunday: when the EU moves its clocks (01:00 UTC)."""
    last = (datetime(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return max(d for d in range(last - 6, last + 1) if datetime(year, month, d).weekday() == 6)


def _ms(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return round(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


# Next year's clock changes and midsummer, from the clock: no fixed date in these tests.
YEAR = datetime.now(UTC).year + 1


def test_local_time_without_offset_in_the_autumn_and_spring_hours() -> None:
    # In Helsinki, 04:00 EEST becomes 03:00 EET on October's last Sunday: 03:30 happens twice.
    autumn = _last_sunday(YEAR, 10)
    naive = datetime(YEAR, 10, autumn, 3, 30)
    first = _ms(YEAR, 10, autumn, 0, 30)
    second = first + 3600_000
    assert local_ms(naive, HELSINKI, first + 1000) == first
    assert local_ms(naive, HELSINKI, second + 1000) == second
    # March's last Sunday: 03:00 EET becomes 04:00 EEST; 03:30 does not exist (a clock not yet
    # moved). Read with the winter offset it is 01:30 UTC, with the summer one 00:30 UTC.
    spring = _last_sunday(YEAR, 3)
    gap = datetime(YEAR, 3, spring, 3, 30)
    winter = _ms(YEAR, 3, spring, 1, 30)
    summer = winter - 3600_000
    assert local_ms(gap, HELSINKI, winter + 60_000) == winter
    assert local_ms(gap, HELSINKI, summer - 60_000) == summer
    # an ordinary hour has one answer, whatever the receive time
    plain = datetime(YEAR, 7, 1, 12, 0)
    noon = _ms(YEAR, 7, 1, 9, 0)
    assert local_ms(plain, HELSINKI, 0) == local_ms(plain, HELSINKI, 10**13) == noon


def _now_s() -> int:
    return int(time.time())


@pytest.mark.parametrize("fmt", ["rfc3339", "unix_s", "unix_ms", "local", "local with offset"])
def test_time_formats(fmt: str) -> None:
    at = _now_s()
    want = at * 1000 + 250
    utc = datetime.fromtimestamp(at, UTC)
    local = utc.astimezone(HELSINKI)
    raw: object = {
        "rfc3339": utc.isoformat().replace("+00:00", ".25Z"),
        "unix_s": at + 0.25,
        "unix_ms": want,
        "local": local.replace(tzinfo=None).isoformat() + ".25",
        "local with offset": local.isoformat(timespec="milliseconds").replace(".000", ".250"),
    }[fmt]
    assert read_time(raw, fmt.split(" ", maxsplit=1)[0], HELSINKI, want) == want


@pytest.mark.parametrize(
    ("raw", "fmt"),
    [
        ("rfc3339 without offset", "rfc3339"),
        ("yesterday", "local"),
        (True, "unix_s"),
        (float("nan"), "unix_ms"),
        ("seconds as milliseconds", "unix_ms"),
        (12, "local"),
    ],
)
def test_bad_times_are_rejected_with_a_reason(raw: object, fmt: str) -> None:
    now = _now_s()
    if raw == "rfc3339 without offset":
        raw = datetime.fromtimestamp(now, UTC).replace(tzinfo=None).isoformat()
    elif raw == "seconds as milliseconds":
        raw = now
    with pytest.raises(Rejected) as info:
        read_time(raw, fmt, HELSINKI, now * 1000)
    assert info.value.reason is Reason.BAD_TIMESTAMP


# -- what a technician runs -------------------------------------------------------------------

SITE_FILE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "firmware-site.yaml"
KERA_INGEST = Path(sys.executable).parent / "kera-ingest"


def _check_site(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KERA_INGEST), "check-site", str(SITE_FILE), *args],
        check=False,
        capture_output=True,
        text=True,
    )


def test_check_site_takes_a_line_from_mosquitto_sub(tmp_path: Path) -> None:
    # A friendly name with spaces: the split is before the JSON, not at the first space.
    line = tmp_path / "line.txt"
    line.write_text(
        'zigbee2mqtt/Hall sensor, north {"temperature":21.34,"humidity":44.72,"extra":1}\n'
    )
    run = _check_site("--message", str(line))
    assert run.returncode == 0, run.stderr
    (point,) = run.stdout.splitlines()
    assert point.startswith("indoor_air,device=air-hall-north,site=kera,space=hall ")
    assert "temperature_c=21.34,humidity_pct=44.72 " in point
    assert "template zigbee2mqtt/{device} (device='Hall sensor, north')" in run.stderr
    assert "ignored (not mapped): extra" in run.stderr
    value = tmp_path / "value.txt"
    value.write_text("0.57")
    run = _check_site("--topic", "shellies/nobody/relay/0/power", "--example", str(value))
    assert run.returncode == 1
    assert run.stdout == ""
    assert "rejected unknown_device: 'nobody' is not in the site registry" in run.stderr
    line.write_text("no topic of this site\n")
    run = _check_site("--message", str(line))
    assert run.returncode == 2
    assert "mosquitto_sub -v" in run.stderr
    assert "Traceback" not in run.stderr


def test_profiles_shows_one_profile_whole() -> None:
    run = subprocess.run(
        [str(KERA_INGEST), "profiles", "shelly-plus-1pm"], check=False, capture_output=True,
        text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "source preset: shelly_gen2" in run.stdout
    assert "params.switch:0.apower" in run.stdout
    assert "shellyplus1pm-441793d69718/events/rpc" in run.stdout


# -- Home Assistant discovery -----------------------------------------------------------------

# Tasmota's own discovery config for its energy total, as a Tasmota 11 console log shows it
# (abbreviated keys, a bracket path in val_tpl): pastebin.com/XiaKgnUt.
TASMOTA_TOTAL = (
    b'{"name":"plug001 ENERGY Total","stat_t":"tele/plug001/SENSOR","avty_t":"tele/plug001/LWT",'
    b'"pl_avail":"Online","pl_not_avail":"Offline","uniq_id":"218FF9_ENERGY_Total","dev":'
    b'{"ids":["218FF9"]},"unit_of_meas":"kWh","dev_cla":"energy","stat_cla":"total_increasing",'
    b'"frc_upd":true,"val_tpl":"{{value_json[\'ENERGY\'][\'Total\']}}"}'
)


def test_discovery_configs_are_read_with_abbreviations_and_plain_paths() -> None:
    a = parse_announcement(
        "homeassistant/sensor/218FF9_ENERGY_Total/config", TASMOTA_TOTAL, "homeassistant"
    )
    assert (a.state_topic, a.availability_topic) == ("tele/plug001/SENSOR", "tele/plug001/LWT")
    assert (a.device_key, a.device_class, a.unit) == ("218FF9", "energy", "kWh")
    assert a.path == ("ENERGY", "Total")
    # ESPHome's shape: the value is the payload; `~` as the base topic
    esphome = json.dumps(
        {"~": "espHome-co2", "name": "CO2", "stat_t": "~/sensor/co2/state",
         "avty_t": "~/status", "unit_of_meas": "ppm", "dev_cla": "carbon_dioxide",
         "dev": {"ids": "a4cf12f00d1e", "name": "esphome-co2", "mdl": "esp32dev",
                 "mf": "Espressif"}}
    ).encode()  # fmt: skip
    b = parse_announcement("homeassistant/sensor/esphome-co2/co2/config", esphome, "homeassistant")
    assert (b.state_topic, b.availability_topic) == (
        "espHome-co2/sensor/co2/state",
        "espHome-co2/status",
    )
    assert (b.path, b.template, b.model) == (None, None, "esp32dev")
    for template, path in [
        ("{{ value_json.temperature }}", ("temperature",)),
        ("{{ value_json.ENERGY.Total | float | round(2) }}", ("ENERGY", "Total")),
        ('{{ value_json["switch:0"].apower }}', ("switch:0", "apower")),
    ]:
        raw = json.dumps({"stat_t": "x/y", "val_tpl": template}).encode()
        assert (
            parse_announcement("homeassistant/sensor/n/o/config", raw, "homeassistant").path == path
        )
    odd = json.dumps({"stat_t": "x/y", "val_tpl": "{{ value_json.a * 10 }}"}).encode()
    c = parse_announcement("homeassistant/sensor/n/o/config", odd, "homeassistant")
    assert (c.path, c.template) == (None, "{{ value_json.a * 10 }}")


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("homeassistant/sensor/x/config", b"[1]", Reason.NOT_OBJECT),
        ("homeassistant/sensor/x/config", b"{", Reason.BAD_JSON),
        ("homeassistant/sensor/x/config", b'{"name": "no state topic"}', Reason.MISSING_FIELD),
        ("homeassistant/sensor/x/y/z/config", b'{"stat_t": "a"}', Reason.BAD_TOPIC),
        ("other/sensor/x/config", b'{"stat_t": "a"}', Reason.BAD_TOPIC),
    ],
)
def test_bad_discovery_configs_are_refused(topic: str, payload: bytes, reason: Reason) -> None:
    with pytest.raises(Rejected) as info:
        parse_announcement(topic, payload, "homeassistant")
    assert info.value.reason is reason


@given(st.dictionaries(st.sampled_from(["stat_t", "val_tpl", "dev", "~", "name", "x"]),
                       json_values, max_size=6))  # fmt: skip
def test_any_discovery_payload_gets_a_verdict(config: dict[str, Any]) -> None:
    with contextlib.suppress(Rejected):
        parse_announcement(
            "homeassistant/sensor/n/config", json.dumps(config).encode(), "homeassistant"
        )


def test_announcements_of_registered_and_unknown_devices() -> None:
    site = parse_site(
        "site: kera\ndiscovery: {enabled: true}\nsources: [{preset: tasmota}]\ndevices:\n"
        "  - {id: plug-a, kind: energy_meter, space: s, mqtt_name: plug001}\n"
    )
    stats = Stats()
    pipeline = Pipeline(Registry(site), stats)
    topic = "homeassistant/sensor/218FF9_ENERGY_Total/config"
    assert pipeline.handle(topic, TASMOTA_TOTAL, 0) == []  # registered: no reading
    assert stats.no_reading == 1
    stranger = TASMOTA_TOTAL.replace(b"plug001", b"plug002")
    out = pipeline.handle(topic, stranger, 0)
    assert isinstance(out, DeadLetter)
    assert out.reason is Reason.UNKNOWN_DEVICE
    assert out.device_id == "plug002"
    assert "kera-ingest quarantine" in out.detail
    (candidate,) = summarise(site, [entry(out)])
    assert candidate.site_entry().splitlines() == [
        "  - id: plug002",
        "    kind: energy_meter  # from the announced device classes",
        "    space: TODO",
        "    field_map:",
        "      ENERGY.Total: energy_kwh",
    ]


def test_an_announcement_no_source_or_preset_takes_says_so() -> None:
    site = parse_site(
        "site: kera\ndiscovery: {enabled: true}\nsources: [{codec: native}]\ndevices:\n"
        "  - {id: a, kind: energy_meter, space: s}\n"
    )
    stranger = TASMOTA_TOTAL.replace(b"tele/plug001/SENSOR", b"plant/meters/heat-1")
    out = Pipeline(Registry(site), Stats()).handle("homeassistant/sensor/x/config", stranger, 0)
    assert isinstance(out, DeadLetter)
    (candidate,) = summarise(site, [entry(out)])
    assert candidate.device_id == "218FF9"  # the announced device's identifier
    assert "no source of this site, and no preset, takes plant/meters/heat-1" in (
        candidate.site_entry()
    )
