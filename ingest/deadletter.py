"""Dead letters: points InfluxDB refused one by one (HTTP 400/413/422), kept for an operator.

Each refused line goes to `dead-letters.jsonl` as one JSON object, `{"at", "error", "line"}`, so
it can be inspected, fixed and written again (`jq -r .line dead-letters.jsonl | curl ...`). The
file is rotated to `dead-letters.jsonl.1` at `max_bytes`; what the rotation pushes out of the
older file is counted and logged, never silently gone.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class DeadLetters:
    def __init__(self, directory: Path, max_bytes: int = 100 << 20) -> None:
        self.path = directory / "dead-letters.jsonl"
        self.max_bytes = max_bytes
        self.count = 0
        self.discarded_by_rotation = 0

    def add(self, lines: list[str], error: str) -> None:
        """Append refused lines durably (blocking: call through a thread from async code)."""
        at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        text = "".join(
            json.dumps({"at": at, "error": error, "line": line}, ensure_ascii=False) + "\n"
            for line in lines
        ).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rotate_if_needed(len(text))
        with self.path.open("ab") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        self.count += len(lines)

    def _rotate_if_needed(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size + incoming <= self.max_bytes:
            return
        older = self.path.with_name(self.path.name + ".1")
        if older.exists():
            with older.open("rb") as f:
                lost = sum(1 for _ in f)
            self.discarded_by_rotation += lost
            log.error(
                "dead-letter file full: %d older dead letters in %s are overwritten",
                lost,
                older,
            )
        os.replace(self.path, older)
