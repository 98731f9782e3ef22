"""What the ingestor would make of one message, for the tools beside it (the simulator's
`send` and `watch`, commissioning): the service's own router, codecs, validation and encoding,
with nothing stored and nothing published.

Tools call this instead of building the ingestor's `Pipeline` themselves, so the pipeline can
change without them.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices import Registry
from ingest.observability.counters import Stats
from ingest.pipeline import Pipeline
from ingest.reading import DeadLetter


@dataclass(frozen=True, slots=True)
class Judgement:
    # The lines of line protocol the ingestor would store (the radio status of a rejected
    # uplink included, which it stores on its own).
    lines: tuple[str, ...]
    # Why the message would be refused; None when it would be accepted.
    rejected: DeadLetter | None
    # Payload fields the site's unknown-field policy would ignore.
    ignored: tuple[str, ...]

    @property
    def accepted(self) -> bool:
        return self.rejected is None


class Judge:
    """Judges messages as a running ingestor with the same limits would; keeps its own counts
    (`stats`), apart from any service's."""

    def __init__(
        self,
        registry: Registry,
        max_future_s: float | None = 300.0,
        max_age_s: float | None = 30 * 86400.0,
    ) -> None:
        self.stats = Stats()
        self._pipeline = Pipeline(
            registry, self.stats, max_future_s=max_future_s, max_age_s=max_age_s
        )

    @property
    def filters(self) -> list[str]:
        """The topic filters the ingestor subscribes to for this site."""
        return self._pipeline.filters

    def judge(self, topic: str, payload: bytes, received_ms: int) -> Judgement:
        """A device's own codec runs here, on this thread: for tools, not for the service."""
        unknown = self.stats.unknown_fields
        before = dict(unknown)
        verdict = self._pipeline.handle(topic, payload, received_ms)
        ignored = tuple(name for (_, name), n in unknown.items() if n > before.get((_, name), 0))
        if isinstance(verdict, DeadLetter):
            return Judgement(verdict.kept, verdict, ignored)
        return Judgement(tuple(verdict), None, ignored)
