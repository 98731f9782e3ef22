"""The per-message hot path (decode, validate, encode) and the batches it feeds to the writer.

Everything here runs synchronously inside the MQTT client's read callback: no task, future or
queue operation per message, because at tens of thousands of messages a second the event loop's
own per-item cost would dominate. Work is handed to asyncio once per batch.

The one exception is an uplink that needs its device's own JavaScript codec: no codec may run
on the event loop (a runaway one would stop everything), so with a `CodecSandbox` the message
becomes `Deferred`, and the caller awaits its verdict while the codec runs in a worker process.
The batcher (ingest.storage.batcher) keeps its place, so readings and acknowledgements keep
arrival order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import final

from devices import Registry, UnknownFields
from ingest.codecs import CodecSandbox, Router
from ingest.observability.clock import ClockWatch
from ingest.observability.counters import RejectionLog, Stats
from ingest.reading import DeadLetter, Decoded, NoReading, Reading, Reason, Rejected, Verdict
from ingest.storage.lineproto import LineEncoder
from ingest.validate import Validator

log = logging.getLogger(__name__)


@final  # so that `type(x) is Deferred` narrows both ways for mypy, with no isinstance per message
class Deferred:
    """A message whose device's own codec must run (off the event loop) before it is judged:
    `await verdict()` gives what `Pipeline.handle` gives for any other message."""

    __slots__ = ("_decoded", "_payload", "_pipeline", "_received_ms", "_topic", "_unknown")

    def __init__(
        self,
        pipeline: Pipeline,
        topic: str,
        payload: bytes,
        received_ms: int,
        decoded: list[Decoded],
        unknown_fields: UnknownFields,
    ) -> None:
        self._pipeline = pipeline
        self._topic = topic
        self._payload = payload
        self._received_ms = received_ms
        self._decoded = decoded
        self._unknown = unknown_fields

    async def verdict(self) -> list[str] | DeadLetter:
        p = self._pipeline
        codec_out = await p.run_codecs(self._decoded, self._received_ms)
        return p.judge(
            self._topic, self._payload, self._received_ms, self._decoded, self._unknown, codec_out
        )


class Pipeline:
    """(topic, payload) to lines of line protocol, or to a DeadLetter saying why not.

    A message's readings are all or nothing: if any reading in it (a SenML pack) is rejected,
    none of them is stored. Its radio status stands on its own: an uplink whose reading is
    rejected still has its RSSI, SNR and frame counter stored (the DeadLetter's `kept` lines),
    because the devices that misbehave are the ones whose link a technician needs to see. A
    message with no reading in it (a LoRaWAN MAC-only or device-information frame) is counted,
    not dead-lettered."""

    __slots__ = (
        "_encode",
        "_encoder",
        "_max_payload",
        "_rejections",
        "_router",
        "_sandbox",
        "_site",
        "_stats",
        "_validator",
        "observe",
    )

    def __init__(
        self,
        registry: Registry,
        stats: Stats,
        max_payload_bytes: int = 65536,
        max_future_s: float | None = None,
        max_age_s: float | None = None,
        observe: Callable[[Reading], None] | None = None,
        judge_only: bool = False,
        sandbox: CodecSandbox | None = None,
        clock: ClockWatch | None = None,
    ) -> None:
        # Sees every accepted reading (the alert engine).
        self.observe = observe
        # judge_only: the alert observer beside shared subscriptions, which stores nothing: no
        # lines are encoded, and rejections are counted but not logged (the writing ingestor
        # that received the same message logs them).
        self._encode = not judge_only
        self._site = registry.site_id
        self._router = Router(registry.site)
        self._validator = Validator(registry, max_future_s, max_age_s, clock)
        self._encoder = LineEncoder(registry.site_id)
        self._stats = stats
        self._rejections = RejectionLog(
            stats, quiet=judge_only, known=frozenset(d.id for d in registry)
        )
        self._max_payload = max_payload_bytes
        # Where device codecs run; None runs them here, inline (check-site, tests).
        self._sandbox = sandbox

    @property
    def filters(self) -> list[str]:
        """The MQTT topic filters to subscribe to."""
        return self._router.filters

    def handle(self, topic: str, payload: bytes, received_ms: int) -> Verdict:
        """The message's lines, or why not. A device codec runs inline, on this thread: for
        tools and tests; the service takes messages with `take`."""
        verdict = self._take(topic, payload, received_ms, defer=False)
        assert not isinstance(verdict, Deferred)
        return verdict

    def take(self, topic: str, payload: bytes, received_ms: int) -> Verdict | Deferred:
        """As `handle`, but `Deferred` when the message's device codec must run first, in the
        sandbox (when the pipeline has one)."""
        return self._take(topic, payload, received_ms, defer=self._sandbox is not None)

    def _take(
        self, topic: str, payload: bytes, received_ms: int, defer: bool
    ) -> Verdict | Deferred:
        self._stats.messages += 1
        try:
            if len(payload) > self._max_payload:
                self._too_large(payload)
            route = self._router.route(topic)
            decoded = route.decode(topic, payload, self._site, received_ms)
            if defer and any(d.frm_payload is not None for d in decoded):
                return Deferred(self, topic, payload, received_ms, decoded, route.unknown_fields)
        except Exception as exc:
            return self._failed(exc, topic, payload, received_ms)
        return self.judge(topic, payload, received_ms, decoded, route.unknown_fields)

    async def run_codecs(
        self, decoded: list[Decoded], received_ms: int
    ) -> dict[int, dict[str, object] | Rejected]:
        """What each raw frame's device codec makes of it, by index in `decoded`, run in the
        sandbox. Frames of unknown devices, or of devices without a codec, are left to
        `judge`, which says why. Never raises: whatever fails costs the frame."""
        assert self._sandbox is not None
        out: dict[int, dict[str, object] | Rejected] = {}
        for i, d in enumerate(decoded):
            if d.frm_payload is None:
                continue
            try:
                device = self._validator.device(d)
            except Rejected:
                continue
            path = device.codec_path
            if path is None:
                continue
            try:
                out[i] = await self._sandbox.decode(
                    path, d.frm_payload, d.f_port, received_ms, device.id
                )
            except Rejected as exc:
                out[i] = exc
            except Exception as exc:  # no worker (cannot start): this message's problem
                log.error("codec worker failed on %s's uplink", device.id, exc_info=exc)
                out[i] = Rejected(
                    Reason.CODEC_FAILED, f"the codec worker failed: {exc}"[:300], device.id
                )
        return out

    def handle_decoded(
        self, decoded: list[Decoded], origin: str, received_ms: int, raw: bytes
    ) -> list[str] | DeadLetter:
        """For sources that decode themselves (serial meters): the same validation, encoding,
        counting and dead-lettering as a message. `origin` stands in for the topic."""
        self._stats.messages += 1
        return self.judge(origin, raw, received_ms, decoded, "ignore")

    def _too_large(self, payload: bytes) -> None:
        raise Rejected(
            Reason.PAYLOAD_TOO_LARGE,
            f"{len(payload)} bytes is over the {self._max_payload}-byte limit",
        )

    def _failed(self, exc: Exception, topic: str, payload: bytes, received_ms: int) -> DeadLetter:
        if isinstance(exc, Rejected):
            self._rejections.record(exc, topic)
            return DeadLetter(exc.reason, exc.detail, topic, received_ms, payload, exc.device_id)
        # A bug must cost one message, never the service.
        log.error("internal error on %r; message dead-lettered", topic[:200], exc_info=exc)
        bug = Rejected(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"[:300])
        self._rejections.record(bug, topic)
        return DeadLetter(bug.reason, bug.detail, topic, received_ms, payload)

    def judge(
        self,
        topic: str,
        payload: bytes,
        received_ms: int,
        decoded: list[Decoded],
        unknown_fields: UnknownFields,
        codec_out: dict[int, dict[str, object] | Rejected] | None = None,
    ) -> Verdict:
        """Validate and encode a message's decoded readings (counted already)."""
        stats = self._stats
        try:
            check = self._validator.check
            frames = codec_out or {}
            readings: list[Reading] = []
            status: list[Reading] = []
            data_failed: Rejected | None = None
            status_failed: Rejected | None = None
            no_reading = False
            for i, d in enumerate(decoded):
                try:
                    r = check(d, received_ms, unknown_fields, frames.get(i))
                except NoReading as exc:
                    no_reading = True
                    stats.ignore(exc.device_id, exc.ignored)
                    continue
                except Rejected as exc:
                    if d.status:
                        status_failed = status_failed or exc
                    else:
                        data_failed = data_failed or exc
                    continue
                if d.status:
                    status.append(r)
                else:
                    readings.append(r)
                    if r.ignored:
                        stats.ignore(r.device.id, r.ignored)
            failed = data_failed or status_failed
            if failed is not None:
                # The readings are all or nothing; the radio status stands on its own.
                if data_failed is None:
                    kept = readings
                elif status_failed is None:
                    kept = status
                else:
                    kept = []
                lines = tuple(self._encoder.encode(r) for r in kept) if self._encode else ()
                self._rejections.record(failed, topic)
                self._show(kept, topic)
                return DeadLetter(
                    failed.reason, failed.detail, topic, received_ms, payload, failed.device_id,
                    lines,
                )  # fmt: skip
            readings += status
            encode = self._encoder.encode
            lines_out = [encode(r) for r in readings] if self._encode else []
        except Exception as exc:
            return self._failed(exc, topic, payload, received_ms)
        if no_reading and len(readings) == len(status):
            stats.no_reading += 1
        else:
            stats.accepted += 1
        self._show(readings, topic)
        return lines_out

    def _show(self, readings: list[Reading], topic: str) -> None:
        if self.observe is not None:
            try:
                for r in readings:
                    self.observe(r)
            except Exception:  # an alerting bug must not cost the reading
                log.exception("alert evaluation failed on %r", topic[:200])
