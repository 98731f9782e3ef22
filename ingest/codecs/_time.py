"""Timestamps as devices send them, turned into epoch milliseconds."""

from __future__ import annotations

import math
from datetime import datetime

from ingest.reading import Reason, Rejected

# Outside this window a timestamp is a unit mistake (seconds or microseconds sent as
# milliseconds) or an unset device clock, never a real reading.
MIN_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
MAX_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z


def check_window(ms: int, raw: object) -> int:
    if MIN_MS <= ms < MAX_MS:
        return ms
    hint = ""
    if MIN_MS // 1000 <= ms < MAX_MS // 1000:
        hint = " (looks like seconds; the contract wants milliseconds)"
    elif MIN_MS * 1000 <= ms < MAX_MS * 1000:
        hint = " (looks like microseconds; the contract wants milliseconds)"
    raise Rejected(Reason.BAD_TIMESTAMP, f"ts {raw!r} is outside 2000..2100{hint}")


def parse_time_ms(raw: object) -> int:
    """Epoch milliseconds (integer or float) or an RFC 3339 string with an offset."""
    if type(raw) is int:
        return check_window(raw, raw)
    if type(raw) is float:
        if not math.isfinite(raw):
            raise Rejected(Reason.BAD_TIMESTAMP, f"ts {raw!r} is not a finite number")
        return check_window(round(raw), raw)
    if type(raw) is str:
        try:
            dt = datetime.fromisoformat(raw)
        except ValueError:
            raise Rejected(
                Reason.BAD_TIMESTAMP, f"ts {raw!r} is not an RFC 3339 date-time"
            ) from None
        if dt.tzinfo is None:
            raise Rejected(Reason.BAD_TIMESTAMP, f"ts {raw!r} has no UTC offset (add Z or +02:00)")
        return check_window(round(dt.timestamp() * 1000), raw)
    raise Rejected(
        Reason.BAD_TIMESTAMP,
        f"ts must be epoch milliseconds or an RFC 3339 string, got {type(raw).__name__}",
    )
