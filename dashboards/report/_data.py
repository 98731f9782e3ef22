"""The week's figures, read from the rollup measurements only (never from raw readings, which
may have expired), each with the query it came from so the report can say so."""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from devices import Registry
from devices.contract import (
    ALERTS_MEASUREMENT,
    DEVICE_DAILY,
    IMPACT_DAILY,
    METRIC_TAG,
    PILOT_RESULTS_MEASUREMENT,
    PILOT_TAG,
    SITE_TAG,
    SPACE_DAILY,
    WASTE_DAILY,
)
from devices.factor_source import FactorSource
from devices.site import Impact
from ingest.evaluation.rollups import (
    HOUR_MS,
    LAG_READINGS,
    LAG_ROLLUPS,
    ROLLUP_MEASUREMENTS,
    hours_behind,
    qualified,
    week_bounds,
)
from ingest.storage.influxql import between, ident, string
from ingest.storage.query import influxql
from pilots.evaluate import stored_effect
from pilots.stats import Effect

WEEK_MS = 7 * 24 * HOUR_MS

# The week-level totals, each an InfluxQL aggregate over one rollup measurement. Ratios are
# ratios of sums (never means of daily ratios), so a quiet day weighs what it is worth.
TOTALS: dict[str, tuple[str, str, str]] = {
    # key: (label, unit, SELECT ... FROM ... part)
    "supply_kwh": ("Grid energy", "kWh", f'sum("supply_kwh") FROM {ident(IMPACT_DAILY)}'),
    "kgco2e": ("Emissions", "kgCO2e", f'sum("kgco2e") FROM {ident(IMPACT_DAILY)}'),
    "pv_kwh": ("Solar produced", "kWh", f'sum("pv_kwh") FROM {ident(IMPACT_DAILY)}'),
    "heat_kwh": ("District heat", "kWh", f'sum("heat_kwh") FROM {ident(IMPACT_DAILY)}'),
    "heat_kgco2e": ("Heat emissions", "kgCO2e", f'sum("heat_kgco2e") FROM {ident(IMPACT_DAILY)}'),
    "water_m3": ("Water", "m³", f'sum("water_m3") FROM {ident(IMPACT_DAILY)}'),
    "waste_l": ("Waste collected", "l", f'sum("waste_l") FROM {ident(IMPACT_DAILY)}'),
    "sorting_rate_pct": (
        "Sorting rate", "%", f'sum("sorted_l") / sum("waste_l") * 100 FROM {ident(IMPACT_DAILY)}'
    ),
    "emptyings": ("Emptyings", "", f'sum("emptyings") FROM {ident(IMPACT_DAILY)}'),
    "occupied_h": (
        "Hours of use (all spaces)", "h", f'sum("occupied_s") / 3600 FROM {ident(SPACE_DAILY)}'
    ),
    "utilisation_pct": (
        "Space utilisation while open", "%",
        f'sum("occupied_open_s") / sum("open_s") * 100 FROM {ident(SPACE_DAILY)}',
    ),
    "good_air_pct": (
        "Occupied time with CO2 < 1000 ppm", "%",
        f'sum("co2_good_s") / sum("co2_occupied_s") * 100 FROM {ident(SPACE_DAILY)}',
    ),
    "completeness_pct": (
        "Data completeness",
        "%",
        f'sum("readings") / sum("expected") * 100 FROM {ident(DEVICE_DAILY)}',
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class AlertSummary:
    rule: str
    raised: int
    resolved: int
    still_open: int
    median_resolve_s: float | None
    max_resolve_s: float | None


@dataclass(frozen=True, slots=True)
class FactorLine:
    """An emission factor behind the week's emissions: from the site file, with the number of
    the week's stored days that were rolled up with an example factor (`impact_daily`)."""

    energy: str  # "electricity", "district heat"
    field: str  # the prefix of its stored fields in impact_daily
    value: str  # "0.05 kg/kWh", or the hourly series and the constant for other hours
    source: FactorSource
    how_to: str  # how to set a published one (devices/factor_source.py)
    example_days: int = 0


def factor_lines(impact: Impact) -> list[FactorLine]:
    """The site's emission factors (Impact.factors), electricity first; none without one."""
    return [FactorLine(f.energy, f.field, f.value, f.source, f.how_to) for f in impact.factors()]


@dataclass(frozen=True, slots=True)
class PilotLine:
    """A pilot that ran during the week, per metric: its latest result up to the week's end."""

    pilot: str
    title: str
    metric: str
    effect: Effect | None  # None: not judged yet
    judged_ms: int | None


@dataclass(slots=True)
class WeekData:
    site: str
    site_name: str
    week: str
    tz: ZoneInfo
    start_ms: int
    end_ms: int
    influx: str  # where the numbers were read (URL without credentials, database)
    totals: dict[str, float | None] = field(default_factory=dict)
    previous: dict[str, float | None] = field(default_factory=dict)
    spaces_energy: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    fractions: list[tuple[str, float, int, int, int]] = field(default_factory=list)
    space_use: list[tuple[str, float, float, float | None, int, float | None]] = field(
        default_factory=list
    )  # space, hours of use, utilisation %, mean people while open, peak, good air %
    hours_previous: dict[str, float] = field(default_factory=dict)
    alerts: list[AlertSummary] = field(default_factory=list)
    completeness: list[tuple[str, str, int, float, float]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    # The emission factors behind the week's kgCO2e (site file and stored days).
    factors: list[FactorLine] = field(default_factory=list)
    # The newest raw reading and the newest hourly rollup of the week: when the rollups lag the
    # readings (a backfill still being rolled up), the report says so instead of being quietly
    # short.
    newest_reading_ms: int | None = None
    newest_rollup_ms: int | None = None
    daily: list[tuple[int, float | None, float | None, float | None]] = field(
        default_factory=list
    )  # day, grid kWh, pv kWh, kgCO2e; None for a day without data
    pilots: list[PilotLine] = field(default_factory=list)

    @property
    def rollups_behind_h(self) -> float:
        """Hours the rollups lag the readings (0 when they are up to date)."""
        return hours_behind(self.newest_reading_ms, self.newest_rollup_ms, self.start_ms)


class Reader:
    def __init__(
        self, url: str, database: str, token: str | None, site: str, rollups_rp: str | None
    ) -> None:
        self.url, self.database, self.token = url, database, token
        self.site = site
        self.rp = rollups_rp
        self.log: list[str] = []

    def _from(self, match: re.Match[str]) -> str:
        name = match.group(1)
        own_rp = name in ROLLUP_MEASUREMENTS or name == PILOT_RESULTS_MEASUREMENT
        return "FROM " + (qualified(name, self.rp) if own_rp else ident(name))

    async def select(
        self, what: str, lo: int, hi: int, group: str = "", condition: str = ""
    ) -> list[dict[str, Any]]:
        what = re.sub(r'FROM "(\w+)"', self._from, what)
        also = f"AND {condition} " if condition else ""
        q = (
            f"SELECT {what} WHERE {ident(SITE_TAG)} = {string(self.site)} {also}"
            f"AND {between(lo, hi)} {group}"
        ).strip()
        self.log.append(q)
        return await influxql(self.url, q, self.database, self.token)


def _first(series: list[dict[str, Any]]) -> float | None:
    for s in series:
        for row in s.get("values", []):
            if row[1] is not None:
                return float(row[1])
    return None


def _by_tag(series: list[dict[str, Any]], tag: str) -> dict[str, list[Any]]:
    return {s["tags"][tag]: s["values"][0] for s in series if s.get("values")}


async def _totals(r: Reader, lo: int, hi: int) -> dict[str, float | None]:
    totals = {key: _first(await r.select(sql, lo, hi)) for key, (_, _, sql) in TOTALS.items()}
    if not totals.get("emptyings"):
        # No bin was emptied: nothing was collected that a volume or a rate could describe.
        totals["waste_l"] = totals["sorting_rate_pct"] = None
    return totals


async def _factors(
    r: Reader, lines: list[FactorLine], lo: int, hi: int, tz: str
) -> list[FactorLine]:
    """The site's factors, each with the days of the week stored with an example factor: days
    rolled up before the site file named a published one still carry the example's figures.
    Counted by local day, since each shard of a sharded site writes its own point of a day."""
    out = []
    for line in lines:
        rows = await r.select(
            f'count({ident(line.field + "_source")}) FROM {ident(IMPACT_DAILY)}', lo, hi,
            f"GROUP BY time(1d) fill(none) tz({string(tz)})",
            condition=f"{ident(line.field + '_example')} = true",
        )  # fmt: skip
        days = sum(1 for x in rows for v in x.get("values", []) if v[1])
        out.append(replace(line, example_days=days))
    return out


async def _newest(r: Reader, sqls: list[str], lo: int, hi: int) -> int | None:
    times = []
    for sql in sqls:
        for s in await r.select(sql, lo, hi):
            times += [int(row[0]) for row in s.get("values", []) if row[1] is not None]
    return max(times, default=None)


async def load_week(
    registry: Registry,
    url: str,
    database: str,
    token: str | None,
    week: str,
    on_step: Callable[[str], None] | None = None,
    rollups_rp: str | None = None,
) -> WeekData:
    site = registry.site
    tz = ZoneInfo(site.timezone)
    lo, hi = week_bounds(week, tz)
    r = Reader(url, database, token, site.site, rollups_rp)
    step = on_step or (lambda _name: None)
    data = WeekData(
        site=site.site,
        site_name=site.name or site.site,
        week=week,
        tz=tz,
        start_ms=lo,
        end_ms=hi,
        influx=f"{url.rsplit('@', maxsplit=1)[-1]} database {database}",
    )
    data.factors = await _factors(r, factor_lines(site.impact), lo, hi, site.timezone)
    data.totals = await _totals(r, lo, hi)
    data.previous = await _totals(r, lo - WEEK_MS, lo)
    step("totals")

    data.newest_reading_ms = await _newest(
        r, [f"last({ident(f)}) FROM {ident(m)}" for f, m in LAG_READINGS], lo, hi
    )
    data.newest_rollup_ms = await _newest(
        r, [f"last({ident(f)}) FROM {ident(m)}" for f, m in LAG_ROLLUPS], lo, hi
    )
    rows = await r.select(
        f'sum("supply_kwh"), sum("pv_kwh"), sum("kgco2e") FROM {ident(IMPACT_DAILY)}', lo, hi,
        f"GROUP BY time(1d) fill(none) tz({string(site.timezone)})",
    )  # fmt: skip
    data.daily = [
        (int(v[0]), *(None if x is None else float(x) for x in v[1:4]))  # type: ignore[misc]
        for s in rows
        for v in s["values"]
    ]
    spaces = _by_tag(
        await r.select(
            'sum("kwh"), sum("kgco2e"), sum("supply_kwh"), sum("pv_kwh") '
            f"FROM {ident(SPACE_DAILY)}",
            lo, hi, 'GROUP BY "space"',
        ),
        "space",
    )  # fmt: skip
    data.spaces_energy = sorted(
        ((sp, *(float(x or 0) for x in v[1:5])) for sp, v in spaces.items()),  # type: ignore[misc]
        key=lambda row: -(row[1] + row[3]),
    )
    step("energy and emissions")

    fractions = _by_tag(
        await r.select(
            'sum("volume_l"), sum("emptyings"), sum("too_early"), sum("too_late") '
            f'FROM {ident(WASTE_DAILY)}', lo, hi, 'GROUP BY "fraction"',
        ),
        "fraction",
    )  # fmt: skip
    data.fractions = sorted(
        ((f, float(v[1] or 0), int(v[2] or 0), int(v[3] or 0), int(v[4] or 0))
         for f, v in fractions.items()),
        key=lambda row: -row[1],
    )  # fmt: skip
    step("waste")

    use_sql = (
        'sum("occupied_s") / 3600, sum("occupied_open_s") / sum("open_s") * 100, '
        'sum("people_open_s") / sum("measured_open_s"), max("people_peak"), '
        f'sum("co2_good_s") / sum("co2_occupied_s") * 100 FROM {ident(SPACE_DAILY)}'
    )
    use = _by_tag(await r.select(use_sql, lo, hi, 'GROUP BY "space"'), "space")
    data.space_use = sorted(
        (
            (sp, float(v[1] or 0), float(v[2] or 0), None if v[3] is None else float(v[3]),
             int(v[4] or 0), None if v[5] is None else float(v[5]))
            for sp, v in use.items()
            if v[2] is not None  # spaces without an occupancy sensor have no opening base
        ),
        key=lambda row: -row[1],
    )  # fmt: skip
    before = _by_tag(
        await r.select(f'sum("occupied_s") / 3600 FROM {ident(SPACE_DAILY)}', lo - WEEK_MS, lo,
                       'GROUP BY "space"'),
        "space",
    )  # fmt: skip
    data.hours_previous = {sp: float(v[1] or 0) for sp, v in before.items()}
    step("space use")

    data.alerts = _alert_summary(
        await r.select(
            f'"firing", "level" FROM {ident(ALERTS_MEASUREMENT)}',
            lo,
            hi,
            'GROUP BY "rule", "device"',
        ),
        # Firings of the week resolved in the next one still count as resolved, with their time.
        await r.select(
            f'"firing" FROM {ident(ALERTS_MEASUREMENT)}',
            hi,
            hi + WEEK_MS,
            'GROUP BY "rule", "device"',
        ),
    )
    step("alerts")

    kinds = {d.id: d.kind for d in registry}
    done = _by_tag(
        await r.select(f'sum("readings"), sum("expected") FROM {ident(DEVICE_DAILY)}', lo, hi,
                       'GROUP BY "device"'),
        "device",
    )  # fmt: skip
    data.completeness = sorted(
        (
            (dev, kinds.get(dev, "?"), int(v[1] or 0), float(v[2] or 0),
             min(100.0, 100 * float(v[1] or 0) / float(v[2])) if v[2] else 0.0)
            for dev, v in done.items()
        ),
        key=lambda row: (row[4], row[0]),
    )  # fmt: skip
    for d in registry:  # a device silent all week has no device_daily point at all
        if d.id not in done:
            data.completeness.insert(0, (d.id, d.kind, 0, 7 * 86400 / d.expected_interval_s, 0.0))
    step("data completeness")
    data.pilots = await _pilots(r, registry, lo, hi)
    step("pilots")
    data.queries = r.log
    return data


# A pilot judged daily has a result from the week's last day; a missed job or two still show.
PILOT_RESULT_MAX_AGE_MS = 7 * 24 * HOUR_MS


async def _pilots(r: Reader, registry: Registry, lo: int, hi: int) -> list[PilotLine]:
    """Every pilot that ran during the week, with each metric's latest stored result (the whole
    point, never fields of different days mixed), or none when it was not judged yet."""
    tz = ZoneInfo(registry.site.timezone)
    first = datetime.fromtimestamp(lo / 1000, tz).date()
    last = datetime.fromtimestamp((hi - 1) / 1000, tz).date()
    running = [
        p for p in registry.site.pilots if p.start <= last and (p.end is None or p.end >= first)
    ]
    if not running:
        return []
    rows = await r.select(
        f'* FROM {ident(PILOT_RESULTS_MEASUREMENT)}', lo - PILOT_RESULT_MAX_AGE_MS, hi,
        f'GROUP BY {ident(PILOT_TAG)}, {ident(METRIC_TAG)} ORDER BY time DESC LIMIT 1',
    )  # fmt: skip
    latest = {
        (s["tags"][PILOT_TAG], s["tags"][METRIC_TAG]): dict(
            zip(s["columns"], s["values"][0], strict=True)
        )
        for s in rows
        if s.get("values")
    }

    out = []
    for p in running:
        for m in p.metrics:
            row = latest.get((p.id, m.value), {})
            out.append(PilotLine(p.id, p.title, m.value, stored_effect(row), row.get("time")))
    return out


def _alert_summary(week: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[AlertSummary]:
    later = {(s["tags"]["rule"], s["tags"]["device"]): s["values"] for s in after}
    per_rule: dict[str, list[float | None]] = {}
    for s in week:
        key = (s["tags"]["rule"], s["tags"]["device"])
        durations = per_rule.setdefault(key[0], [])
        events = [(v[0], bool(v[1]), True) for v in s["values"]]
        events += [(v[0], bool(v[1]), False) for v in later.get(key, [])]
        raised_at: int | None = None
        for t, firing, in_week in events:
            if firing and raised_at is None and in_week:
                raised_at = t
            elif not firing and raised_at is not None:
                durations.append((t - raised_at) / 1000)
                raised_at = None
        if raised_at is not None:
            durations.append(None)  # still firing
    out = []
    for rule, durations in sorted(per_rule.items()):
        done = [d for d in durations if d is not None]
        out.append(
            AlertSummary(
                rule=rule,
                raised=len(durations),
                resolved=len(done),
                still_open=len(durations) - len(done),
                median_resolve_s=statistics.median(done) if done else None,
                max_resolve_s=max(done) if done else None,
            )
        )
    return [a for a in out if a.raised]
