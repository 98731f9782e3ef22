"""Week-to-week variation in the simulator (`--busy-weeks`): some weeks busier than others, the
same for every device of a site, and nothing changes without it (firmware_sim/_sim_base.py)."""

from __future__ import annotations

import json
import statistics
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import yaml

from devices import Registry, parse_site
from devices.site import default_site_text
from firmware_sim import MemorySink, run
from firmware_sim.fleet import busy_factor, opening_factor, week_factor

TZ = ZoneInfo("Europe/Helsinki")
MONDAY = datetime(2026, 3, 2, 12, 0, tzinfo=TZ)  # a fixed week: the variation is by ISO week


def test_each_week_has_its_own_factor_shared_by_its_days() -> None:
    noon = [MONDAY + timedelta(weeks=w) for w in range(40)]
    plain = [busy_factor(t, 1, "coworking") for t in noon]
    varied = [busy_factor(t, 1, "coworking", busy_weeks=0.3) for t in noon]
    assert plain == [opening_factor(t) for t in noon]  # nothing changes without it
    assert statistics.pstdev(varied) > 0.1 > statistics.pstdev(plain)
    # Within a week every weekday moves by the same factor (capped at a full house).
    for monday in noon[:10]:
        factor = week_factor(1, *monday.isocalendar()[:2], 0.3)
        for day in range(6):
            t = monday + timedelta(days=day)
            assert busy_factor(t, 1, "coworking", busy_weeks=0.3) == min(
                1.0, opening_factor(t) * factor
            )
    # Another seed, other weeks; and a closed day stays closed.
    assert varied != [busy_factor(t, 2, "coworking", busy_weeks=0.3) for t in noon]
    sunday = MONDAY + timedelta(days=6)
    assert busy_factor(sunday, 1, "coworking", busy_weeks=0.3) == 0.0


def _weekly_use(busy_weeks: float) -> list[float]:
    """People counted in the coworking room per week, over eight weeks."""
    raw = yaml.safe_load(default_site_text())
    site = {**raw, "devices": [{**d, "interval_s": 600} for d in raw["devices"]
                               if d["id"] == "occ-coworking"], "pilots": []}  # fmt: skip
    registry = Registry(parse_site(yaml.safe_dump(site), "<one room>"))
    sink = MemorySink()
    start_ms = int(MONDAY.replace(hour=0).timestamp() * 1000)
    run(registry, sink, seed=3, start_ms=start_ms, duration_s=8 * 7 * 86400.0, speed=0,
        busy_weeks=busy_weeks)  # fmt: skip
    weeks = [0.0] * 8
    for event, _, _, payload in sink.events:
        if event == "publish":
            body = json.loads(payload)
            weeks[min(7, (body["ts"] - start_ms) // (7 * 86_400_000))] += body["people"]
    return weeks


def test_busy_weeks_reach_the_devices_readings() -> None:
    plain, varied = _weekly_use(0.0), _weekly_use(0.4)
    spread = [statistics.pstdev(w) / statistics.fmean(w) for w in (plain, varied)]
    assert spread[1] > 2 * spread[0], spread
