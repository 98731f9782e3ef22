"""The simulator's behaviour over simulated days, its determinism, its faults and formats,
checked with the ingestor's own decoding and validation."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devices import Registry, parse_site
from devices.site import Impact, default_site_text
from firmware_sim import Faults, Format, MemorySink, build_fleet, run, scale_site, schedule
from firmware_sim.faults import FaultState
from firmware_sim.fleet import EVENT_SPACES, event_hours
from firmware_sim.runner import Summary
from ingest.codecs import native
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from ingest.reading import DeadLetter
from ingest.validate import Validator

START = 1_793_599_200_000  # 2026-11-02 08:00 Helsinki (+02:00), a Monday
DAY_MS = 86_400_000
HELSINKI = ZoneInfo("Europe/Helsinki")
START_DAY = datetime.fromtimestamp(START / 1000, HELSINKI).date()


def _readings(seed: int) -> list[tuple[str, bytes]]:
    fleet = build_fleet(Registry.load(), seed)
    return [(r.topic, r.payload()) for r in schedule(fleet, START, START + DAY_MS // 4)]


def _local_hour(ms: int) -> float:
    t = datetime.fromtimestamp(ms / 1000, UTC).astimezone(HELSINKI)
    return t.hour + t.minute / 60


def simulate(
    faults: Faults | None = None, days: float = 1.0, seed: int = 1, **kw: Any
) -> tuple[MemorySink, Summary]:
    sink = MemorySink()
    summary = run(
        Registry.load(),
        sink,
        seed=seed,
        start_ms=START,
        duration_s=days * 86400,
        speed=0,
        faults=faults,
        **kw,
    )
    return sink, summary


def test_same_seed_same_bytes() -> None:
    assert _readings(3) == _readings(3)
    assert _readings(3) != _readings(4)
    a, _ = simulate(Faults(malformed=0.05, duplicate=0.05, outage=0.01), days=0.5, seed=9)
    b, _ = simulate(Faults(malformed=0.05, duplicate=0.05, outage=0.01), days=0.5, seed=9)
    assert a.events == b.events
    tts_a, _ = simulate(days=0.2, fmt=Format.TTS_V3)
    tts_b, _ = simulate(days=0.2, fmt=Format.TTS_V3)
    assert tts_a.events == tts_b.events


def test_faults_leave_healthy_readings_alone() -> None:
    clean, _ = simulate(days=0.3)
    faulty, _ = simulate(Faults(spike=0.2), days=0.3)
    c = [e for e in clean.events if e[0] == "publish"]
    f = [e for e in faulty.events if e[0] == "publish"]
    assert len(c) == len(f)
    same = sum(1 for x, y in zip(c, f, strict=True) if x == y)
    assert 0.7 * len(c) < same < len(c)


def test_a_simulated_week_behaves() -> None:
    registry = Registry.load()
    validator = Validator(registry)
    energy: dict[str, float] = {}
    people_night = people_open = 0
    by_hour: dict[int, list[int]] = defaultdict(list)
    bins: dict[str, list[tuple[int, float]]] = defaultdict(list)
    event_evenings = 0
    for r in schedule(build_fleet(registry, 1), START, START + 7 * DAY_MS):
        reading = validator.check(native.decode(r.topic, r.payload(), "kera")[0], 0)
        assert json.loads(r.payload())["ts"] == reading.time_ms
        hour = _local_hour(reading.time_ms)
        if reading.measurement == "energy":
            kwh = float(reading.fields["energy_kwh"])
            assert kwh >= energy.get(r.device_id, 0.0)  # a meter never runs backwards
            energy[r.device_id] = kwh
        elif reading.measurement == "occupancy":
            people = int(reading.fields["people"])
            if hour < 7 or hour >= 21:
                people_night += people
            by_hour[int(hour)].append(people)
            if 17 <= hour < 20 and r.device_id == "occ-main-hall" and people > 60:
                event_evenings += 1
        elif reading.measurement == "waste_bin":
            bins[r.device_id].append((reading.time_ms, float(reading.fields["fill_pct"])))
    assert len(energy) == 5
    assert people_night == 0  # nobody at night
    mean = {h: sum(v) / len(v) for h, v in by_hour.items() if v}
    peak = max(mean, key=lambda h: mean[h])
    assert 10 <= peak <= 16  # the busiest hour is in opening hours
    people_open = sum(sum(v) for h, v in by_hour.items() if 8 <= h < 20)
    assert people_open > 0
    # Evening events happen on some weekdays, and fill the main hall.
    days = [datetime.fromtimestamp((START + d * DAY_MS) / 1000, HELSINKI).date() for d in range(7)]
    if any(event_hours(1, d) for d in days):
        assert event_evenings > 0
    # Bins fill between emptyings: within a day without collection the median level rises, and
    # every fraction is emptied at least once a week.
    for device_id, levels in bins.items():
        drops = sum(1 for (_, a), (_, b) in itertools.pairwise(levels) if b < a - 30)
        assert drops >= 1, device_id
        rises = sum(1 for (_, a), (_, b) in itertools.pairwise(levels) if b > a)
        falls = sum(1 for (_, a), (_, b) in itertools.pairwise(levels) if b < a)
        assert rises > falls, device_id


def _closed(impact: Impact, local: datetime) -> bool:
    """Outside the site file's opening hours."""
    hours = impact.open_minutes(local.weekday())
    minute = local.hour * 60 + local.minute
    return hours is None or not hours[0] <= minute < hours[1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nobody_is_counted_while_the_site_is_closed(seed: int) -> None:
    """A simulated week: every occupancy sensor and people counter reads 0 people, and the
    counter counts nobody coming in, whenever the site file's opening hours say closed and no
    evening event is on in its space. Events still fill their space after hours, and the people
    inside leave by the next reading after it ends or after closing time."""
    registry = Registry.load()
    impact = registry.site.impact
    closed = after_hours_events = 0
    for r in schedule(build_fleet(registry, seed), START, START + 7 * DAY_MS):
        if r.kind not in ("occupancy", "people_counter"):
            continue
        local = datetime.fromtimestamp(r.time_ms / 1000, UTC).astimezone(HELSINKI)
        space = registry.get(r.device_id).space  # type: ignore[union-attr]
        event = event_hours(seed, local.date()) if space in EVENT_SPACES else None
        hour = local.hour + local.minute / 60
        if not _closed(impact, local):
            continue
        if event is not None and event[0] <= hour < event[1]:
            after_hours_events += int(r.values["people"]) > 0
            continue
        closed += 1
        assert r.values["people"] == 0, (r.device_id, local.isoformat(), r.values)
        assert all(v == 0 for k, v in r.values.items() if k.startswith("zone_")), r.values
        assert r.values.get("count_in", 0) == 0, (r.device_id, local.isoformat(), r.values)
    assert closed > 1000
    if any(event_hours(seed, START_DAY + timedelta(days=d)) for d in range(7)):
        assert after_hours_events > 0


def test_the_simulator_keeps_the_site_files_opening_hours() -> None:
    """A site open 10-14 on weekdays only: nobody outside them, people inside them."""
    text = default_site_text().replace('mon: "08:00-20:00"', 'mon: "10:00-14:00"')
    site = Registry(parse_site(text))
    assert site.site.impact.open_minutes(0) == (600, 840)
    monday = [
        r for r in schedule(build_fleet(site, 1), START - 8 * 3_600_000, START + 16 * 3_600_000)
        if r.device_id == "occ-cafe"
    ]  # fmt: skip
    inside = [r for r in monday if 10 <= _local_hour(r.time_ms) < 14]
    outside = [r for r in monday if not 10 <= _local_hour(r.time_ms) < 14]
    assert any(r.values["people"] for r in inside)
    assert not any(r.values["people"] for r in outside if _local_hour(r.time_ms) < 17)


def test_every_fault_is_what_it_says_and_counted() -> None:
    registry = Registry.load()
    pipeline = Pipeline(registry, Stats(), max_future_s=300, max_age_s=None)
    faults = Faults(
        drop=0.02,
        outage=0.002,
        outage_s=1800,
        stuck=0.01,
        stuck_readings=5,
        spike=0.02,
        outlier=0.02,
        malformed=0.03,
        clock_skew_s=3600,
        skewed_share=0.2,
        battery_drain=True,
        duplicate=0.02,
    )
    sink, summary = simulate(faults, days=3)
    f = summary.faults
    for name in (
        "dropped",
        "outages",
        "stuck",
        "spikes",
        "outliers",
        "malformed_json",
        "malformed_type",
        "malformed_missing",
        "skewed",
        "duplicates",
        "missed_offline",
        "battery_empty",
    ):
        assert f[name] > 0, name
    published = [e for e in sink.events if e[0] == "publish"]
    assert len(published) == summary.published
    # Each outage and each empty battery is a last will; the device comes back after an outage.
    wills = Counter(e[1] for e in sink.events if e[0] == "will")
    assert sum(wills.values()) == f["outages"] + f["battery_empty"] == summary.status["will"]
    # Duplicates: that many payloads appear twice in a row.
    twice = sum(1 for a, b in itertools.pairwise(published) if a == b)
    assert twice == f["duplicates"]
    # What the ingestor makes of it: one rejection per injected broken message.
    reasons: Counter[str] = Counter()
    once = [e for i, e in enumerate(published) if i == 0 or e != published[i - 1]]
    for _, _, topic, payload in once:
        result = pipeline.handle(topic, payload, START + 4 * DAY_MS)
        if isinstance(result, DeadLetter):
            reasons[result.reason.value] += 1
    assert reasons["bad_json"] == f["malformed_json"]
    assert reasons["wrong_type"] == f["malformed_type"]
    assert reasons["missing_field"] == f["malformed_missing"]
    assert reasons["out_of_range"] == f["spikes"]
    assert (
        sum(reasons.values())
        == f["malformed_json"] + f["malformed_type"] + f["malformed_missing"] + f["spikes"]
    )


def test_skewed_clocks_are_rejected_as_future() -> None:
    registry = Registry.load()
    faults = Faults(clock_skew_s=3600, skewed_share=0.3)
    skew = {d.device.id: FaultState(d, faults, Counter()).skew_ms for d in build_fleet(registry, 1)}
    assert 0 < sum(1 for v in skew.values() if v) < len(skew)
    pipeline = Pipeline(registry, Stats(), max_future_s=300)
    sink, summary = simulate(faults, days=0.5)
    future = 0
    for _, device_id, topic, payload in (e for e in sink.events if e[0] == "publish"):
        received = json.loads(payload)["ts"] - skew[device_id]  # the true simulated time
        result = pipeline.handle(topic, payload, received)
        if skew[device_id]:
            assert isinstance(result, DeadLetter)
            assert result.reason.value == "ts_in_future"
            future += 1
        else:
            assert isinstance(result, list)
    assert future == summary.faults["skewed"]


@pytest.mark.parametrize("fmt", [Format.SENML, Format.TTS_V3, Format.CHIRPSTACK_V4])
def test_partner_formats_decode_to_the_native_readings(fmt: Format) -> None:
    registry = Registry.load()
    native_sink, _ = simulate(days=0.1)
    other_sink, _ = simulate(days=0.1, fmt=fmt)
    pipeline = Pipeline(registry, Stats())

    def points(sink: MemorySink) -> list[tuple[str, list[str], str]]:
        out = []
        for _, _, topic, payload in (e for e in sink.events if e[0] == "publish"):
            result = pipeline.handle(topic, payload, START)
            assert isinstance(result, list), result
            for line in result:
                if not line.startswith("device_status"):
                    series, fields, ts = line.split(" ")
                    out.append((series, sorted(fields.split(",")), ts))
        return out

    assert points(other_sink) == points(native_sink)


def test_scaled_fleet() -> None:
    bundled = Registry.load()
    registry = Registry(scale_site(bundled.site, 3))
    assert len(registry) == len(bundled) * 3
    assert registry.get("em-main-002") is not None
    euis = [d.dev_eui for d in registry if d.dev_eui]
    assert len(euis) == len(set(euis)) == sum(1 for d in bundled if d.dev_eui) * 3
    # `kera-sim site --scale 3` writes a file the ingestor loads: pilots follow their devices.
    done = subprocess.run(
        [str(Path(sys.executable).with_name("kera-sim")), "site", "--scale", "3"],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    scaled = parse_site(done.stdout)
    heat = next(p for p in scaled.pilots if p.id == "cafe-heat-control")
    assert heat.scope.devices == ("hm-cafe-001", "hm-cafe-002", "hm-cafe-003")
    assert len(scaled.devices) == len(bundled) * 3


def test_faults_for_one_device_only() -> None:
    clean, _ = simulate(days=0.5)
    faulty, summary = simulate(Faults(stuck=0.2, only=frozenset({"occ-meeting-1"})), days=0.5)
    assert summary.faults["stuck"] > 0
    for a, b in zip(clean.events, faulty.events, strict=True):
        if a[1] != "occ-meeting-1":
            assert a == b
    values = [
        json.loads(e[3]) for e in faulty.events if e[0] == "publish" and e[1] == "occ-meeting-1"
    ]
    repeats = sum(
        1
        for x, y in itertools.pairwise(values)
        if {k: v for k, v in x.items() if k != "ts"} == {k: v for k, v in y.items() if k != "ts"}
    )
    assert repeats >= summary.faults["stuck"] // 2
    with pytest.raises(ValueError, match="does not have"):
        simulate(Faults(stuck=0.1, only=frozenset({"nope"})), days=0.01)


@pytest.mark.parametrize("fmt", list(Format))
def test_every_bundled_device_is_accepted_in_every_format(fmt: Format) -> None:
    """The simulator speaks each device's vendor names (profiles and maps inverted) in every
    partner format, and the ingestor's mapping turns them back: nothing is rejected, and every
    kind's fields arrive."""
    from firmware_sim.formats import Encoder

    registry = Registry.load()
    stats = Stats()
    pipeline = Pipeline(registry, stats)
    fleet = build_fleet(registry, seed=3)
    start = 1_795_420_800_000  # Monday 2026-11-23 08:00 Helsinki, open
    measurements: set[str] = set()
    for sim in fleet:
        enc = Encoder(fmt, registry.site_id, sim.device, 3)
        for k in range(3):
            reading = sim.read(start + k * 60_000)
            topic, body = enc.encode(reading.time_ms, reading.values)
            result = pipeline.handle(topic, Encoder.dumps(body), start + k * 60_000 + 500)
            assert not isinstance(result, DeadLetter), (sim.device.id, result)
            measurements.update(line.split(",", 1)[0] for line in result)
    assert {spec.measurement for spec in registry.site.catalogue.values()} <= measurements
    assert not stats.rejected
