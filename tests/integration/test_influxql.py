"""ingest.storage.influxql's one escaping rule, against the real InfluxDB: a measurement, field
or tag name and a tag value holding quotes, slashes, spaces, commas, regex characters or
non-ASCII text select exactly the point written with them, and nothing else. (Backslashes and
control characters are refused by the site file for names and tag values, so not tried.)"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.services import InfluxDB
from ingest.storage.influxql import between, ident, measurement, one_of, string
from ingest.storage.lineproto import format_line, series_key
from ingest.storage.query import influxql
from ingest.storage.transports import InfluxTarget, V1Transport

text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\\x7f"),
    min_size=1,
    max_size=24,
).filter(lambda s: s.strip() == s and not s.startswith("_"))  # InfluxDB reserves "_" names
_times = itertools.count(1_000_000)


@pytest.fixture(scope="module")
def db(influx: InfluxDB) -> tuple[str, str]:
    async def create() -> None:
        t = V1Transport(InfluxTarget(influx.url, "quoting"))
        await t.start()
        await t.create_database()
        await t.close()

    asyncio.run(create())
    return influx.url, "quoting"


async def _round_trip(
    url: str, database: str, m: str, tag: str, value: str, field: str
) -> tuple[int, int, int]:
    t = next(_times)
    line = format_line(series_key(m, {tag: value}), {field: 1.5}, t)
    w = V1Transport(InfluxTarget(url, database))
    await w.start()
    try:
        await w.write(line.encode())
    finally:
        await w.close()
    window = between(t, t + 1)
    exact = await influxql(
        url,
        f"SELECT {ident(field)} FROM {measurement(m)} WHERE {ident(tag)} = {string(value)} "
        f"AND {window}",
        database,
    )
    regex = await influxql(
        url,
        f"SELECT {ident(field)} FROM {measurement(m, 'autogen')} "
        f"WHERE {ident(tag)} =~ {one_of([value, value + 'x'])} AND {window}",
        database,
    )
    other = await influxql(
        url,
        f"SELECT {ident(field)} FROM {measurement(m)} "
        f"WHERE {ident(tag)} =~ {one_of([value + 'x'])} AND {window}",
        database,
    )
    return tuple(sum(len(s["values"]) for s in r) for r in (exact, regex, other))  # type: ignore[return-value]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(m=text, tag=text, value=text, field=text)
def test_quoted_names_and_values_select_exactly_what_was_written(
    db: tuple[str, str], m: str, tag: str, value: str, field: str
) -> None:
    if tag in ("time",) or field in ("time",) or tag == field:
        return  # "time" is InfluxDB's own; a tag and a field may not share a name
    url, database = db
    # A measurement of each example's own: one name as a tag here and a field there, in one
    # measurement, would make a query ambiguous whatever the quoting.
    m = f"{m} {next(_times)}"
    exact, regex, other = asyncio.run(_round_trip(url, database, m, tag, value, field))
    assert (exact, regex, other) == (1, 1, 0)


def test_hostile_text_stays_inside_its_quotes() -> None:
    assert ident('a"b') == '"a\\"b"'
    assert ident("a\\b") == '"a\\\\b"'
    assert string("it's") == "'it\\'s'"
    assert string("a\\'") == "'a\\\\\\''"
    assert one_of(["a/b", "c.d"]) == "/^(a\\/b|c\\.d)$/"
    assert measurement("m", "rp") == '"rp"."m"'
