"""The demo as the README runs it: it ends with points in every measurement, no alert firing
(simulated devices switch off cleanly), and nothing written into the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _status() -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_the_demo_ends_clean(tmp_path: Path) -> None:
    before = _status()
    env = dict(os.environ, KERA_STATE_DIR=str(tmp_path / "state"))
    demo = subprocess.run(
        [str(Path(sys.executable).with_name("kera-demo")), "--duration", "4", "--speed", "600"],
        cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, out[-3000:]
    assert "FIRING" not in out, [line for line in out.splitlines() if "FIRING" in line][:5]
    assert "some measurements received no points" not in out
    assert (tmp_path / "state" / "demo" / "influxdb").is_dir()
    assert _status() == before
