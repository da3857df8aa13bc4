"""Silence supervision that knows what it sees (issue 10, findings 4 and 5, pure).

A device's own "offline" is evidence of absence; one fault gives one alarm per device; while the hub is blind
silence is not judged, and afterwards it is judged on the events' own time, so a flushed backlog cannot flap.
"""

from __future__ import annotations

from datetime import timedelta

from alarms.engine import Engine
from hub.model import AlarmDecision, DecisionAction, EventKind
from tests.alarms.home import PACK, T0, directory, ev

SUPERVISION_S = 600


def watched() -> Engine:
    engine = Engine(PACK, directory(supervision_s=SUPERVISION_S))
    engine.offline_grace_s = 60
    engine.tick(T0)
    return engine


def silences(decisions: list[AlarmDecision]) -> list[tuple[str, str | None, float]]:
    """(action, device, minutes after T0) of the supervision decisions."""
    return [
        (d.action.value, d.device_id, (d.at - T0) / timedelta(minutes=1))
        for d in decisions
        if d.rule_id in ("device_silent", "camera_offline")
    ]


def test_a_last_will_offline_starts_the_grace_at_once() -> None:
    """On main the Will counted as life: device_silent came Will + supervision later, not at Will + grace."""
    engine = watched()
    engine.feed(ev(T0 + timedelta(minutes=1), "radar", EventKind.HEARTBEAT), T0)
    engine.feed(ev(T0 + timedelta(minutes=2), "radar", EventKind.DEVICE_OFFLINE), T0)
    out = engine.tick(T0 + timedelta(minutes=4))
    assert ("raise", "radar", 3.0) in silences(out)


def test_an_offline_device_back_within_the_grace_raises_nothing() -> None:
    engine = watched()
    engine.feed(ev(T0 + timedelta(minutes=2), "radar", EventKind.DEVICE_OFFLINE), T0)
    engine.feed(ev(T0 + timedelta(minutes=2, seconds=30), "radar", EventKind.DEVICE_ONLINE), T0)
    out = engine.tick(T0 + timedelta(minutes=5))
    assert [s for s in silences(out) if s[1] == "radar"] == []


def test_a_camera_going_offline_is_one_alarm() -> None:
    """On main a camera going offline gave camera_offline and, later, device_silent: two alarms for one fault."""
    engine = watched()
    out = engine.feed(ev(T0 + timedelta(minutes=1), "cam", EventKind.DEVICE_OFFLINE), T0)
    out += engine.tick(T0 + timedelta(minutes=30))
    raised = [s for s in silences(out) if s[1] == "cam" and s[0] == "raise"]
    assert len(raised) == 1


def test_blind_supervision_raises_nothing_and_a_flushed_backlog_does_not_flap() -> None:
    """Broker away for 15 min: every device's heartbeats were queued. On main: an alarm per device while blind, then
    a raise/cancel pair per flushed heartbeat."""
    engine = watched()
    engine.feed(ev(T0 + timedelta(minutes=1), "radar", EventKind.HEARTBEAT), T0)
    engine.supervision_suspended = True  # the hub lost the broker at +2 min
    out = engine.tick(T0 + timedelta(minutes=17))
    assert silences(out) == []
    # sight returns: the queued heartbeats of every device but the bed sensor arrive, each at its own time
    for minute in range(2, 17):
        for device in ("radar", "button", "door", "cam", "mot", "hall", "bath", "thermo", "robot", "water", "smoke"):
            out += engine.feed(ev(T0 + timedelta(minutes=minute), device, EventKind.HEARTBEAT), T0)
    engine.resume_supervision(T0 + timedelta(minutes=18))
    out += engine.tick(T0 + timedelta(minutes=18))
    assert silences(out) == [("raise", "bed", 18.0)]  # the one device that really went silent, once
    assert not [d for d in out if d.action is DecisionAction.CLEAR]
