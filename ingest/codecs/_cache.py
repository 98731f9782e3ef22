"""Answers remembered per topic (which source, which template), bounded against made-up topics."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

# A site has a few topics per device. Hostile traffic on made-up topics fills the cache, which
# is then cleared; a topic longer than any firmware's is never kept, so 50,000 entries of
# 64 KiB topics cannot be held.
MAX_CACHED = 50_000
MAX_TOPIC = 256


def remember(cache: dict[str, T], topic: str, answer: T) -> T:
    if len(topic) <= MAX_TOPIC:
        if len(cache) >= MAX_CACHED:
            cache.clear()
        cache[topic] = answer
    return answer
