"""Old news, replays and re-deliveries never change a live alarm (issue 10, finding 2 and 3, pure).

Each test is one of the reproduced findings: events with a receive time go through the gate into the engine,
as the hub sends them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alarms.engine import Engine
from alarms.gate import Gate, GateLimits, Verdict, feed, freshness_by_kind, rule_freshness
from hub.model import AlarmDecision, DecisionAction, Event, EventKind
from tests.alarms.home import PACK, directory, ev, local

T = local("2026-11-27 11:00")


def lane(start: datetime = T, supervision_s: float = 24 * 3600) -> tuple[Gate, Engine]:
    """A gate and an engine, configured as the hub configures them, watching from `start`."""
    engine = Engine(PACK, directory(supervision_s=supervision_s))
    engine.freshness_s = rule_freshness(PACK, GateLimits())
    engine.tick(start)
    return Gate(freshness_by_kind(PACK, GateLimits())), engine


def deliver(gate: Gate, engine: Engine, event: Event, received_at: datetime | None = None) -> list[AlarmDecision]:
    """One delivery at `received_at` (default: on time); the hub's clock is the receive time."""
    at = received_at or event.ts
    return feed(gate, engine, event, at, at)


def actions(decisions: list[AlarmDecision]) -> list[tuple[str, str]]:
    return [(d.action.value, d.rule_id) for d in decisions]


def test_an_older_battery_reading_does_not_clear_the_alarm_of_a_newer_one() -> None:
    gate, engine = lane()
    assert actions(deliver(gate, engine, ev(T, "radar", EventKind.BATTERY, 10))) == [("raise", "battery_low")]
    older = ev(T - timedelta(minutes=5), "radar", EventKind.BATTERY, 30)
    assert deliver(gate, engine, older, T + timedelta(seconds=1)) == []
    assert "battery_low:radar" in engine.open
    assert gate.counts[Verdict.STALE] == 1


def test_a_cancel_dated_before_the_press_does_not_cancel_it() -> None:
    gate, engine = lane()
    assert actions(deliver(gate, engine, ev(T, "button", EventKind.ALARM_BUTTON))) == [("raise", "alarm_button")]
    cancel = ev(T - timedelta(seconds=2), "button", EventKind.ALARM_BUTTON_CANCEL)
    assert deliver(gate, engine, cancel, T + timedelta(seconds=1)) == []
    assert "alarm_button:r1" in engine.open


def test_a_press_redelivered_after_its_cancel_raises_nothing() -> None:
    gate, engine = lane()
    press = ev(T, "button", EventKind.ALARM_BUTTON, seq=7)
    assert actions(deliver(gate, engine, press)) == [("raise", "alarm_button")]
    cancel = ev(T + timedelta(seconds=10), "button", EventKind.ALARM_BUTTON_CANCEL, seq=8)
    assert actions(deliver(gate, engine, cancel)) == [("cancel", "alarm_button")]
    assert deliver(gate, engine, press, T + timedelta(seconds=20)) == []  # the broker delivered it again
    assert engine.open == {}


def test_the_same_fall_delivered_three_times_is_one_alarm_counted_once() -> None:
    gate, engine = lane()
    fall = ev(T, "radar", EventKind.FALL_DETECTED, ref="f1", seq=3)
    out = [d for i in range(3) for d in deliver(gate, engine, fall, T + timedelta(seconds=i))]
    assert [(d.action, d.count) for d in out] == [(DecisionAction.RAISE, 1)]
    assert engine.open["fall:r1"].count == 1
    assert gate.counts[Verdict.DUPLICATE] == 2


def test_a_night_door_opening_reported_in_the_morning_raises_no_night_alarm() -> None:
    gate, engine = lane(local("2026-11-26 22:00"))
    door = ev(local("2026-11-27 03:00"), "door", EventKind.DOOR_OPEN)
    assert deliver(gate, engine, door, local("2026-11-27 10:20")) == []
    # the hub then runs on: nothing waits to raise it later either
    assert ("raise", "entrance_door_night") not in actions(engine.tick(local("2026-11-27 23:00")))


def test_an_event_from_2001_raises_no_live_alarm() -> None:
    gate, engine = lane()
    old = ev(datetime(2001, 5, 1, tzinfo=UTC), "button", EventKind.ALARM_BUTTON)
    assert deliver(gate, engine, old, T) == []


def test_a_late_report_is_still_a_sign_of_life() -> None:
    """A flushed backlog keeps the device's supervision honest: judged on the event's time, not its arrival."""
    gate, engine = lane(T, supervision_s=600)
    late = ev(T + timedelta(minutes=9), "radar", EventKind.FALL_DETECTED, ref="old")
    assert deliver(gate, engine, late, T + timedelta(minutes=9, seconds=500)) == []  # too late for a fall alarm
    silent = {d.device_id for d in engine.tick(T + timedelta(minutes=12)) if d.rule_id == "device_silent"}
    assert "radar" not in silent
    assert "bed" in silent  # the others did fall silent: supervision works


def test_an_event_ahead_of_the_hub_clock_fires_no_timer_early() -> None:
    """Timers never fire beyond the hub's clock: one event dated 50 s ahead raised every device_silent on main."""
    gate, engine = lane(T, supervision_s=30)
    engine.tick(T + timedelta(seconds=20))
    ahead = ev(T + timedelta(seconds=70), "mot", EventKind.MOTION)
    out = deliver(gate, engine, ahead, T + timedelta(seconds=20))
    assert [d for d in out if d.rule_id == "device_silent"] == []


def test_gate_marks_survive_a_restart() -> None:
    gate, engine = lane()
    press = ev(T, "button", EventKind.ALARM_BUTTON, seq=1)
    deliver(gate, engine, press)
    again = Gate(gate.freshness_s)
    again.restore(gate.snapshot())
    assert again.admit(press, T + timedelta(seconds=30)) is Verdict.DUPLICATE
