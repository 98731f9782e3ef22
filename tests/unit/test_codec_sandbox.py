"""Device codecs in their worker process (ingest.codecs._sandbox), on real QuickJS: what
QuickJS's own 50 ms limit cannot stop (its regular-expression engine, a thrown object whose
toString loops) costs one uplink and a worker restart, never the caller (issue 26)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devices import Registry
from ingest.codecs import CodecSandbox
from ingest.observability.counters import Stats
from ingest.pipeline import Deferred, Pipeline
from ingest.reading import DeadLetter, Reason, Rejected
from ingest.storage.batcher import Batcher
from tests.helpers import Acks, Collected

# A text-frame codec ("T=21.5;H=40;") with a pattern that backtracks exponentially on digits
# followed by anything else: QuickJS's interrupt does not reach its regex engine (in-process,
# 24 digits took 1.4 s; the 38 below would take hours).
TEXT_FRAME_CODEC = r"""
function decodeUplink(input) {
  var text = String.fromCharCode.apply(null, input.bytes);
  if (!/^([A-Z]+=(\d+\.?)+;?)*$/.test(text)) {
    return {errors: ["not a T=..;H=.. frame"]};
  }
  var data = {};
  text.split(";").forEach(function (pair) {
    var kv = pair.split("=");
    if (kv[0] === "T") data.temperature_c = parseFloat(kv[1]);
    if (kv[0] === "C") data.co2_ppm = parseFloat(kv[1]);
  });
  return {data: data};
}
"""
RUNAWAY_UPLINK = b"T=" + b"1" * 38 + b"!"  # 41 bytes

LOOPING_THROW_CODEC = """
function decodeUplink(input) {
  if (input.bytes[0] === 0) throw {toString: function () { for (;;) {} }};
  return {data: {co2_ppm: input.bytes[0] * 10}};
}
"""


@pytest.fixture
async def sandbox() -> AsyncIterator[CodecSandbox]:
    box = CodecSandbox(deadline_s=0.5)
    try:
        yield box
    finally:
        await box.close()


def _codec(tmp_path: Path, js: str) -> Path:
    path = tmp_path / "codec.js"
    path.write_text(js)
    return path


async def test_a_runaway_regex_costs_one_uplink_and_a_worker(
    tmp_path: Path, sandbox: CodecSandbox
) -> None:
    codec = _codec(tmp_path, TEXT_FRAME_CODEC)
    ok = await sandbox.decode(codec, b"T=21.5;C=600", 1, 0, "d1")
    assert ok == {"temperature_c": 21.5, "co2_ppm": 600}
    assert len(RUNAWAY_UPLINK) == 41
    started = time.monotonic()
    with pytest.raises(Rejected) as refused:
        await sandbox.decode(codec, RUNAWAY_UPLINK, 1, 0, "d1")
    assert time.monotonic() - started < 1.5
    assert refused.value.reason is Reason.CODEC_FAILED
    assert "did not finish within 0.5 s" in refused.value.detail
    assert sandbox.restarts == 1
    # The next uplink gets a fresh worker.
    assert await sandbox.decode(codec, b"T=19", 1, 0, "d1") == {"temperature_c": 19}


async def test_a_thrown_object_whose_tostring_loops_is_stopped(
    tmp_path: Path, sandbox: CodecSandbox
) -> None:
    codec = _codec(tmp_path, LOOPING_THROW_CODEC)
    with pytest.raises(Rejected) as refused:
        await sandbox.decode(codec, b"\x00", 1, 0, "d1")
    assert "did not finish" in refused.value.detail
    assert await sandbox.decode(codec, b"\x50", 1, 0, "d1") == {"co2_ppm": 800}


async def test_the_loop_keeps_running_while_a_codec_runs_away(
    tmp_path: Path, sandbox: CodecSandbox
) -> None:
    """While the worker spins, the event loop is free: a ticker every 10 ms never waits long."""
    codec = _codec(tmp_path, TEXT_FRAME_CODEC)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    try:
        with pytest.raises(Rejected):
            await sandbox.decode(codec, RUNAWAY_UPLINK, 1, 0, "d1")
    finally:
        task.cancel()
    assert len(gaps) > 20
    assert max(gaps) < 0.25


def _tts_uplink(frame: bytes) -> tuple[str, bytes]:
    """The Things Stack v3 uplink message shape (its MQTT integration docs), undecoded."""
    body: dict[str, Any] = {
        "end_device_ids": {"device_id": "d1", "dev_eui": "00000000000000AA"},
        "uplink_message": {
            "f_port": 1,
            "f_cnt": 7,
            "frm_payload": base64.b64encode(frame).decode(),
            "rx_metadata": [{"rssi": -101, "snr": -3.5}],
        },
    }
    return "v3/kera@ttn/devices/d1/up", json.dumps(body).encode()


async def test_the_pipeline_defers_codec_uplinks_and_judges_them_like_any(tmp_path: Path) -> None:
    (tmp_path / "c.js").write_text(TEXT_FRAME_CODEC)
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: kera\nsources: [{codec: tts_v3}]\ndevices:\n"
        "  - {id: d1, kind: indoor_air, space: lab, codec: c.js, dev_eui: '00000000000000aa'}\n"
    )
    sandbox = CodecSandbox(deadline_s=0.5)
    stats = Stats()
    pipeline = Pipeline(Registry.load(site), stats, sandbox=sandbox)
    now = int(time.time() * 1000)
    try:
        good = pipeline.take(*_tts_uplink(b"T=21.5;C=600"), now)
        assert isinstance(good, Deferred)
        lines = await good.verdict()
        assert isinstance(lines, list)
        assert any("co2_ppm=600" in line for line in lines)
        bad = pipeline.take(*_tts_uplink(RUNAWAY_UPLINK), now)
        assert isinstance(bad, Deferred)
        letter = await bad.verdict()
        assert isinstance(letter, DeadLetter)
        assert letter.reason is Reason.CODEC_FAILED
        assert letter.kept  # the radio status stands on its own
        assert stats.messages == 2
        assert stats.accepted == 1
        assert stats.rejected == {"codec_failed": 1}
    finally:
        await sandbox.close()


async def test_a_held_place_keeps_batches_and_acks_in_arrival_order() -> None:
    out, sink = Acks(), Collected()
    batches = sink.batches
    batcher = Batcher(sink, max_lines=2, max_delay_s=10)
    batcher.add(["a"], 1, out)
    place = batcher.hold(2, out)  # a codec uplink, its verdict still out
    batcher.add(["c"], 3, out)  # fills the batch: flushed, but held back
    batcher.add(["d"], 4, out)
    batcher.add(["e"], 5, out)  # a later batch: held back behind the first
    assert batches == []
    assert batcher.held == 1
    batcher.complete(place, ["b"])
    assert [b.lines for b in batches] == [["a", "c", "b"], ["d", "e"]]
    assert out.ids == [[1, 2, 3], [4, 5]]
    batcher.add(["f"], 6, out)
    batcher.flush()
    assert out.ids[-1] == [6]
