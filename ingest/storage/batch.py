"""What the receive side hands the writer: a batch of lines, the dead letters among its
messages, and what acknowledges them once stored.

Also the spool's record framing for a batch bound elsewhere than the readings' database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.reading import DeadLetter
from ingest.storage.ports import Connection


@dataclass(slots=True)
class Batch:
    lines: list[str] = field(default_factory=list)
    # Ids to acknowledge once the lines are stored, in arrival order (MQTT wants PUBACKs in
    # order), rejected messages' included; opaque here, meaningful only to `connection`.
    ids: list[int] = field(default_factory=list)
    # What delivered the messages (None: nothing to acknowledge, e.g. rollups, serial).
    connection: Connection | None = None
    # Rejected messages, kept as dead letters before the batch is acknowledged.
    rejects: list[DeadLetter] = field(default_factory=list)
    # Another retention policy (v1) or bucket (v2) than the readings': the rollups'.
    place: str | None = None

    def settle(self) -> None:
        """Acknowledge the batch's messages: called once its lines are stored or spooled and
        its dead letters kept."""
        if self.ids and self.connection is not None:
            self.connection.ack(self.ids)


# A spooled batch bound for another retention policy or bucket starts with this line; no line
# of line protocol starts with "#" (measurement names come from the contract).
_PLACE = b"#place="


def pack_place(place: str, body: bytes) -> bytes:
    return _PLACE + place.encode() + b"\n" + body


def unpack_place(record: bytes) -> tuple[str | None, bytes]:
    if not record.startswith(_PLACE):
        return None, record
    head, _, body = record.partition(b"\n")
    return head[len(_PLACE) :].decode(), body
