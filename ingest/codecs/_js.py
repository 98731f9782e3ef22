"""A device's own payload codec, in JavaScript, for LoRaWAN uplinks the network server did not
decode.

Codecs are written to the LoRaWAN Payload Codec API (TS013): `decodeUplink({bytes, fPort,
recvTime})` returns `{data, warnings, errors}`. That is the format of The Things Network's
Device Repository and of ChirpStack v4 codecs, so a vendor's published codec runs unchanged.
The older signatures, ChirpStack v3's `Decode(fPort, bytes, variables)` and TTN v2's
`Decoder(bytes, port)`, are run too.

Each codec runs in its own QuickJS context with a memory limit and a time limit per call, so a
codec that throws, loops or allocates without end costs one message (`codec_failed`) and never
the service. A context that failed is rebuilt, because an interrupted or exhausted engine is not
trusted to be in a clean state.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import quickjs

from ingest.codecs._json import _check_shape
from ingest.reading import Reason, Rejected

MEMORY_LIMIT_BYTES = 16 * 1024 * 1024
TIME_LIMIT_S = 0.05
MAX_SOURCE_BYTES = 1024 * 1024

# Runs whichever entry point the codec defines and returns JSON text, so only plain data
# crosses into Python.
_CALL = """
(function (bytesJson, fPort, recvTime) {
  var bytes = JSON.parse(bytesJson);
  var out;
  if (typeof decodeUplink === "function") {
    out = decodeUplink({bytes: bytes, fPort: fPort, recvTime: new Date(recvTime)});
  } else if (typeof Decode === "function") {
    out = {data: Decode(fPort, bytes, {})};
  } else if (typeof Decoder === "function") {
    out = {data: Decoder(bytes, fPort)};
  } else {
    throw new Error("the codec defines none of decodeUplink, Decode, Decoder");
  }
  return JSON.stringify(out === undefined ? null : out);
})
"""


class CodecError(ValueError):
    """A codec file that cannot be read or does not compile."""


class PayloadCodec:
    __slots__ = ("_call", "_context", "path", "source")

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            size = path.stat().st_size
            if size > MAX_SOURCE_BYTES:
                raise CodecError(f"{path}: a codec is limited to {MAX_SOURCE_BYTES} bytes")
            self.source = path.read_text("utf-8")
        except OSError as exc:
            raise CodecError(f"{path}: cannot read the codec: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CodecError(f"{path}: the codec is not UTF-8 text") from None
        self._context: Any = None
        self._call: Any = None
        self._start()

    def _start(self) -> None:
        context = quickjs.Context()
        context.set_memory_limit(MEMORY_LIMIT_BYTES)
        context.set_time_limit(TIME_LIMIT_S)
        try:
            context.eval(self.source)
            self._call = context.eval(_CALL)
        except quickjs.JSException as exc:
            raise CodecError(f"{self.path}: the codec does not load: {_first_line(exc)}") from None
        self._context = context

    def decode(
        self, payload: bytes, f_port: int | None, received_ms: int, device_id: str
    ) -> dict[str, Any]:
        """The codec's `data` for one uplink; raises only Rejected."""
        try:
            text = self._call(json.dumps(list(payload)), f_port or 0, received_ms)
        except Exception as exc:  # thrown, interrupted, out of memory: this message's problem
            detail = _first_line(exc)
            with contextlib.suppress(CodecError):
                self._start()
            raise Rejected(
                Reason.CODEC_FAILED, f"{self.path.name}: {detail}"[:300], device_id
            ) from None
        if not isinstance(text, str):
            raise Rejected(Reason.CODEC_FAILED, f"{self.path.name} returned nothing", device_id)
        try:
            out = json.loads(text)
        except (ValueError, RecursionError):
            raise Rejected(
                Reason.CODEC_FAILED, f"{self.path.name} returned what is not JSON", device_id
            ) from None
        try:
            _check_shape(out, device_id)
        except Rejected as exc:
            raise Rejected(
                Reason.CODEC_FAILED, f"{self.path.name}: {exc.detail}", device_id
            ) from None
        if type(out) is not dict:
            raise Rejected(
                Reason.CODEC_FAILED,
                f"{self.path.name} returned {type(out).__name__}, not {{data, errors}}",
                device_id,
            )
        errors = out.get("errors")
        if type(errors) is list and errors:
            shown = "; ".join(str(e)[:100] for e in errors[:3])
            raise Rejected(Reason.CODEC_FAILED, f"{self.path.name}: {shown}", device_id)
        data = out.get("data")
        if type(data) is not dict:
            raise Rejected(
                Reason.CODEC_FAILED,
                f"{self.path.name} returned no data object (got {type(data).__name__})",
                device_id,
            )
        return data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
