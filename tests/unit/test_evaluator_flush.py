"""The evaluator's rollup flush in slices, and its last flush at shutdown, never interleave:
whatever a sliced flush under way had taken is flushed by stop()
(ingest/evaluation/evaluator.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devices import Registry
from devices.site import parse_site
from ingest.evaluation import evaluator as ev
from ingest.evaluation.rollups import EmissionFactors
from ingest.reading import Reading
from ingest.settings import IngestSettings
from tests.helpers import Collected, Published

# Run again with the clock 400 days ahead by scripts/test (rollups).
pytestmark = pytest.mark.shifted_clock

SITE = """
site: t
timezone: UTC
devices:
  - {id: m1, kind: energy_meter, space: hall, interval_s: 900}
  - {id: m2, kind: energy_meter, space: cafe, interval_s: 900}
"""
T0 = 1_795_392_000_000  # Monday 2026-11-23 00:00 UTC


async def test_stop_during_a_sliced_flush_flushes_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ev, "ROLLUP_FLUSH_S", 0.0)
    monkeypatch.setattr(ev, "FLUSH_SLICE_S", 0.0)  # a turn after every step
    registry = Registry(parse_site(SITE))
    sink = Collected()
    settings = IngestSettings(spool_dir=tmp_path / "spool")
    evaluator = ev.Evaluator(registry, settings, EmissionFactors(), sink, Published())
    for i in range(9):
        for device in ("m1", "m2"):
            d = registry.get(device)
            assert d is not None
            evaluator.observe(
                Reading("energy", d, T0 + i * 15 * 60_000, {"energy_kwh": 10.0 + i, "power_w": 1.0})
            )
    flusher = asyncio.create_task(evaluator._flush_rollups())  # noqa: SLF001 - the job itself
    for _ in range(4):  # the job's sleep, then its flush's first steps, a turn each
        await asyncio.sleep(0)
    assert evaluator._flushing is not None  # noqa: SLF001 - a flush is under way
    flusher.cancel()
    await evaluator.stop()
    hours = [line for line in sink.lines if line.startswith("energy_hourly,")]
    assert {line.split("device=")[1].split(",")[0] for line in hours} == {"m1", "m2"}
    assert len({line.rsplit(" ", 1)[1] for line in hours}) == 2  # both hours of each meter
    with pytest.raises(asyncio.CancelledError):
        await flusher
