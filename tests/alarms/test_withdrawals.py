"""Alarm integrity (issue 9, finding 1; issue 10): a withdrawal only withdraws the alarm it refers to by `ref`, from
the device that raised it; without a matching ref it is counted and leaves the alarm standing."""

from __future__ import annotations

from datetime import timedelta

from alarms.engine import Engine
from hub.model import AlarmDecision, Event, EventKind
from tests.alarms.home import directory, ev, fresh, local

T = local("2026-11-27 11:00")


def deliver(engine: Engine, event: Event) -> list[AlarmDecision]:
    return engine.feed(event, event.ts)


def actions(decisions: list[AlarmDecision]) -> list[tuple[str, str]]:
    return [(d.action.value, d.rule_id) for d in decisions]


def test_a_fall_cancel_without_ref_does_not_withdraw_a_fall_with_one() -> None:
    engine = fresh(T, directory())
    deliver(engine, ev(T, "radar", EventKind.FALL_DETECTED, ref="f1"))
    assert deliver(engine, ev(T + timedelta(seconds=5), "radar", EventKind.FALL_CANCELLED)) == []
    assert "fall:r1" in engine.open
    assert engine.withdrawals_unmatched == 1


def test_a_fall_cancel_from_another_device_does_not_withdraw_it_even_with_the_ref() -> None:
    engine = fresh(T, directory())
    deliver(engine, ev(T, "radar", EventKind.FALL_DETECTED, ref="f1"))
    forged = ev(T + timedelta(seconds=5), "button", EventKind.FALL_CANCELLED, ref="f1")
    assert deliver(engine, forged) == []
    assert "fall:r1" in engine.open
    own = ev(T + timedelta(seconds=6), "radar", EventKind.FALL_CANCELLED, ref="f1")
    assert actions(deliver(engine, own)) == [("cancel", "fall")]


def test_a_button_cancel_from_another_device_does_not_withdraw_the_press() -> None:
    engine = fresh(T, directory())
    deliver(engine, ev(T, "button", EventKind.ALARM_BUTTON))
    assert deliver(engine, ev(T + timedelta(seconds=5), "radar", EventKind.ALARM_BUTTON_CANCEL)) == []
    assert "alarm_button:r1" in engine.open
    mine = ev(T + timedelta(seconds=6), "button", EventKind.ALARM_BUTTON_CANCEL)
    assert actions(deliver(engine, mine)) == [("cancel", "alarm_button")]


def test_a_reset_at_the_unit_ends_its_own_alarm_and_leaves_another_kind_of_alarm_alone_uncounted() -> None:
    # the resident is on the floor (the radar's fall) and pressed the button too; staff reset the button at the unit
    engine = fresh(T, directory())
    deliver(engine, ev(T, "radar", EventKind.FALL_DETECTED, ref="f1"))
    deliver(engine, ev(T + timedelta(seconds=2), "button", EventKind.ALARM_BUTTON, ref="b1"))
    reset = ev(T + timedelta(seconds=60), "button", EventKind.ALARM_RESET, ref="b1")
    decisions = deliver(engine, reset)
    assert [(d.action.value, d.rule_id, d.reason) for d in decisions] == [
        ("cancel", "alarm_button", "reset at the alarm unit")
    ]
    assert "fall:r1" in engine.open
    assert engine.withdrawals_unmatched == 0, "a reset of the button is no stray withdrawal of the fall"
    stray = ev(T + timedelta(seconds=70), "button", EventKind.ALARM_RESET, ref="nothing-of-mine")
    assert deliver(engine, stray) == []
    assert "fall:r1" in engine.open
