"""The per-message hot path (decode, validate, encode) and the batches it feeds to the writer.

Everything here runs synchronously inside the MQTT client's read callback: no task, future or
queue operation per message, because at tens of thousands of messages a second the event loop's
own per-item cost would dominate. Work is handed to asyncio once per batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from devices import Registry, UnknownFields
from ingest.codecs import Router
from ingest.observability.counters import RejectionLog, Stats
from ingest.reading import DeadLetter, Decoded, NoReading, Reading, Reason, Rejected
from ingest.storage.batch import Batch
from ingest.storage.lineproto import LineEncoder
from ingest.validate import Validator

log = logging.getLogger(__name__)


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
    ) -> None:
        # Sees every accepted reading (the alert engine).
        self.observe = observe
        # judge_only: the alert observer beside shared subscriptions, which stores nothing: no
        # lines are encoded, and rejections are counted but not logged (the writing ingestor
        # that received the same message logs them).
        self._encode = not judge_only
        self._site = registry.site_id
        self._router = Router(registry.site)
        self._validator = Validator(registry, max_future_s, max_age_s)
        self._encoder = LineEncoder(registry.site_id)
        self._stats = stats
        self._rejections = RejectionLog(stats, quiet=judge_only)
        self._max_payload = max_payload_bytes

    @property
    def filters(self) -> list[str]:
        """The MQTT topic filters to subscribe to."""
        return self._router.filters

    def handle(self, topic: str, payload: bytes, received_ms: int) -> list[str] | DeadLetter:
        return self._verdict(topic, payload, received_ms, None)

    def handle_decoded(
        self, decoded: list[Decoded], origin: str, received_ms: int, raw: bytes
    ) -> list[str] | DeadLetter:
        """For sources that decode themselves (serial meters): the same validation, encoding,
        counting and dead-lettering as a message. `origin` stands in for the topic."""
        return self._verdict(origin, raw, received_ms, decoded)

    def _too_large(self, payload: bytes) -> None:
        raise Rejected(
            Reason.PAYLOAD_TOO_LARGE,
            f"{len(payload)} bytes is over the {self._max_payload}-byte limit",
        )

    def _verdict(
        self, topic: str, payload: bytes, received_ms: int, decoded: list[Decoded] | None
    ) -> list[str] | DeadLetter:
        stats = self._stats
        stats.messages += 1
        try:
            unknown_fields: UnknownFields = "ignore"
            if decoded is None:
                if len(payload) > self._max_payload:
                    self._too_large(payload)
                route = self._router.route(topic)
                unknown_fields = route.unknown_fields
                decoded = route.decode(topic, payload, self._site, received_ms)
            check = self._validator.check
            readings: list[Reading] = []
            status: list[Reading] = []
            data_failed: Rejected | None = None
            status_failed: Rejected | None = None
            no_reading = False
            for d in decoded:
                try:
                    r = check(d, received_ms, unknown_fields)
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
        except Rejected as exc:
            self._rejections.record(exc, topic)
            return DeadLetter(exc.reason, exc.detail, topic, received_ms, payload, exc.device_id)
        except Exception as exc:  # a bug must cost one message, never the service
            log.exception("internal error on %r; message dead-lettered", topic[:200])
            bug = Rejected(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"[:300])
            self._rejections.record(bug, topic)
            return DeadLetter(bug.reason, bug.detail, topic, received_ms, payload)
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


class Batcher:
    """Collects lines until `max_lines` or `max_delay_s` after the first one, then hands the batch
    to `sink`."""

    __slots__ = ("_batch", "_loop", "_max_delay", "_max_lines", "_sink", "_timer")

    def __init__(
        self,
        sink: Callable[[Batch], None],
        max_lines: int = 5000,
        max_delay_s: float = 0.2,
    ) -> None:
        self._sink = sink
        self._max_lines = max_lines
        self._max_delay = max_delay_s
        self._batch = Batch()
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    def add(self, result: list[str] | DeadLetter, mid: int, generation: int) -> None:
        """A message's verdict from Pipeline.handle, and its packet id (0 for QoS 0)."""
        batch = self._batch
        if generation != batch.generation:
            self.flush()
            batch = self._batch
            batch.generation = generation
        if type(result) is list:
            batch.lines.extend(result)
        else:
            assert isinstance(result, DeadLetter)
            batch.rejects.append(result)
            if result.kept:
                batch.lines.extend(result.kept)
        if mid:
            batch.acks.append(mid)
        if self._timer is None:
            self._timer = self._loop.call_later(self._max_delay, self.flush)
        if len(batch.lines) + len(batch.rejects) >= self._max_lines:
            self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._batch
        if batch.lines or batch.acks or batch.rejects:
            self._batch = Batch(generation=batch.generation)
            self._sink(batch)
