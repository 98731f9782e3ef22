"""The codec worker process (`python -m ingest.codecs._worker`): runs device codecs for
`ingest.codecs._sandbox`, one JSON request per line on stdin, one answer per line on stdout.
Kept apart from the package's imports, so the worker starts without the ingestor's modules."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from ingest.codecs._js import CodecError, PayloadCodec
from ingest.codecs._sandbox import MAX_ANSWER_BYTES, READY
from ingest.reading import Rejected


def _answer(codecs: dict[str, PayloadCodec | CodecError], request: dict[str, Any]) -> bytes:
    path = request["path"]
    codec = codecs.get(path)
    if codec is None:
        try:
            codec = PayloadCodec(Path(path))
        except CodecError as exc:
            codec = exc
        codecs[path] = codec
    if isinstance(codec, CodecError):
        return _error(str(codec))
    payload = base64.b64decode(request["bytes"])
    try:
        data = codec.decode(payload, request["f_port"], request["received_ms"], request["device"])
    except Rejected as exc:
        return _error(exc.detail)
    try:
        return json.dumps({"data": data}, allow_nan=False).encode()
    except ValueError:
        return _error(f"{Path(path).name} returned a value JSON cannot carry")


def _error(detail: str) -> bytes:
    return json.dumps({"error": detail}).encode()


def main() -> None:
    """The worker: one JSON request per line on stdin, one answer per line on stdout."""
    codecs: dict[str, PayloadCodec | CodecError] = {}
    out = sys.stdout.buffer
    # Imports done: the parent's deadline starts with the first request, not with our start.
    out.write(READY + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        answer = _answer(codecs, json.loads(line))
        if len(answer) >= MAX_ANSWER_BYTES:
            answer = _error(f"the codec's data is over {MAX_ANSWER_BYTES} bytes")
        out.write(answer + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
