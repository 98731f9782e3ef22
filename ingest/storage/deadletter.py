"""Dead letters: everything the ingestor received or built but did not store, kept for an operator.

Two kinds of entry share `dead-letters.jsonl` (one JSON object per line):

- a rejected message: `reason` (a code from ingest.reading.Reason), `detail`, `topic`,
  `received_ms`, `device` (when known), and the payload: `payload` as text when it is UTF-8,
  else `payload_b64`; `payload_bytes` is its full size, `truncated` says whether only the first
  PAYLOAD_KEEP bytes are kept;
- a point InfluxDB refused (HTTP 400/413/422): `reason` "influx_refused", `detail` (InfluxDB's
  answer) and `line`, ready to be fixed and written again.

Every entry also has `at` (when it was kept). The file rotates to `dead-letters.jsonl.1` at
`max_bytes`; entries pushed out of the older file are counted and logged, never silently gone.

In quarantine mode (site file `unknown_devices: quarantine`), messages from unregistered devices
also go to `quarantine.jsonl`, which other rejections cannot flood. `kera-ingest quarantine`
summarises it for a technician who adopts the devices into the site file.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ingest.reading import DeadLetter, Reason
from ingest.storage.files import private
from ingest.storage.ports import Publisher

log = logging.getLogger(__name__)

# Bytes of a rejected payload kept; enough to see what a device sends, bounded under floods.
PAYLOAD_KEEP = 8192
INFLUX_REFUSED = "influx_refused"


def entry(letter: DeadLetter, at: str | None = None) -> dict[str, Any]:
    """A rejected message as a JSON-ready dict (the file's and the topic's format)."""
    raw = letter.payload[:PAYLOAD_KEEP]
    out: dict[str, Any] = {
        "at": at or _now(),
        "reason": letter.reason.value,
        "detail": letter.detail,
        "topic": letter.topic,
        "received_ms": letter.received_ms,
        "device": letter.device_id,
    }
    try:
        out["payload"] = raw.decode()
    except UnicodeDecodeError:
        out["payload_b64"] = base64.b64encode(raw).decode()
    out["payload_bytes"] = len(letter.payload)
    out["truncated"] = len(letter.payload) > PAYLOAD_KEEP
    if letter.kept:
        # What of the message was stored all the same (an uplink's radio status).
        out["stored"] = [line.split(" ", 1)[0].split(",", 1)[0] for line in letter.kept]
    return out


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class _Rotating:
    """An append-only JSON Lines file with one older generation, bounded in size."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.discarded_by_rotation = 0

    def append(self, objects: Iterable[dict[str, Any]]) -> None:
        """Append one line per object, rotating before the line that would pass the bound, so
        the file never exceeds `max_bytes` by more than one line (a whole batch did before)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        chunk: list[bytes] = []
        pending = 0
        for o in objects:
            line = (json.dumps(o, ensure_ascii=False) + "\n").encode()
            if size + pending + len(line) > self.max_bytes and size + pending > 0:
                self._write(chunk)
                chunk, pending, size = [], 0, 0
                self._rotate()
            chunk.append(line)
            pending += len(line)
        self._write(chunk)

    def _write(self, chunk: list[bytes]) -> None:
        if not chunk:
            return
        with open(self.path, "ab", opener=private) as f:
            f.write(b"".join(chunk))
            f.flush()
            os.fsync(f.fileno())

    def _rotate(self) -> None:
        if not self.path.exists():
            return
        older = self.path.with_name(self.path.name + ".1")
        if older.exists():
            with older.open("rb") as f:
                lost = sum(1 for _ in f)
            self.discarded_by_rotation += lost
            log.error("%s full: %d older entries in %s are overwritten", self.path, lost, older)
        os.replace(self.path, older)


class DeadLetters:
    """The dead-letter file (and the quarantine file). Blocking: call through a thread from
    async code. Both are fsync()ed before the batch they belong to is acknowledged."""

    def __init__(
        self, directory: Path, max_bytes: int = 100 << 20, quarantine: bool = False
    ) -> None:
        self._file = _Rotating(directory / "dead-letters.jsonl", max_bytes)
        self._quarantine = (
            _Rotating(directory / "quarantine.jsonl", max_bytes) if quarantine else None
        )
        self.count = 0
        self.quarantined = 0

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def discarded_by_rotation(self) -> int:
        return self._file.discarded_by_rotation

    def add(self, lines: list[str], error: str) -> None:
        """Points InfluxDB refused."""
        at = _now()
        self._file.append(
            {"at": at, "reason": INFLUX_REFUSED, "detail": error, "line": line} for line in lines
        )
        self.count += len(lines)

    @staticmethod
    def entries(letters: list[DeadLetter]) -> list[dict[str, Any]]:
        """The entries of rejected messages, built apart from writing them, so that the
        dead-letter topic still gets them when the disk refuses the file's copy."""
        at = _now()
        return [entry(letter, at) for letter in letters]

    def keep(self, entries: list[dict[str, Any]], letters: list[DeadLetter]) -> None:
        """Append `entries` (built from `letters` by `entries`) to the file(s)."""
        self._file.append(entries)
        self.count += len(entries)
        if self._quarantine is not None:
            unknown = [
                e
                for e, letter in zip(entries, letters, strict=True)
                if letter.reason is Reason.UNKNOWN_DEVICE
            ]
            if unknown:
                self._quarantine.append(unknown)
                self.quarantined += len(unknown)


class DeadLetterTopic:
    """A `DeadLetterSink`: each entry as JSON on the site's dead-letter topic, QoS 0 (the file
    keeps them all; the topic is for whoever watches live)."""

    __slots__ = ("_publisher", "_topic")

    def __init__(self, topic: str, publisher: Publisher) -> None:
        self._topic = topic
        self._publisher = publisher

    def dead_letters(self, entries: list[dict[str, Any]]) -> None:
        for e in entries:
            self._publisher.publish(self._topic, json.dumps(e, ensure_ascii=False).encode())
