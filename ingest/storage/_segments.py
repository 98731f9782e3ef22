"""The spool's on-disk format (ingest.storage.spool): segments of checksummed records, and the
fixed-width cursor line that says where replay resumes.

A record is a 12-byte header (magic, body length, CRC-32 of the body) and the body (lines joined
by newlines). Segments are named by their sequence number, replayed in that order.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

HEADER = struct.Struct("<4sII")
MAGIC = b"KSP1"
SUFFIX = ".seg"
# The cursor line is padded to this width, so rewriting it never grows the file.
CURSOR_WIDTH = 64


def cursor_line(seq: int, offset: int) -> bytes:
    """The cursor file's one line: segment, offset and their CRC-32, padded to a fixed width."""
    text = f"{seq} {offset}"
    return (f"{text} {zlib.crc32(text.encode()):08x}".ljust(CURSOR_WIDTH - 1) + "\n").encode()


def segment_name(seq: int) -> str:
    return f"{seq:016d}{SUFFIX}"


def scan(path: Path, start: int = 0) -> tuple[int, int, int]:
    """(records, end of the last good record, file size) from `start`."""
    records = 0
    good = start
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(start)
        while True:
            header = f.read(HEADER.size)
            if len(header) < HEADER.size:
                break
            magic, length, crc = HEADER.unpack(header)
            if magic != MAGIC:
                break
            body = f.read(length)
            if len(body) < length or zlib.crc32(body) != crc:
                break
            records += 1
            good += HEADER.size + length
    return records, good, size
