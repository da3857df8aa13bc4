"""Absence rules take only fresh signs of life; the engine and the desk agree after a restart (issue 22, point 5).

On main a bed_exit dated 3 h back cleared a live device_silent, which was raised again 100 ms later under a new id
(operations notified twice); and after a restart the engine and the desk could disagree about an open silence for
good: the desk held it open, the engine had lost it (or held it as cleared), so no sign of life ever closed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from alarms.engine import Engine
from hub.model import AlarmCategory, AlarmDecision, EventKind, Severity
from tests.alarms.home import PACK, SITE, T0, directory, ev

SUPERVISION_S = 600


def watched() -> Engine:
    engine = Engine(PACK, directory(supervision_s=SUPERVISION_S))
    engine.tick(T0)
    return engine


def silences(decisions: list[AlarmDecision], device: str = "bed") -> list[str]:
    return [d.action.value for d in decisions if d.rule_id == "device_silent" and d.device_id == device]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def feed_late(
    engine: Engine, minutes: float, kind: EventKind, now: datetime, device: str = "bed"
) -> list[AlarmDecision]:
    event = ev(at(minutes), device, kind)
    return engine.feed(event, now, late_s=(now - event.ts).total_seconds())


def test_a_sign_of_life_older_than_the_silence_alarm_does_not_clear_it() -> None:
    """The bed sensor went silent after 02:00; a bed_exit dated 3 h back, buffered in a gateway, arrives at 05:00."""
    engine = watched()
    engine.feed(ev(at(1), "bed", EventKind.HEARTBEAT), at(1))
    out = engine.tick(at(300))
    assert silences(out) == ["raise"]
    out = feed_late(engine, 120, EventKind.BED_EXIT, at(300))  # newer than its last heartbeat, but 3 h old
    out += feed_late(engine, 5, EventKind.HEARTBEAT, at(300))  # older than the alarm itself
    out += engine.tick(at(300) + timedelta(milliseconds=100))
    out += engine.tick(at(330))
    assert silences(out) == []  # no clear, and no second raise under a new id
    out = engine.feed(ev(at(331), "bed", EventKind.HEARTBEAT), at(331))
    assert silences(out) == ["clear"]  # a fresh one does


def test_an_event_below_the_high_water_mark_does_not_clear_a_silence() -> None:
    engine = watched()
    engine.feed(ev(at(1), "bed", EventKind.HEARTBEAT), at(1))
    engine.feed(ev(at(2), "bed", EventKind.DEVICE_OFFLINE), at(2))
    out = engine.tick(at(20))
    assert silences(out) == ["raise"]
    out = feed_late(engine, 1, EventKind.HEARTBEAT, at(20))  # the same age as its last sign of life: no news
    assert silences(out) == []


@dataclass
class DeskAlarm:
    """An alarm as the desk holds it open (hub.desk.alarm.Alarm's fields reconciliation reads)."""

    key: str
    rule_id: str
    site: str
    resident_id: str | None
    device_id: str | None
    category: AlarmCategory
    severity: Severity
    raised_at: datetime
    condition_ended_at: datetime | None = None
    count: int = 1
    unregistered: bool = False


def held_silence(device: str, raised_at: datetime, ended: datetime | None = None) -> DeskAlarm:
    return DeskAlarm(
        key=f"device_silent:{device}",
        rule_id="device_silent",
        site=SITE,
        resident_id="r1",
        device_id=device,
        category=AlarmCategory.TECHNICAL,
        severity=Severity.MEDIUM,
        raised_at=raised_at,
        condition_ended_at=ended,
    )


def test_a_silence_the_desk_holds_and_the_engine_lost_is_adopted_and_closes_on_a_fresh_sign_of_life() -> None:
    """The engine restarted from an older (or no) snapshot: it does not know the desk's open device_silent."""
    engine = watched()
    engine.feed(ev(at(1), "bed", EventKind.HEARTBEAT), at(1))
    out = engine.reconcile([held_silence("bed", at(11))], at(12))
    assert out == []
    assert "device_silent:bed" in engine.open
    out = engine.tick(at(30))
    assert silences(out) == []  # the silence continues: no second alarm for it
    out = engine.feed(ev(at(31), "bed", EventKind.HEARTBEAT), at(31))
    assert silences(out) == ["clear"]
    [clear] = [d for d in out if d.rule_id == "device_silent"]
    assert clear.auto_close


def test_a_silence_the_engine_cleared_while_the_desk_kept_it_open_is_cleared_at_the_desk() -> None:
    """Late heartbeats replayed after a restart cleared it in the engine; the desk never heard the clear."""
    engine = watched()
    engine.feed(ev(at(1), "bed", EventKind.HEARTBEAT), at(1))
    assert silences(engine.tick(at(12))) == ["raise"]
    assert silences(engine.feed(ev(at(13), "bed", EventKind.HEARTBEAT), at(13))) == ["clear"]
    out = engine.reconcile([held_silence("bed", at(11))], at(14))
    assert silences(out) == ["clear"]
    assert engine.reconcile([held_silence("bed", at(11), ended=at(14))], at(15)) == []  # once


def test_reconciling_agreeing_state_changes_nothing() -> None:
    engine = watched()
    engine.feed(ev(at(1), "bed", EventKind.HEARTBEAT), at(1))
    assert silences(engine.tick(at(12))) == ["raise"]
    snapshot = engine.snapshot()
    assert engine.reconcile([held_silence("bed", at(11))], at(13)) == []
    assert (
        engine.reconcile([], at(13)) == []
    )  # an alarm the desk does not hold: recovery raises it (hub/recovery/replay.py)
    assert engine.snapshot() == snapshot
