"""FMI open data as the pilots' second weather source (pilots/fmi.py), on recorded responses
served from loopback: no network in tests."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from devices.pilots import FmiStation
from pilots.fmi import MAX_HOURS, FmiError, fill_days, hourly_temperature, parse_simple
from tests.helpers import http_server

# Run again with the clock 400 days ahead by scripts/test (weather for pilots).
pytestmark = pytest.mark.shifted_clock

DATA = Path(__file__).parents[1] / "data" / "fmi"
RECORDED = (DATA / "simple-t2m-hourly.xml").read_text()
TZ = ZoneInfo("Europe/Helsinki")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_a_recorded_response_is_read_hour_by_hour() -> None:
    hours = parse_simple(RECORDED)
    assert len(hours) == 24
    assert hours[ms("2020-05-29T08:00")] == 12.1
    assert hours[ms("2020-05-30T07:00")] == 12.9
    assert sorted(hours) == [ms("2020-05-29T08:00") + i * 3_600_000 for i in range(24)]


def test_fmis_nan_is_a_missing_hour_not_a_value() -> None:
    missing = RECORDED.replace(
        "<BsWfs:ParameterValue>14.5</BsWfs:ParameterValue>",
        "<BsWfs:ParameterValue>NaN</BsWfs:ParameterValue>",
    )
    hours = parse_simple(missing)
    assert len(hours) == 23
    assert ms("2020-05-29T17:00") not in hours


def test_an_exception_report_says_what_fmi_refused() -> None:
    refused = "FMI refused the request: Invalid parameter value for 'place'.; Unknown location"
    with pytest.raises(FmiError, match=re.escape(refused)):
        parse_simple((DATA / "exception-report.xml").read_bytes())
    with pytest.raises(FmiError, match="not XML"):
        parse_simple(b"<html><body>502 Bad Gateway")


@given(st.text(max_size=300) | st.binary(max_size=300))
def test_any_answer_is_values_or_an_fmi_error(body: str | bytes) -> None:
    try:
        hours = parse_simple(body)
    except FmiError:
        return
    assert all(isinstance(v, float) for v in hours.values())


async def test_a_pilot_span_is_asked_a_week_at_a_time() -> None:
    asked: list[dict[str, str]] = []

    async def wfs(request: web.Request) -> web.Response:
        asked.append(dict(request.query))
        return web.Response(text=RECORDED, content_type="text/xml")

    async with http_server("/wfs", wfs, method="GET") as base:
        station = FmiStation(place="Espoo", url=f"{base}/wfs")
        lo, hi = ms("2020-05-20T00:00"), ms("2020-06-03T00:00")
        hours = await hourly_temperature(station, lo, hi)
    assert len(asked) == 2  # 336 hours
    first, second = asked
    assert first["storedquery_id"] == "fmi::observations::weather::simple"
    assert (first["parameters"], first["timestep"], first["place"]) == ("t2m", "60", "Espoo")
    assert "fmisid" not in first
    assert (first["starttime"], first["endtime"]) == ("2020-05-20T00:00:00Z",
                                                      "2020-05-26T23:00:00Z")  # fmt: skip
    assert (second["starttime"], second["endtime"]) == ("2020-05-27T00:00:00Z",
                                                        "2020-06-02T23:00:00Z")  # fmt: skip
    span = datetime.fromisoformat(first["endtime"].replace("Z", "+00:00")) - datetime.fromisoformat(
        first["starttime"].replace("Z", "+00:00")
    )
    assert span == timedelta(hours=MAX_HOURS - 1)
    assert len(hours) == 24


async def test_fmi_unreachable_or_refusing_is_an_fmi_error() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=400, body=(DATA / "exception-report.xml").read_bytes())

    async with http_server("/wfs", refuse, method="GET") as base:
        with pytest.raises(FmiError, match="Unknown location: Nowhere"):
            await hourly_temperature(FmiStation(place="Nowhere", url=f"{base}/wfs"), 0, 3_600_000)
    with pytest.raises(FmiError, match=re.escape("cannot reach FMI at http://127.0.0.1:9/wfs")):
        await hourly_temperature(FmiStation(fmisid=100971, url="http://127.0.0.1:9/wfs"), 0,
                                 3_600_000)  # fmt: skip


def test_the_sites_station_first_fmi_for_the_days_it_missed() -> None:
    def day_hours(day: date, value: float, n: int = 24) -> dict[int, float]:
        start = datetime(day.year, day.month, day.day, tzinfo=TZ)
        return {int((start + timedelta(hours=i)).timestamp() * 1000): value for i in range(n)}

    d1, d2, d3 = date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7)
    own = day_hours(d1, -5.0) | day_hours(d2, -6.0, n=10)  # the station was down most of d2
    fmi = day_hours(d1, -4.0) | day_hours(d2, -7.0) | day_hours(d3, -8.0, n=12)
    daily, hourly, filled = fill_days(own, fmi, TZ, min_hours=18)
    assert daily == {d1: -5.0, d2: -7.0}  # d3: neither has a whole day
    assert filled == {d2}
    assert len(hourly) == 48


def test_weather_fmi_names_one_station() -> None:
    with pytest.raises(ValueError, match="either fmisid or place"):
        FmiStation(fmisid=100971, place="Espoo")
    with pytest.raises(ValueError, match="either fmisid or place"):
        FmiStation()


def test_an_answer_declaring_entities_is_refused() -> None:
    """A billion-laughs document (entities expanding into entities) is refused, not expanded."""
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        "<wfs:FeatureCollection xmlns:wfs='http://www.opengis.net/wfs/2.0'>&lol2;"
        "</wfs:FeatureCollection>"
    )
    with pytest.raises(FmiError, match="entities"):
        parse_simple(bomb)
