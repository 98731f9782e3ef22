"""The ingestor's public judge (ingest.judge), which the simulator's `send` and `watch` ask
instead of building the pipeline: the service's verdicts, nothing stored."""

from __future__ import annotations

import json
import time

from devices import Registry
from ingest.judge import Judge
from ingest.reading import Reason


def _now() -> int:
    return time.time_ns() // 1_000_000


def test_a_native_reading_is_accepted_with_the_lines_the_ingestor_stores() -> None:
    judge = Judge(Registry.load())
    now = _now()
    body = {"ts": now - 60_000, "energy_kwh": 1234.5, "power_w": 812.0, "colour": "red"}
    verdict = judge.judge("kera/kera/em-main/telemetry", json.dumps(body).encode(), now)
    assert verdict.accepted
    assert verdict.rejected is None
    [line] = verdict.lines
    assert line.startswith("energy,")
    assert "device=em-main" in line
    assert "energy_kwh=1234.5" in line
    assert line.endswith(f" {now - 60_000}")
    assert verdict.ignored == ("colour",)  # the native source's policy: ignore, counted
    assert judge.stats.accepted == 1


def test_refusals_say_why_and_no_unknown_device_becomes_a_series() -> None:
    judge = Judge(Registry.load())
    now = _now()
    unknown = judge.judge(
        "kera/kera/em-nobody/telemetry", json.dumps({"ts": now, "power_w": 1.0}).encode(), now
    )
    assert not unknown.accepted
    assert unknown.rejected is not None
    assert unknown.rejected.reason is Reason.UNKNOWN_DEVICE
    assert unknown.lines == ()
    future = judge.judge(
        "kera/kera/em-main/telemetry",
        json.dumps({"ts": now + 3_600_000, "power_w": 1.0}).encode(),
        now,
    )
    assert future.rejected is not None
    assert future.rejected.reason is Reason.TS_IN_FUTURE
    assert "kera/kera/+/telemetry" in judge.filters
