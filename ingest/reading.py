"""What flows through the ingestor: a validated reading, or a rejection with a reason code."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devices import AnyDevice

FieldValue = float | int | bool | str


class Reason(enum.StrEnum):
    """Why a message was rejected. Values are stable: they appear in logs and metrics."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_TOPIC = "bad_topic"
    NOT_UTF8 = "not_utf8"
    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_FIELD = "unknown_field"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_STATUS = "bad_status"


class Rejected(Exception):
    """A message the pipeline will not store. Raised by codecs and the validator only."""

    __slots__ = ("detail", "device_id", "reason")

    def __init__(self, reason: Reason, detail: str, device_id: str | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.device_id = device_id


@dataclass(frozen=True, slots=True)
class Decoded:
    """A codec's output: a message taken apart, not yet checked against the registry."""

    device_id: str
    # None means "the payload carried no time": the receive time applies.
    time_ms: int | None
    values: dict[str, object]
    status: bool = False


@dataclass(frozen=True, slots=True)
class Reading:
    """A reading that passed validation: typed fields of a registered device, ready to store."""

    measurement: str
    device: AnyDevice
    time_ms: int
    fields: dict[str, FieldValue]
