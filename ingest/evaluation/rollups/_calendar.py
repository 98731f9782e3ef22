"""Local calendar days and ISO weeks as epoch-millisecond bounds: a day is local midnight to
local midnight, 23 or 25 hours long when the clocks change."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


def _midnight(d: date, tz: ZoneInfo) -> int:
    return round(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp() * 1000)


@lru_cache(maxsize=4096)
def local_day(ms: int, tz: ZoneInfo) -> int:
    """Epoch ms of the local midnight that starts the day `ms` falls in."""
    return _midnight(datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz).date(), tz)


@lru_cache(maxsize=4096)
def next_day(day_ms: int, tz: ZoneInfo) -> int:
    d = datetime.fromtimestamp(day_ms / 1000, UTC).astimezone(tz).date()
    return _midnight(d + timedelta(days=1), tz)


def day_bounds(d: date, tz: ZoneInfo) -> tuple[int, int]:
    return _midnight(d, tz), _midnight(d + timedelta(days=1), tz)


def parse_week(text: str) -> tuple[int, int]:
    """'2026-W48' to (ISO year, week); ValueError with the reason otherwise."""
    m = re.fullmatch(r"(\d{4})-W(\d{2})", text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not an ISO week like 2026-W48")
    year, week = int(m.group(1)), int(m.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ValueError(f"{year} has no week {week}") from None
    return year, week


def week_bounds(text: str, tz: ZoneInfo) -> tuple[int, int]:
    """Local Monday 00:00 to the next Monday 00:00 of an ISO week, as epoch ms."""
    year, week = parse_week(text)
    monday = date.fromisocalendar(year, week, 1)
    return _midnight(monday, tz), _midnight(monday + timedelta(days=7), tz)


def week_of(ms: int, tz: ZoneInfo) -> str:
    """The ISO week `ms` falls in, locally, as '2026-W48'."""
    y, w, _ = datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz).isocalendar()
    return f"{y}-W{w:02d}"
