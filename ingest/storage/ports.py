"""The typed seams between the receive side and storage, so a reading's path can be followed
through named calls (docs/architecture.md, "One reading's path"):

    MqttConsumer._on_message -> Receiver.receive (ingest.intake.Intake)
      -> Pipeline.take -> Batcher.add -> BatchSink.submit (BatchWriter)
      -> Transport.write or Spool.append -> Batch.settle -> Connection.ack (PUBACKs)

Storage defines what it needs and knows nothing of MQTT: a `Connection` is whatever delivered a
batch's messages and acknowledges their ids once the batch is stored. Implementations satisfy
these structurally (no inheritance), so tests can hand in their own, in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ingest.storage.batch import Batch


class Connection(Protocol):
    """The connection that delivered messages: `ack` acknowledges their ids (MQTT PUBACKs, in
    the order given). Each reconnect is a new Connection; an earlier one acknowledges nothing,
    because the broker redelivers its messages and may reuse their ids."""

    def ack(self, ids: list[int]) -> None: ...


class BatchSink(Protocol):
    """Takes a batch to store; it is settled (acknowledged) once stored or spooled."""

    def submit(self, batch: Batch) -> None: ...


class Transport(Protocol):
    """One InfluxDB write API (ingest.storage.transports: v1 HTTP, v2 client)."""

    async def start(self) -> None: ...

    async def write(self, body: bytes, place: str | None = None) -> None:
        """Store line protocol; `place`: another retention policy (v1) or bucket (v2). Raises
        `WriteError` saying whether trying again may help."""

    async def create_database(self) -> None:
        """Make the target database exist, where the API can (v1); a no-op otherwise."""

    async def close(self) -> None: ...


class Publisher(Protocol):
    """Publishes on the broker: the consumer's own connection (dead letters, alerts, serial
    readings republished)."""

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None: ...


class DeadLetterSink(Protocol):
    """Where the writer sends dead-letter entries besides the file (the dead-letter topic)."""

    def dead_letters(self, entries: list[dict[str, Any]]) -> None: ...


class WriteCounts(Protocol):
    """The counters the writer keeps (ingest.observability.counters.Stats has them); declared
    here so storage does not import observability, which reads the spool."""

    points_written: int
    points_dead_lettered: int
    points_spooled: int
    spool_full_events: int
    spool_disk_full_events: int
    dead_letter_errors: int
    batches_written: int
    write_retries: int
    write_seconds: float
    write_seconds_max: float
    batch_points_max: int
