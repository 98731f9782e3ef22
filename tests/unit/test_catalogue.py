"""The device catalogue: loaded from data, extended by site files, and the document that
describes it generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices import KINDS, Registry, SiteConfigError, parse_site
from devices.catalogue_doc import BEGIN, END, markdown_tables

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-model.md"


def test_data_model_field_tables_are_the_catalogue() -> None:
    text = DOC.read_text("utf-8")
    block = text[text.index(BEGIN) : text.index(END) + len(END)] + "\n"
    assert block == markdown_tables(KINDS), "run `kera-ingest kinds --markdown` into the doc"


def test_existing_measurements_keep_their_field_types() -> None:
    """Data written before the catalogue stays queryable: same measurement, same types."""
    expected = {
        ("energy", "power_w"): "float", ("energy", "energy_kwh"): "float",
        ("occupancy", "people"): "int", ("occupancy", "co2_ppm"): "float",
        ("waste_bin", "distance_mm"): "float", ("waste_bin", "tilt"): "bool",
        ("waste_bin", "fill_pct"): "float",
    }  # fmt: skip
    have = {
        (spec.measurement, name): f.type
        for spec in KINDS.values()
        for name, f in spec.all_fields().items()
    }
    for key, ftype in expected.items():
        assert have[key] == ftype


SITE = """
site: kera
kinds:
  energy_meter:
    fields:
      reactive_power_var: {type: float, unit: var, min: -1000000, max: 1000000}
  soil_probe:
    measurement: soil
    description: soil moisture probe
    extra_tags: [bed]
    fields:
      moisture_pct: {type: float, unit: "%", min: 0, max: 100, required: true}
      temperature_c: {type: float, unit: °C, min: -40, max: 60}
    derived:
      wet: {type: bool, unit: "", expr: "moisture_pct > threshold"}
devices:
  - {id: em-1, kind: energy_meter, space: hall}
  - {id: soil-1, kind: soil_probe, space: roof, attributes: {bed: east, threshold: 30}}
"""


def test_a_site_adds_kinds_and_fields() -> None:
    from ingest.codecs import native
    from ingest.reading import Reason, Rejected
    from ingest.storage.lineproto import LineEncoder
    from ingest.validate import Validator

    reg = Registry(parse_site(SITE))
    v = Validator(reg)

    def line(device: str, body: bytes) -> str:
        decoded = native.decode(f"kera/kera/{device}/telemetry", body, "kera")[0]
        return LineEncoder("kera").encode(v.check(decoded, 1_790_000_000_000))

    assert "reactive_power_var=12.5" in line("em-1", b'{"reactive_power_var": 12.5}')
    soil = line("soil-1", b'{"moisture_pct": 41, "temperature_c": 7}')
    assert soil.startswith("soil,bed=east,device=soil-1")
    assert "wet=true" in soil
    with pytest.raises(Rejected) as info:
        line("soil-1", b'{"temperature_c": 7}')
    assert info.value.reason is Reason.MISSING_FIELD
    assert "em-1" in {d.id for d in reg}
    assert len(reg.site.catalogue) == len(KINDS) + 1


@pytest.mark.parametrize(
    ("kinds", "words"),
    [
        ("{occupancy: {fields: {people: {type: float, unit: people}}}}", "already in"),
        ("{x: {measurement: occupancy, fields: {people: {type: float, unit: p}}}}",
         "InfluxDB refuses"),
        ("{x: {measurement: m, fields: {f: {type: decimal, unit: u}}}}", "type must be one of"),
        ("{x: {measurement: m, fields: {site: {type: float, unit: u}}}}", "must match"),
        ("{x: {measurement: m, fields: {}}}", "at least one field"),
        ("{occupancy: {measurement: people}}", "cannot be changed"),
        ("{x: {measurement: m, fields: {f: {type: float, unit: u}},"
         " derived: {g: {type: float, unit: u, expr: 'f +'}}}}", "not an expression"),
    ],
)  # fmt: skip
def test_bad_kinds_are_refused_with_the_reason(kinds: str, words: str) -> None:
    with pytest.raises(SiteConfigError) as info:
        parse_site(f"site: k\nkinds: {kinds}\ndevices:\n  - {{id: a, kind: occupancy, space: h}}\n")
    assert words in str(info.value)


def test_alert_rules_name_catalogue_fields() -> None:
    base = "site: k\ndevices:\n  - {id: a, kind: occupancy, space: h}\nalerts:\n  rules:\n"
    ok = "    - {name: r, kind: threshold, measurement: indoor_air, field: co2_ppm, warning: 1}\n"
    assert parse_site(base + ok).alerts.rules[0].field_name == "co2_ppm"
    typo = "    - {name: r, kind: threshold, measurement: indoor_air, field: co2, warning: 1}\n"
    with pytest.raises(SiteConfigError, match="measurement 'indoor_air' has no field 'co2'"):
        parse_site(base + typo)
    nowhere = "    - {name: r, kind: threshold, measurement: air, field: co2_ppm, warning: 1}\n"
    with pytest.raises(SiteConfigError, match="no kind writes measurement 'air'"):
        parse_site(base + nowhere)
