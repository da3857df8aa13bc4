"""The native contract: `vaka/v1/{site}/{device_id}/event|telemetry|status`, one JSON object per message."""

from __future__ import annotations

import re
from datetime import datetime

import msgspec

from hub.model import (
    MAX_PAYLOAD_BYTES,
    TOPIC_ROOT,
    Event,
    EventKind,
    NativePayload,
    NativeStatus,
    PayloadError,
    check_event_time,
    check_value,
)

TOPIC_FILTERS = (f"{TOPIC_ROOT}/+/+/event", f"{TOPIC_ROOT}/+/+/telemetry", f"{TOPIC_ROOT}/+/+/status")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")
_CHANNELS = frozenset({"event", "telemetry", "status"})
_RESERVED_DEVICE_IDS = frozenset({"hub", "alarms", "_sim"})

_payload_decoder = msgspec.json.Decoder(NativePayload)
_status_decoder = msgspec.json.Decoder(NativeStatus)


def _is_hub_status(topic: str) -> bool:
    parts = topic.split("/")
    return len(parts) == 5 and parts[3] == "hub" and parts[4] == "status" and f"{parts[0]}/{parts[1]}" == TOPIC_ROOT


def split_topic(topic: str) -> tuple[str, str, str]:
    """Return (site, device_id, channel) of a native topic, or raise PayloadError."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT or parts[4] not in _CHANNELS:
        raise PayloadError("bad_topic", topic[:128])
    site, device_id, channel = parts[2], parts[3], parts[4]
    if not _ID.match(site) or not _ID.match(device_id) or device_id in _RESERVED_DEVICE_IDS:
        raise PayloadError("bad_topic", topic[:128])
    return site, device_id, channel


def parse(topic: str, payload: bytes, received_at: datetime) -> list[Event]:
    """Turn one native message into Events; raise PayloadError with a short reason for anything else."""
    if _is_hub_status(topic):
        return []  # the hub's own status (hub/supervision/hub_status.py), which `+/+/status` also matches: no device said it
    site, device_id, channel = split_topic(topic)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("payload_too_large", f"{len(payload)} bytes")
    if b"\\u0000" in payload:
        # PostgreSQL text and jsonb cannot hold NUL: refuse it here rather than fail a whole batch later
        raise PayloadError("nul_character")
    if channel == "status":
        if not payload:
            return []  # a retained status being cleared: nothing happened to the device
        return [_parse_status(site, device_id, payload, received_at, topic)]
    try:
        msg = _payload_decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise PayloadError("invalid_event", str(exc)[:200]) from None
    except msgspec.DecodeError as exc:
        raise PayloadError("invalid_json", str(exc)[:200]) from None
    if not 0 <= msg.seq < 2**63:
        raise PayloadError("invalid_event", "seq out of range")
    if (msg.unit is not None and len(msg.unit) > 16) or (msg.ref is not None and len(msg.ref) > 128):
        raise PayloadError("invalid_event", "unit longer than 16 or ref longer than 128 characters")
    return [
        Event(
            ts=check_event_time(msg.ts, received_at),
            site=site,
            device_id=device_id,
            kind=msg.kind,
            value=check_value(msg.value),
            unit=msg.unit,
            attrs=msg.attrs,
            seq=msg.seq,
            ref=msg.ref,
            topic=topic,
        )
    ]


def _parse_status(site: str, device_id: str, payload: bytes, received_at: datetime, topic: str) -> Event:
    text = payload.strip()
    if text in (b"online", b"offline"):
        state, ts = text.decode(), received_at
    else:
        try:
            status = _status_decoder.decode(payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise PayloadError("invalid_status", str(exc)[:200]) from None
        state = status.state
        ts = check_event_time(status.ts, received_at) if status.ts is not None else received_at
    kind = EventKind.DEVICE_ONLINE if state == "online" else EventKind.DEVICE_OFFLINE
    return Event(ts=ts, site=site, device_id=device_id, kind=kind, topic=topic)


def event_schema() -> dict[str, object]:
    """JSON Schema of the native event payload, for vendors (`vaka schema event`)."""
    schema = msgspec.json.schema(NativePayload)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Vaka native event", **schema}
