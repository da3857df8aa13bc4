"""A dispenser's dose lifecycle keeps the dose id as ref; alive and fault are device facts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters import medication_robot
from hub.model import EventKind, PayloadError
from tests.adapters.support import fixture

M = "medication_robot"
TOPIC = "medication/EVD-55213/events"
RECEIVED = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)  # after the day's doses


@pytest.mark.parametrize(
    ("name", "kind", "ref", "attrs"),
    [
        ("dose_due.json", EventKind.MEDICATION_DUE, "d-20261129-0800", {"delay_s": 2}),
        ("dose_late.json", EventKind.MEDICATION_LATE, "d-20261129-0800", {"delay_s": 1800}),
        ("dose_taken.json", EventKind.MEDICATION_TAKEN, "d-20261129-0800", {"delay_s": 2470}),
        ("dose_missed.json", EventKind.MEDICATION_MISSED, "d-20261129-1300", {"delay_s": 5400}),
        ("alive.json", EventKind.HEARTBEAT, None, {}),
        ("fault.json", EventKind.DEVICE_FAULT, None, {"code": "E12", "text": "dose roll jammed"}),
    ],
)
def test_dispenser_events(name: str, kind: EventKind, ref: str | None, attrs: dict[str, object]) -> None:
    [event] = medication_robot.parse(TOPIC, fixture(M, name), RECEIVED)
    assert (event.kind, event.ref, event.attrs, event.device_id) == (kind, ref, attrs, "EVD-55213")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"event": "DOSE_TAKEN", "time": "2026-11-29T08:00:00+01:00"}', "missing_field"),
        (b'{"event": "DOSE_EATEN", "doseId": "d", "time": "2026-11-29T08:00:00+01:00"}', "unknown_event"),
        (b'{"event": "ALIVE", "time": "2026-11-29T08:00:00"}', "naive_timestamp"),
        (b'{"event": "ALIVE"}', "missing_field"),
    ],
)
def test_bad_messages_say_why(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        medication_robot.parse(TOPIC, payload, RECEIVED)
    assert err.value.reason == reason
