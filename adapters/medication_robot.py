"""Medication robots and dispensers (the public shape of Evondos-style dose events).

Topic `{prefix}/{device_id}/events`; payload `{"deviceId", "event", "time", "doseId", "scheduledTime", "fault"}`
with `event` one of (any case):
- `DOSE_DUE` → `medication_due`, `DOSE_LATE` → `medication_late`, `DOSE_TAKEN` → `medication_taken`,
  `DOSE_MISSED` → `medication_missed`; the doseId is the `ref` that ties a dose's events together and
  `scheduledTime` gives `attrs.delay_s` (how long after the schedule it happened);
- `ALIVE` → `heartbeat`; `FAULT` → `device_fault` (`fault.code`, `fault.description` as attrs.code, attrs.text).
`time` is ISO 8601 with an offset. No resident data is read: the robot's own patient fields are never copied.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters._common import device_message, iso_time
from hub.model import Event, EventKind, PayloadError

TOPIC_FILTERS = ("medication/+/events",)

EVENTS: dict[str, tuple[EventKind, int]] = {
    "dose_due": (EventKind.MEDICATION_DUE, 0),
    "dose_late": (EventKind.MEDICATION_LATE, 1),
    "dose_taken": (EventKind.MEDICATION_TAKEN, 2),
    "dose_missed": (EventKind.MEDICATION_MISSED, 2),
    "alive": (EventKind.HEARTBEAT, 0),
    "fault": (EventKind.DEVICE_FAULT, 0),
}
_DOSE_KINDS = frozenset({"dose_due", "dose_late", "dose_taken", "dose_missed"})


def parse(topic: str, payload: bytes, received_at: datetime) -> list[Event]:
    """Turn one dispenser message into an Event; raise PayloadError for anything that is not one."""
    device_id, msg = device_message(topic, payload)
    name = msg.get("event")
    entry = EVENTS.get(name.lower()) if isinstance(name, str) else None
    if entry is None:
        raise PayloadError("unknown_event", repr(name)[:64])
    if "time" not in msg:
        raise PayloadError("missing_field", "time")
    ts = iso_time(msg["time"], received_at)
    kind, seq = entry
    attrs: dict[str, Any] = {}
    ref = None
    assert isinstance(name, str)
    if name.lower() in _DOSE_KINDS:
        dose_id = msg.get("doseId")
        if not isinstance(dose_id, str) or not dose_id:
            raise PayloadError("missing_field", "doseId")
        ref = dose_id[:128]
        if "scheduledTime" in msg:
            scheduled = iso_time(msg["scheduledTime"], received_at)
            attrs["delay_s"] = round((ts - scheduled).total_seconds())
    elif kind is EventKind.DEVICE_FAULT:
        fault = msg.get("fault")
        if not isinstance(fault, dict):
            fault = {}
        attrs = {"code": str(fault.get("code", ""))[:32], "text": str(fault.get("description", ""))[:128]}
    return [Event(ts=ts, site="", device_id=device_id, kind=kind, attrs=attrs, seq=seq, ref=ref, topic=topic)]
