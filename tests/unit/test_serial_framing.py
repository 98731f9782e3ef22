"""P1 telegrams and concentrator lines, framed and parsed: the public DSMR 5 example, CRC
failures, cut frames, garbage; hypothesis for the framers."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.serial import _meter_state, crc16, meter_values, p1_telegram
from ingest.serial import p1
from ingest.serial.lines import LineFramer, checksum, frame
from ingest.serial.modbus import REGISTER_MAPS, blocks

# The example telegram of the DSMR 5.0.2 P1 companion standard. Its CRC is recomputed here
# (CRC-16/ARC over "/" to "!"), as the one printed with the example does not match its text.
DSMR5 = (Path(__file__).parent.parent / "data" / "dsmr5_example.txt").read_text()
DSMR5 = DSMR5.replace("\n", "\r\n")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
HELSINKI = ZoneInfo("Europe/Helsinki")


def test_dsmr5_example_parses_to_its_values() -> None:
    counts: Counter[str] = Counter()
    d = p1.parse(DSMR5, "dsmr5", "em-main", counts, AMSTERDAM)
    assert d is not None
    assert counts == {"telegrams": 1}
    assert d.values == {
        "energy_kwh": 246913.578,  # 1.8.1 + 1.8.2
        "energy_export_kwh": 246913.578,
        "power_w": 1193.0,
        "voltage_l1_v": 220.1,
        "voltage_l2_v": 220.2,
        "voltage_l3_v": 220.3,
        "current_l1_a": 1.0,
        "current_l2_a": 2.0,
        "current_l3_a": 3.0,
        "voltage_v": 220.2,
        "current_a": 2.0,
    }
    assert d.time_ms == round(
        datetime(2010, 12, 9, 11, 30, 20, tzinfo=AMSTERDAM).timestamp() * 1000
    )


def test_crc_is_checked() -> None:
    counts: Counter[str] = Counter()
    broken = DSMR5.replace("1-0:1.7.0(01.193*kW)", "1-0:1.7.0(91.193*kW)")
    assert p1.parse(broken, "dsmr5", "em-main", counts, AMSTERDAM) is None
    assert counts == {"bad_crc": 1}
    assert f"{crc16(DSMR5[: DSMR5.index('!') + 1].encode()):04X}" == DSMR5[-6:-2]


def test_finnish_han_telegram_round_trip() -> None:
    values = meter_values(_meter_state("han", 1, "main-supply"), 1_795_800_000_000, 10, 3)
    text = p1_telegram(values, 1_795_800_000_000, HELSINKI).decode()
    d = p1.parse(text, "nordic", "em-main", Counter(), HELSINKI)
    assert d is not None
    assert d.time_ms == 1_795_800_000_000
    assert d.values["energy_kwh"] == round(values["energy_kwh"], 3)
    assert d.values["power_w"] == round(values["power_w"] / 1000, 3) * 1000


def test_p1_framer_skips_garbage_and_cut_frames() -> None:
    counts: Counter[str] = Counter()
    framer = p1.P1Framer(counts)
    out = framer.feed(b"\x00\xffnoise" + DSMR5[:300].encode())  # garbage, then a cut telegram
    out += framer.feed(DSMR5.encode())  # a new one starts before the cut one ended
    out += framer.feed(DSMR5[:50].encode())
    out += framer.feed(DSMR5[50:].encode())  # split across reads
    assert out == [DSMR5, DSMR5]
    assert counts == {"garbage": 1, "cut_frame": 1}


@given(st.binary(max_size=2000), st.integers(0, 3))
def test_p1_framer_never_raises_and_finds_telegrams_after_noise(noise: bytes, copies: int) -> None:
    counts: Counter[str] = Counter()
    framer = p1.P1Framer(counts)
    framer.feed(noise)
    framer.feed(b"\r\n")
    out = framer.feed(DSMR5.encode() * copies)
    assert out[-copies:] == [DSMR5] * copies if copies else True
    for text in out:
        p1.parse(text, "dsmr5", "em-main", counts, AMSTERDAM)


def test_lines_with_checksums() -> None:
    counts: Counter[str] = Counter()
    framer = LineFramer(counts, max_line_bytes=200)
    good = frame({"device": "bin-bio-1", "ts": 1, "distance_mm": 412})
    assert good.endswith(b"*" + checksum(good[: good.rindex(b"*")]).encode() + b"\n")
    bad = good.replace(b"412", b"413")
    data = (
        good
        + bad
        + b'{"device": "occ-cafe", "people": 3}\r\n'  # no checksum: accepted
        + b"\xff\xfe garbage\n"
        + b'["not", "an", "object"]\n'
        + b"x" * 300
        + b"\n"
        + good[:20]
    )
    out = framer.feed(data)
    assert out == [
        ("bin-bio-1", b'{"ts":1,"distance_mm":412}'),
        ("occ-cafe", b'{"people":3}'),
    ]
    assert counts == {"lines": 2, "bad_checksum": 1, "bad_frame": 2, "cut_frame": 1}


@given(st.lists(st.binary(max_size=100), max_size=20))
def test_line_framer_never_raises(chunks: list[bytes]) -> None:
    framer = LineFramer(Counter(), max_line_bytes=64)
    for chunk in chunks:
        for device, payload in framer.feed(chunk):
            assert isinstance(device, str)
            json.loads(payload)


def test_modbus_register_blocks_cover_the_maps() -> None:
    for model, registers in REGISTER_MAPS.items():
        covered = {a + i for a, n in blocks(registers) for i in range(n)}
        assert all({a, a + 1} <= covered for a in registers.values()), model
    assert blocks(REGISTER_MAPS["sdm630"]) == [(0x00, 12), (0x34, 2), (0x46, 6)]
