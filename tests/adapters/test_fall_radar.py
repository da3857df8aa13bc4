"""A radar's fall lifecycle keeps one ref across its stages; heartbeats and presence are device facts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters import fall_radar
from hub.model import EventKind, PayloadError
from tests.adapters.support import RECEIVED, fixture

R = "fall_radar"
TOPIC = "radar/VYR-0A1B2C/events"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("fall_fall_detected.json", EventKind.FALL_DETECTED),
        ("fall_suspected.json", EventKind.FALL_DETECTED),
        ("fall_confirmed.json", EventKind.FALL_CONFIRMED),
        ("fall_canceled.json", EventKind.FALL_CANCELLED),
        ("fall_finished.json", EventKind.FALL_FINISHED),
    ],
)
def test_each_stage_is_an_event_with_the_same_ref(name: str, kind: EventKind) -> None:
    [event] = fall_radar.parse(TOPIC, fixture(R, name), RECEIVED)
    assert (event.kind, event.ref, event.device_id) == (kind, "f-7d41c2", "VYR-0A1B2C")
    assert event.ts == datetime(2026, 11, 29, 2, 0, 0, 123000, tzinfo=UTC)
    assert "location" not in event.attrs


def test_stages_at_the_same_millisecond_are_all_stored() -> None:
    names = ["fall_fall_detected.json", "fall_suspected.json", "fall_confirmed.json", "fall_finished.json"]
    keys = {(ev.device_id, ev.ts, ev.seq) for n in names for ev in fall_radar.parse(TOPIC, fixture(R, n), RECEIVED)}
    assert len(keys) == 4


def test_heartbeat_keeps_uptime_and_signal() -> None:
    [event] = fall_radar.parse("radar/VYR-0A1B2C/heartbeat", fixture(R, "heartbeat.json"), RECEIVED)
    assert event.kind is EventKind.HEARTBEAT
    assert event.attrs == {"uptime": 864211.0, "signal": -61.0, "firmware": "3.4.2"}


def test_presence_is_one_or_zero() -> None:
    [event] = fall_radar.parse("radar/VYR-0A1B2C/state", fixture(R, "presence.json"), RECEIVED)
    assert (event.kind, event.value) == (EventKind.PRESENCE, 1.0)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"type": "fall", "status": "fall_detected", "timestamp": 1795917600000}', "missing_field"),
        (b'{"type": "fall", "eventId": "e", "status": "jumped", "timestamp": 1795917600000}', "unknown_status"),
        (b'{"type": "fall", "eventId": "e", "status": "confirmed"}', "missing_field"),
        (b'{"type": "dance", "timestamp": 1795917600000}', "unknown_type"),
        (b'{"type": "heartbeat", "timestamp": "yesterday"}', "invalid_timestamp"),
        (b'{"type": "heartbeat", "timestamp": 4102444800000}', "absurd_timestamp"),
    ],
)
def test_bad_messages_say_why(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        fall_radar.parse(TOPIC, payload, RECEIVED)
    assert err.value.reason == reason
