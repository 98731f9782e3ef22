"""Files the ingestor keeps at run time (spool, dead letters, alert state) hold a site's readings
and payloads: they are created readable by their owner only."""

from __future__ import annotations

import os


def private(path: str, flags: int) -> int:
    """An `opener` for `open` and `io.FileIO` that creates a file 0600."""
    return os.open(path, flags, 0o600)
