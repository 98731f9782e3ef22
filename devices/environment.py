"""How every command reads a `KERA_*` environment variable.

Set but empty (`KERA_SPOOL_DIR=`, as shells and compose files often leave a variable) means not
set, everywhere: an empty path would otherwise be read as the current directory, which may be a
checkout. The ingestor's settings follow the same rule through pydantic-settings
(`env_ignore_empty`), and Typer options through Click, which ignores empty variables.
"""

from __future__ import annotations

import os


def env(name: str) -> str | None:
    """The variable's value, or None when it is unset or empty."""
    return os.environ.get(name) or None
