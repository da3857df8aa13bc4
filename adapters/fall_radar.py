"""Fall-detection radars with a multi-stage fall lifecycle (the public shape of Vayyar Care-style events).

Topic `{prefix}/{device_id}/{channel}`; the payload's `type` says what it is:
- `fall`: `status` fall_detected → suspected → confirmed | canceled → finished, one `eventId` across the stages. Each
  stage is an Event with the eventId as `ref`: fall_detected and suspected → `fall_detected`, confirmed →
  `fall_confirmed`, canceled → `fall_cancelled`, finished → `fall_finished`.
- `heartbeat`: the radar is alive; `uptime` (s) and `signal` (dBm) kept as attributes.
- `presence`: `present` true/false → `presence` 1/0.
`timestamp` is epoch milliseconds; `deviceId` in the payload wins over the topic's device segment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters._common import device_message, epoch_time, number
from hub.model import Event, EventKind, PayloadError

TOPIC_FILTERS = ("radar/+/+",)

FALL_STAGES: dict[str, tuple[EventKind, int]] = {
    "fall_detected": (EventKind.FALL_DETECTED, 0),
    "suspected": (EventKind.FALL_DETECTED, 1),
    "confirmed": (EventKind.FALL_CONFIRMED, 2),
    "canceled": (EventKind.FALL_CANCELLED, 3),
    "cancelled": (EventKind.FALL_CANCELLED, 3),
    "finished": (EventKind.FALL_FINISHED, 4),
}


def parse(topic: str, payload: bytes, received_at: datetime) -> list[Event]:
    """Turn one radar message into an Event; raise PayloadError for anything that is not one."""
    device_id, msg = device_message(topic, payload)
    kind_name = msg.get("type")
    if "timestamp" not in msg:
        raise PayloadError("missing_field", "timestamp")
    ts = epoch_time(msg["timestamp"], received_at, millis=True)
    if kind_name == "fall":
        return [_fall(msg, device_id, ts, topic)]
    if kind_name == "heartbeat":
        attrs = {k: v for k in ("uptime", "signal") if (v := number(msg.get(k))) is not None}
        if isinstance(msg.get("firmware"), str):
            attrs["firmware"] = msg["firmware"][:32]
        return [Event(ts=ts, site="", device_id=device_id, kind=EventKind.HEARTBEAT, attrs=attrs, topic=topic)]
    if kind_name == "presence":
        present = msg.get("present")
        if not isinstance(present, bool):
            raise PayloadError("missing_field", "present (true or false)")
        value = 1.0 if present else 0.0
        return [Event(ts=ts, site="", device_id=device_id, kind=EventKind.PRESENCE, value=value, topic=topic)]
    raise PayloadError("unknown_type", repr(kind_name)[:64])


def _fall(msg: dict[str, Any], device_id: str, ts: datetime, topic: str) -> Event:
    status, event_id = msg.get("status"), msg.get("eventId")
    if not isinstance(event_id, str) or not event_id:
        raise PayloadError("missing_field", "eventId")
    stage = FALL_STAGES.get(status) if isinstance(status, str) else None
    if stage is None:
        raise PayloadError("unknown_status", repr(status)[:64])
    kind, seq = stage
    attrs: dict[str, Any] = {"stage": status}
    if isinstance(msg.get("roomId"), str):
        attrs["room"] = msg["roomId"][:64]
    return Event(ts=ts, site="", device_id=device_id, kind=kind, attrs=attrs, seq=seq, ref=event_id[:128], topic=topic)
