"""What flows through the ingestor: a validated reading, or a rejection with a reason code."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devices import AnyDevice

FieldValue = float | int | bool | str


class Reason(enum.StrEnum):
    """Why a message was rejected. Values are stable: they appear in logs, metrics, dead letters
    and the `pipeline` measurement. docs/data-model.md has the table."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_TOPIC = "bad_topic"
    NOT_UTF8 = "not_utf8"
    BAD_JSON = "bad_json"
    JSON_TOO_DEEP = "json_too_deep"
    TOO_MANY_KEYS = "too_many_keys"
    NOT_OBJECT = "not_object"
    BAD_FORMAT = "bad_format"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_FIELD = "unknown_field"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    BAD_UNIT = "bad_unit"
    BAD_TIMESTAMP = "bad_timestamp"
    TS_IN_FUTURE = "ts_in_future"
    TS_TOO_OLD = "ts_too_old"
    BAD_STATUS = "bad_status"
    # A bug in the ingestor, not in the message: logged with its traceback. The message is
    # dead-lettered like any other, so it can be replayed once the bug is fixed.
    INTERNAL_ERROR = "internal_error"


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
    """A codec's output: one device's values at one time, not yet checked against the registry.

    The device is named by `device_id`, by `dev_eui`, or both (LoRaWAN servers know both); the
    validator looks it up by id first, then by dev_eui."""

    device_id: str | None
    # None means "the payload carried no time": the receive time applies.
    time_ms: int | None
    values: dict[str, object]
    # True for device_status points (online/offline, radio metadata), not telemetry.
    status: bool = False
    dev_eui: str | None = None
    # Units the payload named for some values (SenML); values without one are in contract units.
    units: dict[str, str] | None = None

    @property
    def name(self) -> str:
        """How the message named its device, for rejection details."""
        if self.device_id is not None:
            return self.device_id
        return f"dev_eui {self.dev_eui}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message as received, kept for inspection (dead-letter file and topic)."""

    reason: Reason
    detail: str
    topic: str
    received_ms: int
    payload: bytes
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """A reading that passed validation: typed fields of a registered device, ready to store."""

    measurement: str
    device: AnyDevice
    time_ms: int
    fields: dict[str, FieldValue]
