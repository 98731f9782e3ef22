"""Device codecs (JavaScript) in a child process, so that no codec can stop the ingestor.

QuickJS's own limits (ingest.codecs._js) stop a codec that loops or allocates, but not all of
them: its regular-expression engine does not see the interrupt, so one uplink against a
backtracking pattern (as text-frame codecs have) ran for minutes, and a thrown object whose
`toString` loops was never interrupted. Run on the event loop, that froze reading, writing and
`/healthz` alike, and the broker redelivered the message after every restart.

Here a codec runs in a worker process (`python -m ingest.codecs._worker`) that answers one
request at a time over pipes, as JSON lines. The event loop only waits for the answer, with a
hard deadline: a worker that misses it is killed and started again, and the message is
rejected `codec_failed`. It is acknowledged like any rejection, so a redelivered copy never
comes back to freeze anything.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import sys
from pathlib import Path

from ingest.reading import Reason, Rejected

log = logging.getLogger(__name__)

# A worker's answer is one line; a codec's data past this size is refused, not read.
MAX_ANSWER_BYTES = 1 << 20
# What a worker says once it can take requests, and how long its start may take (Python and
# QuickJS imports: a fraction of a second, more on a loaded machine).
READY = b'{"ready": true}'
START_S = 30.0


class CodecSandbox:
    """Runs `PayloadCodec.decode` in a worker process with a hard deadline per call."""

    def __init__(self, deadline_s: float = 1.0) -> None:
        # Well above QuickJS's own 50 ms per call (which stops most runaway codecs first) and
        # the worker's round trip (under a millisecond); far below anything a probe would notice.
        self.deadline_s = deadline_s
        self._proc: asyncio.subprocess.Process | None = None
        # One request at a time: a worker is one QuickJS runtime, and answers come in order.
        self._lock = asyncio.Lock()
        self.calls = 0
        self.restarts = 0

    async def decode(
        self, path: Path, payload: bytes, f_port: int | None, received_ms: int, device_id: str
    ) -> dict[str, object]:
        """The codec's `data` for one uplink; raises only Rejected."""
        request = {
            "path": str(path),
            "bytes": base64.b64encode(payload).decode(),
            "f_port": f_port,
            "received_ms": received_ms,
            "device": device_id,
        }
        async with self._lock:
            self.calls += 1
            try:
                proc = await self._worker()
            except OSError as exc:  # cannot start one: this uplink's problem, not the caller's
                raise Rejected(Reason.CODEC_FAILED, f"{path.name}: {exc}", device_id) from None
            assert proc.stdin is not None
            assert proc.stdout is not None
            try:
                async with asyncio.timeout(self.deadline_s):
                    proc.stdin.write(json.dumps(request).encode() + b"\n")
                    await proc.stdin.drain()
                    line = await proc.stdout.readline()
            except TimeoutError:
                await self._kill("missed its deadline")
                raise Rejected(
                    Reason.CODEC_FAILED,
                    f"{path.name} did not finish within {self.deadline_s:g} s (a runaway loop "
                    "or regular expression); its worker was restarted",
                    device_id,
                ) from None
            except (ValueError, ConnectionError) as exc:  # an answer over the limit, a dead pipe
                await self._kill(f"failed: {exc}")
                raise Rejected(
                    Reason.CODEC_FAILED, f"{path.name}: the codec worker failed ({exc})", device_id
                ) from None
        if not line:
            await self._kill("exited")
            raise Rejected(Reason.CODEC_FAILED, f"{path.name}: the codec worker exited", device_id)
        answer = json.loads(line)
        if "error" in answer:
            raise Rejected(Reason.CODEC_FAILED, str(answer["error"])[:300], device_id)
        data: dict[str, object] = answer["data"]
        return data

    async def _worker(self) -> asyncio.subprocess.Process:
        """The running worker, or a new one once it says it is ready: a cold start is not
        counted against the first uplink's deadline."""
        if self._proc is None or self._proc.returncode is not None:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ingest.codecs._worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=MAX_ANSWER_BYTES,
            )  # fmt: skip
            assert proc.stdout is not None
            self._proc = proc
            try:
                ready = await asyncio.wait_for(proc.stdout.readline(), START_S)
            except TimeoutError:
                ready = b""
            if ready.strip() != READY:
                await self._kill(f"did not start within {START_S:g} s")
                raise OSError(f"the codec worker did not start within {START_S:g} s")
        return self._proc

    async def _kill(self, why: str) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self.restarts += 1
        log.warning("codec worker %s; killed, a new one starts with the next uplink", why)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 2)
        except TimeoutError:
            proc.kill()
            await proc.wait()
