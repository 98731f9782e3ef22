"""P1/HAN smart-meter telegrams (IEC 62056-21 ASCII OBIS, DSMR 5 P1 physical layer, 115200 8N1).

The Finnish HAN port follows the SESKO recommendation, which takes the DSMR 5 P1 interface with
the Nordic OBIS list (1-0:1.8.0 / 2.8.0 totals). A telegram runs from `/` to `!` and a CRC16 in
four hex digits; dsmr-parser checks the CRC and reads the OBIS objects.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from dsmr_parser import obis_references as obis
from dsmr_parser import telegram_specifications
from dsmr_parser.exceptions import InvalidChecksumError, ParseError
from dsmr_parser.parsers import TelegramParser

from ingest.reading import Decoded

SPECS = {"nordic": telegram_specifications.SWEDEN, "dsmr5": telegram_specifications.V5}
MAX_TELEGRAM = 16_384  # bytes; a DSMR 5 telegram is about 1 KiB


class P1Framer:
    """Bytes in, complete telegrams out; counts what it had to throw away."""

    def __init__(self, counts: Counter[str]) -> None:
        self._buf = b""
        self._counts = counts

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        out: list[str] = []
        while True:
            start = self._buf.find(b"/")
            if start < 0:
                if self._buf.strip(b"\r\n\x00"):
                    self._counts["garbage"] += 1
                self._buf = b""
                return out
            if start > 0:
                if self._buf[:start].strip(b"\r\n\x00"):
                    self._counts["garbage"] += 1
                self._buf = self._buf[start:]
            end = self._buf.find(b"!")
            nxt = self._buf.find(b"/", 1)
            if nxt >= 0 and (end < 0 or nxt < end):
                self._counts["cut_frame"] += 1  # a telegram began before the last one ended
                self._buf = self._buf[nxt:]
                continue
            if end < 0:
                if len(self._buf) > MAX_TELEGRAM:
                    self._counts["cut_frame"] += 1
                    self._buf = b""
                return out
            tail = self._buf.find(b"\n", end)
            if tail < 0:
                return out
            frame, self._buf = self._buf[: tail + 1], self._buf[tail + 1 :]
            try:
                out.append(frame.decode("ascii"))
            except UnicodeDecodeError:
                self._counts["garbage"] += 1


def _value(telegram: Any, ref: str) -> Decimal | None:
    obj = getattr(telegram, ref, None)
    return None if obj is None else obj.value


def _total(telegram: Any, total: str, tariff: str) -> Decimal | None:
    """The total register, or the sum of tariffs 1 and 2 where a meter splits by tariff."""
    value = _value(telegram, total)
    if value is not None:
        return value
    parts = [_value(telegram, f"{tariff}{n}") for n in (1, 2)]
    if parts[0] is None or parts[1] is None:
        return None
    return parts[0] + parts[1]


def parse(
    text: str, spec: str, device_id: str, counts: Counter[str], tz: ZoneInfo
) -> Decoded | None:
    """A telegram to an `energy` reading of `device_id`, or None (counted) if it is bad."""
    parser = TelegramParser(SPECS[spec])
    try:
        t = parser.parse(text, throw_ex=True)
    except InvalidChecksumError:
        counts["bad_crc"] += 1
        return None
    except (ParseError, ValueError, IndexError):
        counts["bad_frame"] += 1
        return None
    values: dict[str, object] = {}
    imported = _total(t, "ELECTRICITY_IMPORTED_TOTAL", "ELECTRICITY_USED_TARIFF_")
    exported = _total(t, "ELECTRICITY_EXPORTED_TOTAL", "ELECTRICITY_DELIVERED_TARIFF_")
    usage = _value(t, "CURRENT_ELECTRICITY_USAGE")
    delivery = _value(t, "CURRENT_ELECTRICITY_DELIVERY")
    if imported is not None:
        values["energy_kwh"] = float(imported)
    if exported is not None:
        values["energy_export_kwh"] = float(exported)
    if usage is not None:
        values["power_w"] = float((usage - (delivery or 0)) * 1000)  # kW, + = import
    voltages, currents = [], []
    for n in (1, 2, 3):
        v = _value(t, f"INSTANTANEOUS_VOLTAGE_L{n}")
        a = _value(t, f"INSTANTANEOUS_CURRENT_L{n}")
        if v is not None:
            values[f"voltage_l{n}_v"] = float(v)
            voltages.append(float(v))
        if a is not None:
            values[f"current_l{n}_a"] = float(a)
            currents.append(float(a))
    if voltages:
        values["voltage_v"] = round(sum(voltages) / len(voltages), 2)
    if currents:
        values["current_a"] = round(sum(currents) / len(currents), 3)
    counts["telegrams"] += 1
    return Decoded(device_id, telegram_time_ms(text, tz), values)


_STAMP = re.compile(r"0-0:1\.0\.0\((\d{12})([SW]?)\)")


def telegram_time_ms(text: str, tz: ZoneInfo) -> int | None:
    """The meter's clock (0-0:1.0.0, local time, S/W = summer/winter) in epoch ms. Read here,
    not by dsmr-parser, which assumes Dutch local time; a Finnish meter keeps Finnish time."""
    m = _STAMP.search(text)
    if m is None:
        return None
    try:
        naive = datetime.strptime(m.group(1), "%y%m%d%H%M%S")
    except ValueError:
        return None
    # In the autumn hour that occurs twice, W marks the second (winter) one.
    local = naive.replace(tzinfo=tz, fold=1 if m.group(2) == "W" else 0)
    return round(local.timestamp() * 1000)


__all__ = ["SPECS", "P1Framer", "obis", "parse"]
