"""How events and rejections become database rows, and how batches of rows are framed for the spool."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from hub.model import CARE_KINDS, Event

MAX_REJECTED_PAYLOAD_BYTES = 4096

# column order of the events table, its staging table, COPY and spool records
EVENT_COLUMNS: tuple[str, ...] = (
    "ts",
    "site",
    "device_id",
    "resident_id",
    "kind",
    "value",
    "unit",
    "attrs",
    "seq",
    "ref",
    "received_at",
)
REJECTION_COLUMNS: tuple[str, ...] = ("received_at", "topic", "payload", "reason")

CARE_KIND_VALUES: frozenset[str] = frozenset(k.value for k in CARE_KINDS)
_KIND_INDEX = EVENT_COLUMNS.index("kind")

EventRow = tuple[datetime, str, str, str | None, str, float | None, str | None, str, int, str | None, datetime]
RejectionRow = tuple[datetime, str, bytes, str]

_json_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that could not become an event: stored in `rejected_messages` with the first 4 KiB of its payload."""

    received_at: datetime
    topic: str
    payload: bytes
    reason: str


def event_row(event: Event, received_at: datetime) -> EventRow:
    """The events-table row for one event."""
    attrs = "{}" if not event.attrs else _json_encoder.encode(event.attrs).decode()
    return (
        event.ts,
        event.site,
        event.device_id,
        event.resident_id,
        event.kind.value,
        event.value,
        event.unit,
        attrs,
        event.seq,
        event.ref,
        received_at,
    )


def rejection_row(rejection: Rejection) -> RejectionRow:
    """The rejected_messages row for one rejection; the payload is cut to 4 KiB."""
    return (
        rejection.received_at,
        rejection.topic.replace("\x00", "\ufffd"),
        bytes(rejection.payload[:MAX_REJECTED_PAYLOAD_BYTES]),
        rejection.reason,
    )


def row_is_care(row: EventRow) -> bool:
    """True when the row is a care event (never shed)."""
    return row[_KIND_INDEX] in CARE_KIND_VALUES


class SpoolBatch(msgspec.Struct, array_like=True, frozen=True):
    """One spool record: events and rejections that were durable together."""

    events: list[EventRow]
    rejections: list[RejectionRow]


_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(SpoolBatch)


def encode_batch(events: list[EventRow], rejections: list[RejectionRow]) -> bytes:
    """Serialise a batch for the spool."""
    return _batch_encoder.encode(SpoolBatch(events, rejections))


def decode_batch(data: bytes) -> SpoolBatch:
    """Read back a batch written by `encode_batch`; raises msgspec.DecodeError on garbage."""
    return _batch_decoder.decode(data)
