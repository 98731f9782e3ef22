"""Splitting the evaluation by space (`KERA_EVALUATION_SHARD`): every space in exactly one shard,
the same one in every process; a shard's subscription; and its rollups, which together are the
whole site's: device and space points the same, the site's day the sum of the shards'."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from devices import Registry
from ingest.evaluation.rollups import EmissionFactors, Rollups
from ingest.evaluation.shard import Shard
from ingest.reading import Reading
from ingest.settings import IngestSettings, load_settings
from tests.unit.test_impact_rollups import Sink, registry, scenario

# Run again with the clock 400 days ahead by scripts/test (rollups per shard).
pytestmark = pytest.mark.shifted_clock


@pytest.mark.parametrize(("text", "shard"), [("0/1", Shard(0, 1)), (" 3/4 ", Shard(3, 4))])
def test_a_shard_is_k_of_n(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard
    assert str(shard) == text.strip()


@pytest.mark.parametrize(
    ("text", "message"),
    [("4/4", "0 to 3"), ("1/0", "0 to 0"), ("a/4", "like 0/4"), ("1", "like 0/4"),
     ("-1/4", "like 0/4")],
)  # fmt: skip
def test_a_shard_that_cannot_be(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Shard.parse(text)


@given(st.sets(st.text(min_size=1, max_size=20), max_size=40), st.integers(1, 9))
def test_every_space_has_exactly_one_shard(spaces: set[str], n: int) -> None:
    for space in spaces:
        assert sum(Shard(k, n).owns(space) for k in range(n)) == 1


def test_the_hash_is_crc32_so_every_process_agrees() -> None:
    # Python's own hash() of a str changes with PYTHONHASHSEED; the shard must not.
    assert [k for k in range(4) if Shard(k, 4).owns("main-hall")] == [zlib.crc32(b"main-hall") % 4]


def test_a_shards_subscription_names_its_devices_and_keeps_the_others_whole() -> None:
    reg = Registry.load()
    shard = Shard(1, 3)
    mine = shard.devices(reg)
    assert 0 < len(mine) < len(reg)
    assert all(shard.owns(d.space) for d in reg if d.id in mine)
    filters = shard.filters(reg)
    assert {f for f in filters if f.startswith("kera/kera/") and "senml" not in f} == {
        f"kera/kera/{d}/{leaf}" for d in mine for leaf in ("telemetry", "status")
    }
    # LoRaWAN servers' and SenML topics do not say our device id: received whole, dropped
    # after decoding.
    assert {"v3/+/devices/+/up", "application/+/device/+/event/up", "kera/kera/senml/+"} <= set(
        filters
    )


SUMMED = ("supply_kwh", "kgco2e", "pv_kwh", "waste_l", "sorted_l", "emptyings", "occupied_h")


def points(shard: Shard | None) -> dict[tuple[str, int], dict[str, str]]:
    reg, sink = registry(), Sink()
    r = Rollups(reg, sink.write, EmissionFactors(0.1), shard=shard)
    for x in sorted(scenario(reg), key=lambda x: x.time_ms):
        if r.rolls_up(x.device.id):  # as the evaluator hands it only its shard's readings
            r.observe(Reading(x.measurement, reg.get(x.device.id), x.time_ms, x.fields))  # type: ignore[arg-type]
    r.flush()
    return sink.points


def test_the_shards_rollups_add_up_to_the_sites() -> None:
    whole = points(None)
    parts = [points(Shard(k, 2)) for k in range(2)]
    site = {k: v for k, v in whole.items() if k[0].startswith("impact_daily")}
    rest = {k: v for k, v in whole.items() if k not in site}
    # Device and space points: each from exactly one shard, and the same.
    merged = {k: v for p in parts for k, v in p.items() if not k[0].startswith("impact_daily")}
    assert merged == rest
    assert sum(len(p) for p in parts) - len(merged) == sum(
        1 for p in parts for k in p if k[0].startswith("impact_daily")
    )
    # The site's day: a point per shard, tagged with it, whose sums are the site's.
    for (key, t), fields in site.items():
        shares = {k: f for p in parts for (k, tt), f in p.items() if tt == t and k.startswith(
            "impact_daily,")}  # fmt: skip
        assert key == "impact_daily,site=t"
        assert set(shares) <= {"impact_daily,shard=0,site=t", "impact_daily,shard=1,site=t"}
        for name in SUMMED:
            if name in fields:
                total = sum(float(f.get(name, "0").rstrip("i")) for f in shares.values())
                assert total == pytest.approx(float(fields[name].rstrip("i"))), name


def test_the_setting_is_checked_where_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERA_EVALUATION_SHARD", "1/3")
    assert IngestSettings().shard() == Shard(1, 3)
    monkeypatch.setenv("KERA_EVALUATION_SHARD", "3/3")
    with pytest.raises(ValidationError, match="the number must be 0 to 2"):
        IngestSettings()
    monkeypatch.setenv("KERA_EVALUATION_SHARD", "")
    assert IngestSettings().shard() is None


def test_the_former_setting_names_are_still_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """KERA_ALERTS and KERA_ALERTS_SHARD, the names before `evaluation` said what they switch
    (alerts and rollups both), keep working in deployments that set them."""
    monkeypatch.setenv("KERA_ALERTS", "false")
    monkeypatch.setenv("KERA_ALERTS_SHARD", "2/4")
    s = IngestSettings()
    assert s.evaluate is False
    assert s.shard() == Shard(2, 4)
    assert s.as_env()["KERA_EVALUATE"] == "False"  # what --workers hands its workers
    monkeypatch.setenv("KERA_EVALUATE", "true")
    monkeypatch.delenv("KERA_ALERTS")
    assert IngestSettings().evaluate is True


def test_a_settings_file_with_the_former_keys_and_a_bare_alerts_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A TOML file's `alerts` and `alerts_shard` keys are read as the new settings; a variable
    without the KERA_ prefix (ALERTS) is somebody else's and is not read."""
    monkeypatch.setenv("ALERTS", "false")
    assert IngestSettings().evaluate is True
    settings_file = tmp_path / "kera.toml"
    settings_file.write_text('alerts = false\nalerts_shard = "1/2"\n')
    monkeypatch.setenv("KERA_SETTINGS_FILE", str(settings_file))
    s = load_settings()
    assert (s.evaluate, s.shard()) == (False, Shard(1, 2))
