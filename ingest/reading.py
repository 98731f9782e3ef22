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
    # A field_map entry or expression that cannot apply to the payload (an enumeration value
    # it does not list, arithmetic on a missing or non-numeric value), or a derived field's.
    MAPPING_FAILED = "mapping_failed"
    # A device's JavaScript payload codec threw, timed out, ran out of memory or returned
    # something that is not a decoded object.
    CODEC_FAILED = "codec_failed"
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


class NoReading(Exception):
    """A message that carries no reading and is not an error: a LoRaWAN frame with no
    application payload (MAC commands only), or a device-information, join or configuration
    answer whose fields all fall outside the contract. Counted, never dead-lettered."""

    __slots__ = ("detail", "device_id", "ignored")

    def __init__(self, detail: str, device_id: str | None, ignored: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.device_id = device_id
        self.ignored = ignored


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
    # A LoRaWAN uplink the network server did not decode: its application payload and port,
    # for the device's own payload codec.
    frm_payload: bytes | None = None
    f_port: int | None = None
    # Set by a codec that knows the frame carries no reading (MAC commands only): what it is.
    no_reading: str | None = None
    # A json source's named topic levels beyond {device} and {field} ({channel}: "0"), for
    # field-map entries that apply only to some topics (FieldMap.when).
    levels: dict[str, str] | None = None

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
    # Lines stored from this message all the same: an uplink's radio status when its reading
    # was rejected (or its reading when the radio status was).
    kept: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reading:
    """A reading that passed validation: typed fields of a registered device, ready to store."""

    measurement: str
    device: AnyDevice
    time_ms: int
    fields: dict[str, FieldValue]
    # Payload fields the unknown-field policy ignored, counted per device and field.
    ignored: tuple[str, ...] = ()
    # When the ingestor received it (epoch ms): the alert engine judges silence by this, not by
    # the reading's own time (a backfill's old timestamps are not silence). 0: not from a source.
    received_ms: int = 0


# What the pipeline makes of a message: its lines of line protocol, or why it was refused.
Verdict = list[str] | DeadLetter
