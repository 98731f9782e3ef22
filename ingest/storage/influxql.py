"""InfluxQL text with one escaping rule: every name or value a query takes from a variable (a
measurement, field or tag name, a site or device id, a retention policy, a time) goes through
these, so no site file, device id or option can change what a query means. Used by the
dashboards, the report, the pilots, the rollups' reads and the CLIs.

The InfluxQL reference (influxdata docs, "InfluxQL reference: identifiers, strings, regular
expressions"): identifiers in double quotes with `\\"` and `\\\\` escaped, string literals in
single quotes with `\\'` and `\\\\` escaped, regular expressions between slashes with `\\/`.
Grafana's template variables ($site, $timeFilter) are Grafana's to expand and stay as text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def ident(name: str) -> str:
    """A measurement, field, tag, database or retention policy name: `"name"`."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def idents(names: Iterable[str]) -> str:
    """Several names, comma-separated (a SELECT's columns, a GROUP BY)."""
    return ", ".join(ident(n) for n in names)


def measurement(name: str, rp: str | None = None) -> str:
    """A measurement, in retention policy `rp` when given: `"rp"."name"`."""
    return f"{ident(rp)}.{ident(name)}" if rp else ident(name)


def string(value: str) -> str:
    """A string literal (a tag value compared with =): `'value'`."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def one_of(values: Iterable[str]) -> str:
    """A regular expression matching exactly one of `values`: `/^(a|b)$/`."""
    alternatives = "|".join(re.escape(v).replace("/", "\\/") for v in values)
    return f"/^({alternatives})$/"


def ms(t: int) -> str:
    """An epoch-milliseconds time literal: `1700000000000ms`."""
    return f"{int(t)}ms"


def between(lo_ms: int, hi_ms: int) -> str:
    """time in [lo, hi)."""
    return f"time >= {ms(lo_ms)} AND time < {ms(hi_ms)}"
