"""Computed values of one device or space, hour by hour, in flat columns of floats.

The engine keeps nine days of computed hours for every device and space (a day is always
re-summed from its hours). As a dict of slotted records that was about 400 bytes an hour, every
record an object the cyclic garbage collector walks at each full collection (24-80 ms pauses at
500 devices, docs/performance.md); here it is 8 bytes a value in arrays, which the collector
does not track. An hour with no value is NaN in the first column.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from ._energy import HOUR_MS

T = TypeVar("T")

NAN = math.nan


class Hours(Generic[T]):
    __slots__ = ("_cols", "_first", "_unpack")

    def __init__(self, width: int, unpack: Callable[[int, Sequence[float]], T]) -> None:
        self._cols = [array("d") for _ in range(width)]
        self._first = 0  # epoch ms of the hour in row 0
        self._unpack = unpack  # (hour ms, one row) to the record it stands for

    def __len__(self) -> int:
        return len(self._cols[0])

    def _row(self, hour: int) -> int:
        cols = self._cols
        if not cols[0]:
            self._first = hour
        i = (hour - self._first) // HOUR_MS
        if i < 0:
            for col in cols:
                col[0:0] = array("d", [NAN]) * -i
            self._first = hour
            return 0
        grow = i + 1 - len(cols[0])
        if grow > 0:
            pad = array("d", [NAN]) * grow
            for col in cols:
                col.extend(pad)
        return i

    def put(self, hour: int, row: Sequence[float]) -> None:
        i = self._row(hour)
        for col, v in zip(self._cols, row, strict=True):
            col[i] = v

    def get(self, hour: int) -> T | None:
        i = (hour - self._first) // HOUR_MS
        cols = self._cols
        if i < 0 or i >= len(cols[0]) or math.isnan(cols[0][i]):
            return None
        return self._unpack(hour, [col[i] for col in cols])

    def items(self, start: int, end: int) -> Iterator[tuple[int, T]]:
        """The hours in [start, end) that have a value, in time order."""
        cols = self._cols
        first = self._first
        lo = max(0, -(-(start - first) // HOUR_MS))
        hi = min(len(cols[0]), -(-(end - first) // HOUR_MS))
        head = cols[0]
        for i in range(lo, hi):
            if not math.isnan(head[i]):
                hour = first + i * HOUR_MS
                yield hour, self._unpack(hour, [col[i] for col in cols])

    def rows(self, start: int, end: int) -> Iterator[tuple[int, tuple[float, ...]]]:
        """As `items`, the rows as stored."""
        cols = self._cols
        first = self._first
        lo = max(0, -(-(start - first) // HOUR_MS))
        hi = min(len(cols[0]), -(-(end - first) // HOUR_MS))
        for i in range(lo, hi):
            if not math.isnan(cols[0][i]):
                yield first + i * HOUR_MS, tuple(col[i] for col in cols)

    def empty(self) -> Hours[T]:
        """A table of the same shape with nothing in it."""
        return Hours(len(self._cols), self._unpack)

    def values(self, start: int, end: int) -> list[T]:
        return [v for _, v in self.items(start, end)]

    def clear(self, start: int, end: int) -> None:
        """Forget the hours in [start, end) (a repair computes them again)."""
        cols = self._cols
        lo = max(0, -(-(start - self._first) // HOUR_MS))
        hi = min(len(cols[0]), -(-(end - self._first) // HOUR_MS))
        for i in range(lo, hi):
            cols[0][i] = NAN

    def prune(self, oldest: int) -> None:
        """Drop the hours before `oldest`."""
        n = min(len(self), max(0, (oldest - self._first) // HOUR_MS))
        if n:
            for col in self._cols:
                del col[:n]
            self._first += n * HOUR_MS
