"""How every Kera command line prints: the one place that decides about width and wrapping.

On a terminal, human output follows the terminal's width. Anywhere else (a pipe, a file, a log
collector, a test's capture) nothing is wrapped or cut at 80 columns: a table keeps its full
cells and a long message stays one line, so it can be read back or searched. Machine-readable
output (JSON, line protocol, YAML) does not go through rich at all; commands print it plainly.
"""

from __future__ import annotations

import sys

from rich.console import Console

# Wide enough that no table or message is ever folded when the output is not a terminal.
_UNBOUNDED = 100_000


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=_UNBOUNDED, soft_wrap=True)
