"""The house rules a maintainer relies on (docs/architecture.md, "Layout"), checked on the
source: no module outside tests over 500 lines, and no private name (`_name`) imported from a
module of another package. Import cycles and private modules are import-linter's contracts
(pyproject.toml), run by scripts/test."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("devices", "ingest", "firmware_sim", "dashboards", "pilots", "devstack", "bench")
MAX_LINES = 500


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _package(path: Path) -> str:
    """The dotted package a module belongs to (a package's __init__ belongs to itself)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1])


def test_no_module_outside_tests_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these by what they do: {long}"


def test_no_private_name_is_imported_from_another_package() -> None:
    crossing: list[str] = []
    for path in _modules():
        here = _package(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or node.level or node.module is None:
                continue
            if node.module.split(".")[0] not in PACKAGES:
                continue  # another project's internals are that module's own business
            owner = node.module.rsplit(".", 1)[0] if "." in node.module else node.module
            # A private name may be shared inside its package (and its subpackages).
            if here == owner or here.startswith(owner + "."):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    crossing.append(f"{path.relative_to(ROOT)}: {node.module}.{alias.name}")
    assert crossing == []
