"""What the pipeline hands the writer: a batch of lines with the packet ids it acknowledges.

Also the spool's record framing for a batch bound elsewhere than the readings' database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.reading import DeadLetter


@dataclass(slots=True)
class Batch:
    lines: list[str] = field(default_factory=list)
    # MQTT packet ids to acknowledge once the lines are stored, in arrival order (MQTT wants
    # PUBACKs in order), rejected messages' ids included.
    acks: list[int] = field(default_factory=list)
    # Packet ids are only meaningful on the connection that delivered them.
    generation: int = 0
    # Rejected messages, kept as dead letters before the batch is acknowledged.
    rejects: list[DeadLetter] = field(default_factory=list)
    # Another retention policy (v1) or bucket (v2) than the readings': the rollups'.
    place: str | None = None


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
