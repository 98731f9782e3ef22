"""Line-based radio concentrators: one reading per line.

    {"device":"bin-bio-1","ts":1795787012345,"distance_mm":412}*4B\\n

A line is a JSON object with `device` (a registry id), optional `ts`, and the kind's fields,
optionally followed by `*` and an NMEA-style checksum: two hex digits, the XOR of every byte of
the JSON text. A bad checksum, an over-long line (a cut frame) or a line that is not such an
object is counted and skipped; the readings of good lines go through the same decoding and
validation as MQTT ones (the native codec), and are dead-lettered with a reason if they fail.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import reduce


def checksum(text: bytes) -> str:
    return f"{reduce(lambda a, b: a ^ b, text, 0):02X}"


def frame(obj: dict[str, object]) -> bytes:
    """A line as a concentrator sends it (for the simulator and tests)."""
    text = json.dumps(obj, separators=(",", ":")).encode()
    return text + b"*" + checksum(text).encode() + b"\n"


class LineFramer:
    def __init__(self, counts: Counter[str], max_line_bytes: int = 4096) -> None:
        self._buf = b""
        self._counts = counts
        self._max = max_line_bytes
        self._skipping = False

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        """(device id, native JSON payload) per good line."""
        self._buf += data
        out: list[tuple[str, bytes]] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self._max:
                    self._counts["cut_frame"] += 1
                    self._buf = b""
                    self._skipping = True
                return out
            line, self._buf = self._buf[:nl].rstrip(b"\r"), self._buf[nl + 1 :]
            if self._skipping:  # the rest of an over-long line
                self._skipping = False
                continue
            if not line.strip():
                continue
            item = self._line(line)
            if item is not None:
                out.append(item)

    def _line(self, line: bytes) -> tuple[str, bytes] | None:
        if len(line) > self._max:
            self._counts["cut_frame"] += 1
            return None
        star = line.rfind(b"*")
        if star >= 0 and len(line) - star == 3:
            text, given = line[:star], line[star + 1 :].decode("ascii", "replace").upper()
            if checksum(text) != given:
                self._counts["bad_checksum"] += 1
                return None
        else:
            text = line
        try:
            obj = json.loads(text)
        except ValueError:  # includes bytes that are not UTF-8
            self._counts["bad_frame"] += 1
            return None
        if type(obj) is not dict or type(obj.get("device")) is not str:
            self._counts["bad_frame"] += 1
            return None
        device = obj.pop("device")
        self._counts["lines"] += 1
        return device, json.dumps(obj, separators=(",", ":")).encode()
