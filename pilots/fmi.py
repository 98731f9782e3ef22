"""Outdoor temperature from the Finnish Meteorological Institute's open data (WFS 2.0), for days
the site's own weather station did not measure (docs/pilots.md, Weather).

The stored query `fmi::observations::weather::simple` with `parameters=t2m&timestep=60` gives the
air temperature at each whole hour, one `BsWfs:BsWfsElement` per value; FMI answers at most 168
hours per request, so longer spans are asked in weeks. Missing values come as `NaN`. The data are
FMI's, licensed CC BY 4.0: whatever uses them names the source.

Parsed with defusedxml (the standard library's ElementTree, refusing entity declarations, which
an answer from the network could use to exhaust memory) rather than with the `fmiopendata`
package: its multipoint-coverage parser fetches each field's description from FMI while parsing,
so a recorded response cannot be read without a network, and the simple format is a flat list.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from devices.pilots import FmiStation

STORED_QUERY = "fmi::observations::weather::simple"
PARAMETER = "t2m"
MAX_HOURS = 168  # FMI's limit per request for this query
TIMEOUT_S = 30.0
LICENCE = "FMI open data, CC BY 4.0"

_WFS = "{http://www.opengis.net/wfs/2.0}"
_BSWFS = "{http://xml.fmi.fi/schema/wfs/2.0}"
_OWS = "{http://www.opengis.net/ows/1.1}"


class FmiError(RuntimeError):
    """FMI could not be asked, or answered with something other than observations."""


def describe(station: FmiStation) -> str:
    which = f"station {station.fmisid}" if station.fmisid else f"nearest station to {station.place}"
    return f"{LICENCE}, {which}"


def parse_simple(body: bytes | str) -> dict[int, float]:
    """The t2m values of a `simple` response by hour start (ms); NaN values are left out."""
    try:
        root = SafeET.fromstring(body)
    except ET.ParseError as exc:
        raise FmiError(f"FMI's answer is not XML: {exc}") from None
    except DefusedXmlException as exc:
        raise FmiError(f"FMI's answer declares entities, refused: {exc!r}") from None
    if root.tag.endswith("ExceptionReport"):
        texts = [t.text.strip() for t in root.iter(f"{_OWS}ExceptionText") if t.text]
        raise FmiError("FMI refused the request: " + ("; ".join(texts) or "no reason given"))
    if root.tag != f"{_WFS}FeatureCollection":
        raise FmiError(f"FMI's answer is a {root.tag}, not a wfs:FeatureCollection")
    out: dict[int, float] = {}
    for element in root.iter(f"{_BSWFS}BsWfsElement"):
        if (element.findtext(f"{_BSWFS}ParameterName") or "").strip() != PARAMETER:
            continue
        when = (element.findtext(f"{_BSWFS}Time") or "").strip()
        raw = (element.findtext(f"{_BSWFS}ParameterValue") or "").strip()
        try:
            at = datetime.fromisoformat(when.replace("Z", "+00:00"))
            value = float(raw)
        except ValueError:
            raise FmiError(f"FMI's answer has an unreadable value: {when!r} {raw!r}") from None
        if at.tzinfo is None:
            raise FmiError(f"FMI's answer has a time without a zone: {when!r}")
        if math.isfinite(value):
            out[int(at.timestamp() * 1000)] = value
    return out


def _chunks(lo_ms: int, hi_ms: int) -> list[tuple[datetime, datetime]]:
    """[lo, hi) in whole hours, as FMI's inclusive start/end pairs of at most MAX_HOURS."""
    start = datetime.fromtimestamp(lo_ms / 1000, UTC).replace(minute=0, second=0, microsecond=0)
    end = datetime.fromtimestamp(hi_ms / 1000, UTC)
    out = []
    while start < end:
        last = min(start + timedelta(hours=MAX_HOURS - 1), end - timedelta(hours=1))
        if last < start:
            break
        out.append((start, last))
        start = last + timedelta(hours=1)
    return out


def _z(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def hourly_temperature(station: FmiStation, lo_ms: int, hi_ms: int) -> dict[int, float]:
    """The station's air temperature at each whole hour in [lo_ms, hi_ms)."""
    out: dict[int, float] = {}
    where = {"fmisid": str(station.fmisid)} if station.fmisid else {"place": str(station.place)}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for first, last in _chunks(lo_ms, hi_ms):
            params = {
                "service": "WFS", "version": "2.0.0", "request": "getFeature",
                "storedquery_id": STORED_QUERY, "parameters": PARAMETER, "timestep": "60",
                "starttime": _z(first), "endtime": _z(last), **where,
            }  # fmt: skip
            try:
                async with session.get(station.url, params=params) as response:
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise FmiError(
                    f"cannot reach FMI at {station.url}: {exc or type(exc).__name__}"
                ) from None
            if response.status != 200 and b"ExceptionReport" not in body:
                raise FmiError(f"FMI at {station.url} answered HTTP {response.status}")
            out.update(parse_simple(body))
    return {h: v for h, v in out.items() if lo_ms <= h < hi_ms}


def fill_days(
    station_hours: Mapping[int, float],
    fmi_hours: Mapping[int, float],
    tz: ZoneInfo,
    min_hours: int,
) -> tuple[dict[date, float], dict[int, float], set[date]]:
    """Daily means and hourly values with the site's station first: a day the station measured
    for fewer than `min_hours` hours takes FMI's hours instead, when FMI has enough. Returns the
    daily means, the hourly values, and the days FMI filled."""

    def by_day(hours: Mapping[int, float]) -> dict[date, dict[int, float]]:
        days: dict[date, dict[int, float]] = defaultdict(dict)
        for h, v in hours.items():
            days[datetime.fromtimestamp(h / 1000, UTC).astimezone(tz).date()][h] = v
        return days

    own, fmi = by_day(station_hours), by_day(fmi_hours)
    daily: dict[date, float] = {}
    hourly: dict[int, float] = {}
    filled: set[date] = set()
    for day in sorted({*own, *fmi}):
        hours = own.get(day, {})
        if len(hours) < min_hours and len(fmi.get(day, {})) >= min_hours:
            hours = fmi[day]
            filled.add(day)
        if len(hours) >= min_hours:
            daily[day] = sum(hours.values()) / len(hours)
            hourly.update(hours)
    return daily, hourly, filled
