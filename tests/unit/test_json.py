"""orjson parses first, json.loads whatever orjson refuses: every payload gets the value and the
reason code json.loads alone gave it (ingest/codecs/_json.py)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.codecs._json import _load_slowly, load_json
from ingest.reading import Reason, Rejected
from tests.strategies import json_values


def _verdict(load: object, payload: bytes) -> object:
    try:
        value = load(payload, "dev")  # type: ignore[operator]
    except Rejected as exc:
        return exc.reason
    return ("nan",) if isinstance(value, float) and math.isnan(value) else value


@given(json_values)
def test_documents_parse_to_the_same_value(value: object) -> None:
    payload = json.dumps(value).encode()
    assert load_json(payload) == json.loads(payload)


@given(st.binary(max_size=64))
def test_any_bytes_get_the_same_verdict(payload: bytes) -> None:
    fast = _verdict(load_json, payload)
    if isinstance(fast, Reason) and fast in (Reason.TOO_MANY_KEYS, Reason.JSON_TOO_DEEP):
        return  # the shape check runs after either parser
    assert fast == _verdict(_load_slowly, payload)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"power_w": NaN}', {"power_w": ("nan",)}),  # json.loads takes it; the validator refuses
        (b'{"n": 123456789012345678901234567890}', {"n": 123456789012345678901234567890}),
        (b'{"s": "\\ud800"}', {"s": "\ud800"}),
        (b'{"power_w": 1.5', Reason.BAD_JSON),
        (b"\xff\xfe{\x00}\x00", Reason.NOT_UTF8),
        (b"[" * 2000 + b"]" * 2000, Reason.JSON_TOO_DEEP),
    ],
)
def test_what_orjson_refuses_keeps_its_old_verdict(payload: bytes, expected: object) -> None:
    got = _verdict(load_json, payload)
    if isinstance(got, dict):
        got = {k: ("nan",) if isinstance(v, float) and math.isnan(v) else v for k, v in got.items()}
    assert got == expected
