"""What running device codecs in their worker process costs (docs/performance.md):

    .venv/bin/python bench/codec_sandbox.py [--uplinks 5000] [--rounds 3]

A stream of distinct raw Milesight AM103 frames (the bundled profile's JavaScript codec) is
decoded twice in this process: inline, as `PayloadCodec.decode` runs in QuickJS on the caller's
thread (what the ingestor did before issue 26), and through `CodecSandbox.decode`, the worker
process the ingestor uses now, one uplink at a time as the pipeline sends them. Reported per
way: wall time per uplink (latency, and so the most uplinks a second one worker takes) and this
process's CPU per uplink (what the ingestor's own core pays; the worker's is on top, on the
other core). The best of `rounds` rounds counts.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from devices.profiles import load_profile
from ingest.codecs import CodecSandbox
from ingest.codecs._js import PayloadCodec

_path = load_profile("milesight-am103").codec_path
assert _path is not None
CODEC: Path = _path


def frame(i: int) -> bytes:
    t = 200 + i % 50
    raw = bytes([0x01, 0x75, 90, 0x03, 0x67, t & 0xFF, t >> 8, 0x04, 0x68, 80, 0x07, 0x7D])
    return raw + (400 + i % 300).to_bytes(2, "little")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _measure(decode: Callable[[bytes], Awaitable[object]], n: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    for i in range(n):
        await decode(frame(i))
    return (time.perf_counter() - wall) / n * 1e6, (_cpu() - cpu) / n * 1e6


async def main(n: int, rounds: int) -> None:
    inline = PayloadCodec(CODEC)
    sandbox = CodecSandbox()

    async def inline_decode(b: bytes) -> object:
        return inline.decode(b, 85, 0, "air-103")

    async def sandbox_decode(b: bytes) -> object:
        return await sandbox.decode(CODEC, b, 85, 0, "air-103")

    await sandbox_decode(frame(0))  # the worker's start is not an uplink's cost
    table = Table("way", "wall µs per uplink", "this process's CPU µs per uplink", "uplinks/s")
    try:
        for name, decode in (("inline (QuickJS here)", inline_decode), ("worker", sandbox_decode)):
            best = min([await _measure(decode, n) for _ in range(rounds)])
            table.add_row(name, f"{best[0]:.0f}", f"{best[1]:.0f}", f"{1e6 / best[0]:,.0f}")
    finally:
        await sandbox.close()
    Console().print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uplinks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.uplinks, args.rounds))
