from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import Registry, parse_site
from ingest.reading import FieldValue, Reading
from ingest.storage.lineproto import (
    LineEncoder,
    escape_key,
    escape_measurement,
    escape_string,
    format_line,
    format_value,
    parse_line,
    parse_value,
    series_key,
    split_lines,
)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("main hall", r"main\ hall"),
        ("a,b", r"a\,b"),
        ("k=v", r"k\=v"),
        ("Kahvila ja café", r"Kahvila\ ja\ café"),
        ('say "hi"', r'say\ "hi"'),
    ],
)
def test_escape_key(raw: str, escaped: str) -> None:
    assert escape_key(raw) == escaped


def test_measurement_escapes_comma_and_space_only() -> None:
    assert escape_measurement("my m,x=1") == r"my\ m\,x=1"


@pytest.mark.parametrize("bad", ["two\nlines", "cr\rhere", "back\\slash"])
def test_unescapable_tag_text_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="line break or backslash"):
        escape_key(bad)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", '"plain"'),
        ('quote " inside', r'"quote \" inside"'),
        ("back\\slash", r'"back\\slash"'),
        ("new\nline", '"new\nline"'),
        ("ääkköset ✓", '"ääkköset ✓"'),
        ("a=b, c d", '"a=b, c d"'),
    ],
)
def test_escape_string(raw: str, escaped: str) -> None:
    assert escape_string(raw) == escaped


def test_values() -> None:
    assert format_value(True) == "true"
    assert format_value(False) == "false"
    assert format_value(12) == "12i"
    assert format_value(12.0) == "12.0"
    assert format_value(1e-7) == "1e-07"
    assert format_value("x") == '"x"'


def test_series_key_sorts_tags() -> None:
    key = series_key("waste_bin", {"space": "yard 2", "device": "b1", "site": "kera"})
    assert key == r"waste_bin,device=b1,site=kera,space=yard\ 2"


def test_format_line() -> None:
    line = format_line("energy,device=e", {"power_w": 1.5, "n": 3, "ok": True}, 1_700_000_000_000)
    assert line == "energy,device=e power_w=1.5,n=3i,ok=true 1700000000000"


def test_encoder_builds_tags_from_registry() -> None:
    reg = Registry(
        parse_site(
            "site: kera\ndevices:\n"
            "  - {id: bin-1, kind: waste_bin, space: 'Yard, east=1', depth_mm: 900,"
            " fraction: glass}\n"
        )
    )
    device = reg.get("bin-1")
    assert device is not None
    enc = LineEncoder("kera")
    r = Reading("waste_bin", device, 1_000, {"distance_mm": 450.0, "fill_pct": 50.0})
    assert enc.encode(r) == (
        r"waste_bin,device=bin-1,fraction=glass,site=kera,space=Yard\,\ east\=1 "
        "distance_mm=450.0,fill_pct=50.0 1000"
    )


_tag_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\\\n\r"), min_size=1
)
_value = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"])),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)


@given(
    st.lists(
        st.tuples(
            _tag_text,
            st.dictionaries(_tag_text, _tag_text, max_size=3),
            st.dictionaries(_tag_text, _value, min_size=1, max_size=4),
            st.integers(0, 2**62),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_split_lines_undoes_joining(
    points: list[tuple[str, dict[str, str], dict[str, FieldValue], int]],
) -> None:
    """Tags with quotes, spaces and commas, strings with newlines, quotes and backslashes."""
    lines = [format_line(series_key(m, tags), fields, t) for m, tags, fields, t in points]
    assert split_lines("\n".join(lines)) == lines


@given(
    _tag_text,
    st.dictionaries(_tag_text, _tag_text, max_size=3),
    st.dictionaries(_tag_text, _value, min_size=1, max_size=4),
    st.integers(0, 2**62),
)
def test_parse_line_reads_back_what_format_line_wrote(
    measurement: str, tags: dict[str, str], fields: dict[str, FieldValue], t: int
) -> None:
    """What the rollups' tests and bench/rollups_oracle.py compare: the series key as written,
    each field with its type (strings with spaces, commas, quotes, `=` and newlines), the time."""
    key = series_key(measurement, tags)
    got_key, got, got_t = parse_line(format_line(key, fields, t))
    assert (got_key, got_t) == (key, t)
    assert {k: parse_value(v) for k, v in got.items()} == {
        escape_key(k): v for k, v in fields.items()
    }
    assert all(type(parse_value(got[escape_key(k)])) is type(v) for k, v in fields.items())


def test_ignored_vendor_field_names_become_safe_tags() -> None:
    """A vendor's field name is a tag of the unknown_fields measurement: whatever a payload
    puts in it, the line stays one well-formed point."""
    from ingest.observability.counters import Stats
    from ingest.observability.pipeline_measurement import PipelineMeasurement

    stats = Stats()
    stats.ignore("em-main", ("x=1,device=em-solar power_w", "ok_name", "a\nb", "é" * 80))
    pipeline_stats = PipelineMeasurement(stats, "kera", "i1")
    lines = pipeline_stats.lines()
    unknown = [line for line in lines if line.startswith("unknown_fields,")]
    assert len(unknown) == 4
    for line in unknown:
        key, fields, _ = line.split(" ")
        assert fields == "count=1i"
        assert "\n" not in line
        assert key.count(",") == 3
    assert any("field=ok_name" in line for line in unknown)
    assert any("field=x_1_device_em-solar_power_w" in line for line in unknown)
    # Deltas: the next interval writes none until a field is ignored again.
    assert not [x for x in pipeline_stats.lines() if x.startswith("unknown_fields,")]
    stats.ignore("em-main", ("ok_name",))
    again = [x for x in pipeline_stats.lines() if x.startswith("unknown_fields,")]
    assert len(again) == 1
    assert "field=ok_name" in again[0]
