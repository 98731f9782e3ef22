"""`kera-sim backfill --start DATE --days N`: a season of its own, refused before publishing
when the ingestor would refuse it (in the future, or older than KERA_MAX_AGE_S), with the value
that would let it through. Times relative to the clock: the test passes on any date."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import typer

from firmware_sim._cli_common import backfill_start

# Run again with the clock 400 days ahead by scripts/test: the limits move with the calendar.
pytestmark = pytest.mark.shifted_clock

DAY_MS = 86_400_000


def test_a_date_starts_at_the_sites_midnight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KERA_MAX_AGE_S", raising=False)
    now_ms = time.time_ns() // 1_000_000
    day = (datetime.now(UTC) - timedelta(days=10)).date()
    start = backfill_start(day.isoformat(), "Europe/Helsinki", now_ms, 2 * 86400)
    local = datetime.fromtimestamp(start / 1000, ZoneInfo("Europe/Helsinki"))
    assert (local.date(), local.hour, local.minute) == (day, 0, 0)
    assert backfill_start(None, "Europe/Helsinki", now_ms, 86400) == now_ms - DAY_MS
    assert backfill_start("-3d", "UTC", now_ms, 86400) == pytest.approx(
        now_ms - 3 * DAY_MS, abs=5000
    )


def test_refused_into_the_future_or_past_the_age_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KERA_MAX_AGE_S", raising=False)
    now_ms = time.time_ns() // 1_000_000
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    with pytest.raises(typer.BadParameter, match="in the future"):
        backfill_start(yesterday, "UTC", now_ms, 5 * 86400)
    spring = (datetime.now(UTC) - timedelta(days=90)).date().isoformat()
    with pytest.raises(typer.BadParameter, match="KERA_MAX_AGE_S=2592000 refuses") as exc:
        backfill_start(spring, "UTC", now_ms, 84 * 86400)
    # The value it names lets the same history through.
    need = str(exc.value).split("this command with KERA_MAX_AGE_S=")[1].split()[0]
    monkeypatch.setenv("KERA_MAX_AGE_S", need)
    assert backfill_start(spring, "UTC", now_ms, 84 * 86400) < now_ms - 89 * DAY_MS


def test_the_command_says_why_without_a_traceback(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("kera-sim"))
    old = (date.today() - timedelta(days=120)).isoformat()
    done = subprocess.run(
        [exe, "backfill", "--start", old, "--days", "7", "--mqtt-url", "mqtt://127.0.0.1:9"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        # The test's environment (a faked clock included), without a raised age limit.
        env={**os.environ, "HOME": str(tmp_path), "KERA_MAX_AGE_S": ""},
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "ts_too_old" in " ".join(done.stderr.split())
