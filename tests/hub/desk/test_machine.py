"""The desk state machine on its own: decisions, staff actions and time in, changes out; no database, no argon2."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hub.desk.directory import DeskDirectory
from hub.desk.machine import NOBODY_REACHED, ChangeKind, DeskError, DeskMachine, HandoverError
from hub.model import AlarmCategory, AlarmState, DecisionAction, Outcome, Severity
from hub.people.staff import Role, StaffMember
from hub.settings import DeskSettings, EscalationPolicy, EscalationTier, PatrolSettings
from tests.hub.desk_support import decision, sites_for

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # 13:00 in Stockholm: day
SITE = "s1"
ANNA = StaffMember(id=1, username="anna", role=Role.STAFF, units=frozenset({(SITE, "A")}), display_name="Anna")
NILS = StaffMember(id=2, username="nils", role=Role.NURSE, units=frozenset({(SITE, "A")}))
CARL = StaffMember(id=3, username="carl", role=Role.STAFF, units=frozenset({(SITE, "B")}))


@pytest.fixture
def machine() -> DeskMachine:
    policy = EscalationPolicy(
        category="care",
        tiers=[EscalationTier(after_s=0, audience="unit"), EscalationTier(after_s=10, audience="nurse")],
        repeat_s=30,
    )
    directory = DeskDirectory()
    directory.set_sites(sites_for(SITE))
    directory.set_staff([ANNA, NILS, CARL])
    return DeskMachine(DeskSettings(policies=[policy]), directory, PatrolSettings(duty_required=False))


def kinds(changes: list) -> list[ChangeKind]:  # type: ignore[type-arg]
    return [c.kind for c in changes]


def test_a_raise_rings_its_unit_at_once_and_the_nurse_when_nobody_takes_it(machine: DeskMachine) -> None:
    changes = machine.apply(decision(SITE), T0)
    assert kinds(changes) == [ChangeKind.RAISE, ChangeKind.ESCALATE]
    alarm = changes[0].alarm
    assert (alarm.unit, alarm.wakes_patrol, alarm.state) == ("A", True, AlarmState.RAISED)
    assert [s.username for s in changes[1].recipients] == ["anna", "nils"]
    assert machine.due(T0 + timedelta(seconds=9)) == []
    assert machine.due(T0 + timedelta(seconds=10)) == [alarm]
    (tier2,) = machine.escalate(alarm, T0 + timedelta(seconds=10))
    assert (tier2.tier, tier2.audience, [s.username for s in tier2.recipients]) == (1, "nurse", ["nils"])


def test_a_repeat_updates_the_open_alarm_without_a_new_one(machine: DeskMachine) -> None:
    alarm = machine.apply(decision(SITE), T0)[0].alarm
    changes = machine.apply(decision(SITE, DecisionAction.UPDATE, reason="again"), T0 + timedelta(seconds=5))
    assert kinds(changes) == [ChangeKind.UPDATE]
    assert changes[0].alarm is alarm
    assert alarm.count == 2
    assert not changes[0].notify  # pages only


def test_staff_take_an_alarm_through_its_lifecycle_and_escalation_stops(machine: DeskMachine) -> None:
    alarm = machine.apply(decision(SITE), T0)[0].alarm
    with pytest.raises(DeskError):
        machine.advance(alarm.id, CARL, AlarmState.ACCEPTED, T0)  # not carl's unit
    _, changes = machine.advance(alarm.id, ANNA, AlarmState.ACCEPTED, T0 + timedelta(seconds=3))
    assert [(c.kind, c.action, c.accept_latency_s) for c in changes] == [(ChangeKind.STEP, "accepted", 3.0)]
    assert (alarm.accepted_by, alarm.next_escalation_at) == ("Anna", None)
    assert machine.due(T0 + timedelta(hours=1)) == []
    with pytest.raises(DeskError):
        machine.advance(alarm.id, NILS, AlarmState.ACCEPTED, T0)  # already accepted
    _, changes = machine.resolve(alarm.id, ANNA, Outcome.ASSISTED, " helped ", T0 + timedelta(minutes=5))
    assert [(c.kind, c.action, c.accept_latency_s) for c in changes] == [(ChangeKind.CLOSE, "resolved", None)]
    assert (alarm.state, alarm.note, machine.get(alarm.id)) == (AlarmState.RESOLVED, "helped", None)


def test_a_clear_marks_a_care_alarm_condition_ended_and_only_a_technical_one_closes_itself(
    machine: DeskMachine,
) -> None:
    fall = machine.apply(decision(SITE), T0)[0].alarm
    changes = machine.apply(decision(SITE, DecisionAction.CLEAR, reason="back in bed"), T0 + timedelta(seconds=30))
    assert [(c.kind, c.notify) for c in changes] == [(ChangeKind.CONDITION_ENDED, True)]
    assert (machine.get(fall.id), fall.state, fall.condition_note) == (fall, AlarmState.RAISED, "back in bed")
    battery = decision(SITE, rule_id="battery_low", category=AlarmCategory.TECHNICAL, subject="plug2", device="plug2")
    low = machine.apply(battery, T0)[0].alarm
    gone = machine.apply(replace(battery, action=DecisionAction.CLEAR, auto_close=True), T0)
    assert [(c.kind, c.transition) for c in gone] == [(ChangeKind.CLOSE, AlarmState.CANCELLED)]
    assert machine.get(low.id) is None


def test_a_new_incident_on_an_alarm_someone_holds_stays_hers_and_rings_for_her_first(machine: DeskMachine) -> None:
    alarm = machine.apply(decision(SITE), T0)[0].alarm
    machine.advance(alarm.id, ANNA, AlarmState.EN_ROUTE, T0)
    changes = machine.apply(decision(SITE, DecisionAction.UPDATE), T0 + timedelta(minutes=2))
    assert changes == [] or changes[0].kind is ChangeKind.UPDATE  # the same condition: no ringing
    again = T0 + timedelta(minutes=3)
    changes = machine.apply(replace(decision(SITE, DecisionAction.UPDATE), repeat=True), again)
    assert [(c.kind, c.transition) for c in changes] == [(ChangeKind.REPEAT, None), (ChangeKind.ESCALATE, None)]
    assert (changes[1].audience, [s.username for s in changes[1].recipients]) == ("holder", ["anna"])
    # still hers and still on the way (her page keeps the way in), ringing for her, the latest time on the card
    assert (alarm.state, alarm.incidents, alarm.accepted_by) == (AlarmState.EN_ROUTE, 2, "Anna")
    assert (alarm.repeat_pending, alarm.rings, alarm.last_incident_at) == (True, True, again)
    assert machine.open_alarms()[0] is alarm
    # a colleague is still asked before taking it over
    with pytest.raises(HandoverError):
        machine.advance(alarm.id, NILS, AlarmState.ON_SITE, again)
    # her "got it" (her own step again) stops the ringing; nothing moves on, nothing is taken over
    _, changes = machine.advance(alarm.id, ANNA, AlarmState.EN_ROUTE, again + timedelta(seconds=5))
    assert [(c.kind, c.action, c.transition) for c in changes] == [(ChangeKind.STEP, "repeat_answered", None)]
    assert (alarm.state, alarm.repeat_pending, alarm.rings) == (AlarmState.EN_ROUTE, False, False)
    assert machine.due(again + timedelta(hours=1)) == []
    with pytest.raises(DeskError):
        machine.advance(alarm.id, ANNA, AlarmState.EN_ROUTE, again + timedelta(seconds=9))  # nothing left to answer


def test_a_repeat_the_holder_does_not_answer_goes_on_to_the_next_tiers_and_colleagues_pages(
    machine: DeskMachine,
) -> None:
    alarm = machine.apply(decision(SITE), T0)[0].alarm
    machine.advance(alarm.id, ANNA, AlarmState.ON_SITE, T0)
    again = T0 + timedelta(minutes=5)
    machine.apply(replace(decision(SITE, DecisionAction.UPDATE), repeat=True), again)
    assert machine.due(again + timedelta(seconds=9)) == []
    assert machine.due(again + timedelta(seconds=10)) == [alarm]
    changes = machine.escalate(alarm, again + timedelta(seconds=10))
    assert [(c.kind, c.action) for c in changes] == [
        (ChangeKind.ESCALATE, "escalated"),
        (ChangeKind.UPDATE, "repeat_unanswered"),
    ]
    assert [s.username for s in changes[0].recipients] == ["nils"]
    assert (alarm.state, alarm.accepted_by, alarm.repeat_escalated) == (AlarmState.ON_SITE, "Anna", True)
    # her next step answers it too
    _, changes = machine.resolve(alarm.id, ANNA, Outcome.ASSISTED, "", again + timedelta(seconds=20))
    assert changes[-1].kind is ChangeKind.CLOSE


def test_a_repeat_of_an_alarm_whose_holder_went_off_duty_rings_everyone_again(machine: DeskMachine) -> None:
    machine.patrol = PatrolSettings(duty_required=True)
    machine.directory.duty = {ANNA.id: T0 + timedelta(hours=1), NILS.id: T0 + timedelta(hours=8)}
    alarm = machine.apply(decision(SITE), T0)[0].alarm
    machine.advance(alarm.id, ANNA, AlarmState.ACCEPTED, T0)
    changes = machine.apply(replace(decision(SITE, DecisionAction.UPDATE), repeat=True), T0 + timedelta(hours=2))
    assert [(c.kind, c.transition) for c in changes] == [
        (ChangeKind.REPEAT, AlarmState.RAISED),
        (ChangeKind.ESCALATE, None),
    ]
    assert [s.username for s in changes[1].recipients] == ["nils"]
    assert (alarm.state, alarm.accepted_by) == (AlarmState.RAISED, "Anna")


def test_an_alarm_that_reaches_nobody_raises_the_sites_nobody_reached_alarm(machine: DeskMachine) -> None:
    machine.patrol = PatrolSettings(duty_required=True, fallback_phones={"*": "+4670000"})  # nobody signed on
    changes = machine.apply(decision(SITE), T0)
    assert [c.kind for c in changes][:3] == [ChangeKind.RAISE, ChangeKind.ESCALATE, ChangeKind.NOBODY_REACHED]
    assert changes[1].recipients == ()
    nobody = machine.get_open_by_key(f"{NOBODY_REACHED}:{SITE}")
    assert nobody is not None
    tier = next(c for c in changes if c.kind is ChangeKind.ESCALATE and c.alarm is nobody)
    assert ({s.username for s in tier.recipients}, tier.phones) == ({"anna", "nils", "carl"}, ("+4670000",))


def test_nobody_reached_keeps_naming_the_first_alarm_that_reached_nobody(machine: DeskMachine) -> None:
    """Finding 10: the site's "nobody reached" alarm named only the latest unreached alarm, not the first."""
    machine.patrol = PatrolSettings(duty_required=True)  # nobody signed on
    machine.apply(decision(SITE), T0)
    nobody = machine.get_open_by_key(f"{NOBODY_REACHED}:{SITE}")
    assert nobody is not None
    first = nobody.reason
    assert first.startswith("nobody reached: fall_detected")
    machine.apply(decision(SITE, rule_id="alarm_button", subject="r2", resident="r2"), T0 + timedelta(minutes=10))
    assert (nobody.reason, nobody.incidents) == (first, 2)


def test_every_change_a_page_sees_has_its_own_version(machine: DeskMachine) -> None:
    changes = machine.apply(decision(SITE), T0)
    alarm = changes[0].alarm
    assert alarm.version == 1  # the escalation is not a page change
    machine.advance(alarm.id, ANNA, AlarmState.ACCEPTED, T0)
    machine.advance(alarm.id, ANNA, AlarmState.ON_SITE, T0)
    assert alarm.version == 3


def test_a_technical_alarm_at_night_reaches_nobody_of_the_unit_unless_a_safety_device_went_silent(
    machine: DeskMachine,
) -> None:
    night = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # 02:00 in Stockholm
    low = decision(SITE, rule_id="battery_low", category=AlarmCategory.TECHNICAL, severity=Severity.LOW)
    changes = machine.apply(low, night)
    assert changes[1].recipients == ()
    silent = decision(SITE, rule_id="device_silent", category=AlarmCategory.TECHNICAL, subject="radar1")
    changes = machine.apply(silent, night)
    assert changes[0].alarm.wakes_patrol
    assert {s.username for s in changes[1].recipients} == {"anna", "nils"}


def test_the_state_machine_imports_neither_the_database_driver_nor_argon2() -> None:
    code = (
        "import sys, hub.desk.machine, hub.desk.alarm, hub.desk.escalation, hub.people.staff;"
        "bad = sorted(m for m in ('asyncpg', 'argon2') if m in sys.modules); print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
