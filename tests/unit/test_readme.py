"""The README cannot drift from the command lines: every command in its code blocks must parse
against the real CLI (subcommands, options, arguments), and the files it names must exist."""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer.main

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SCRIPT_PROGRAMS = {"scripts/demo": "kera-demo"}


def _programs() -> dict[str, str]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return {name: target.split(":")[0] for name, target in scripts.items()}


def readme_commands() -> list[list[str]]:
    """Each command line of the README's sh code blocks, as argv (comments dropped)."""
    text = README.read_text("utf-8")
    out: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for raw in block.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", "export ")):
                continue
            argv = shlex.split(line, comments=True)
            if argv and (argv[0].startswith(".venv/bin/kera-") or argv[0] in SCRIPT_PROGRAMS):
                out.append(argv)
    return out


COMMANDS = readme_commands()


def test_the_readme_has_the_commands_of_every_program() -> None:
    used = {Path(a[0]).name for a in COMMANDS} | {
        SCRIPT_PROGRAMS[a[0]] for a in COMMANDS if a[0] in SCRIPT_PROGRAMS
    }
    assert set(_programs()) <= used | {"kera-demo"}, set(_programs()) - used
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a)[:70] for a in COMMANDS])
def test_readme_command_parses(argv: list[str]) -> None:
    program = SCRIPT_PROGRAMS.get(argv[0], Path(argv[0]).name)
    module = importlib.import_module(_programs()[program])
    # Typer ships its own copy of click, so groups are told by their `commands`, not a class.
    command: Any = typer.main.get_command(module.app)
    args = argv[1:]
    # Down the subcommands, then let click parse the rest exactly as it would run it.
    while getattr(command, "commands", None) and args and args[0] in command.commands:
        command = command.commands[args[0]]
        args = args[1:]
    assert not getattr(command, "commands", None), f"{argv}: names no command"
    context = command.make_context(program, list(args), resilient_parsing=False)
    for param in command.params:
        value = context.params.get(param.name or "")
        # A file the README names as an input must be in the repository.
        if isinstance(value, Path) and not str(value).startswith("/tmp/"):
            assert (ROOT / value).exists(), f"{argv}: {value} does not exist"
