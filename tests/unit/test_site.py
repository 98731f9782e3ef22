from __future__ import annotations

from pathlib import Path

import pytest

from devices import KINDS, Registry, SiteConfigError, WasteFraction, load_site, parse_site


def test_default_site_covers_the_meeting_place() -> None:
    reg = Registry.load()
    assert reg.site_id == "kera"
    kinds = {d.kind for d in reg}
    assert kinds == set(KINDS)
    roles = {getattr(d, "role", None) for d in reg if d.kind == "energy_meter"}
    assert {"main-supply", "ev-charging"} <= roles
    assert any(d.space == "cafe" and d.kind == "energy_meter" for d in reg)
    fractions = {d.fraction for d in reg if d.kind == "waste_bin"}  # type: ignore[union-attr]
    assert {
        WasteFraction.MIXED,
        WasteFraction.BIO,
        WasteFraction.CARDBOARD,
        WasteFraction.PLASTIC,
        WasteFraction.GLASS,
        WasteFraction.METAL,
    } <= fractions
    assert len({d.space for d in reg if d.kind == "occupancy"}) >= 4


def test_minimal_site_from_the_issue(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: kera\n"
        "devices:\n"
        "  - id: em-main\n    kind: energy_meter\n    space: main-hall\n"
        "  - id: bin-bio-1\n    kind: waste_bin\n    space: yard\n    depth_mm: 1200\n"
    )
    site = load_site(path)
    assert [d.id for d in site.devices] == ["em-main", "bin-bio-1"]


def _error(text: str) -> str:
    with pytest.raises(SiteConfigError) as info:
        parse_site(text, "sites/bad.yaml")
    return str(info.value)


def test_error_names_file_device_and_field() -> None:
    msg = _error(
        "site: kera\ndevices:\n"
        "  - {id: em-1, kind: energy_meter, space: hall}\n"
        "  - {id: bin-bio-1, kind: waste_bin, space: yard}\n"
    )
    assert "sites/bad.yaml" in msg
    assert "device 'bin-bio-1' (devices[1])" in msg
    assert "'depth_mm'" in msg


@pytest.mark.parametrize(
    ("device", "field"),
    [
        ("{id: Bad Id, kind: occupancy, space: hall}", "'id'"),
        ("{id: x1, kind: toaster, space: hall}", "'kind'"),
        ('{id: x1, kind: occupancy, space: "hall\\nway"}', "'space'"),
        ("{id: x1, kind: occupancy, space: 'a\\b'}", "'space'"),
        ("{id: x1, kind: waste_bin, space: yard, depth_mm: -5}", "'depth_mm'"),
        ("{id: x1, kind: occupancy, space: hall, colour: red}", "'colour'"),
        ("{id: x1, kind: waste_bin, space: yard, depth_mm: 900, fraction: wood}", "'fraction'"),
    ],
)
def test_bad_device_fields(device: str, field: str) -> None:
    msg = _error(f"site: kera\ndevices:\n  - {device}\n")
    assert "devices[0]" in msg
    assert field in msg


def test_duplicate_ids_and_bad_yaml() -> None:
    dup = "{id: a1, kind: occupancy, space: hall}"
    assert "more than once" in _error(f"site: kera\ndevices:\n  - {dup}\n  - {dup}\n")
    assert "not valid YAML" in _error("site: [unclosed\n")
    assert "mapping" in _error("- just a list\n")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SiteConfigError, match=r"nope\.yaml"):
        load_site(tmp_path / "nope.yaml")


def test_a_site_file_binds_each_device_once_with_its_codec_beside_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading compiles a site once: each device is bound to its kind, profile, mapping and
    codec one time, with a relative codec path read from the site file's folder (before, a
    device was bound on its own, again by the site, and a third time for a codec's folder)."""
    from devices.site._devices import _DeviceBase

    bound: list[str] = []
    bind = _DeviceBase.bind

    def counting(self: _DeviceBase, *args: object, **kwargs: object) -> None:
        bound.append(self.id)
        bind(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_DeviceBase, "bind", counting)
    (tmp_path / "c.js").write_text("function decodeUplink(input) { return {data: {}}; }\n")
    site_file = tmp_path / "site.yaml"
    site_file.write_text(
        "site: kera\nsources: [{codec: tts_v3}]\ndevices:\n"
        "  - {id: d1, kind: indoor_air, space: lab, codec: c.js, dev_eui: '00000000000000aa'}\n"
        "  - {id: d2, kind: indoor_air, space: lab, profile: elsys-ers,"
        " dev_eui: '00000000000000ab'}\n"
    )
    registry = Registry(load_site(site_file))
    assert sorted(bound) == ["d1", "d2"]
    d1, d2 = registry.get("d1"), registry.get("d2")
    assert d1 is not None
    assert d2 is not None
    assert d1.codec_path == tmp_path / "c.js"
    assert d2.mapping  # the profile's field_map
