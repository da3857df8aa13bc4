"""What night staff do with an alarm: take it, go, arrive, close it. The machine decides; the lane delivers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hub.desk.alarm import Alarm
from hub.desk.machine import Change, DeskMachine
from hub.model import AlarmState, Outcome
from hub.people.staff import StaffMember
from hub.runtime.clock import Clock


class StaffActions:
    """A person's actions on the desk's alarms; every change goes out through the lane's outputs (`deliver`)."""

    def __init__(self, machine: DeskMachine, deliver: Callable[[Sequence[Change]], None], clock: Clock) -> None:
        self._machine = machine
        self._deliver = deliver
        self._clock = clock

    def accept(self, alarm_id: str, staff: StaffMember, *, take_over: bool = False) -> Alarm:
        """Take the alarm: escalation stops, colleagues see who has it."""
        return self._advance(alarm_id, staff, AlarmState.ACCEPTED, take_over)

    def en_route(self, alarm_id: str, staff: StaffMember, *, take_over: bool = False) -> Alarm:
        """On my way (accepts it if nobody has)."""
        return self._advance(alarm_id, staff, AlarmState.EN_ROUTE, take_over)

    def on_site(self, alarm_id: str, staff: StaffMember, *, take_over: bool = False) -> Alarm:
        """With the resident."""
        return self._advance(alarm_id, staff, AlarmState.ON_SITE, take_over)

    def resolve(
        self, alarm_id: str, staff: StaffMember, outcome: Outcome, note: str = "", *, take_over: bool = False
    ) -> Alarm:
        """Close the alarm with an outcome and an optional note."""
        alarm, changes = self._machine.resolve(alarm_id, staff, outcome, note, self._clock.now(), take_over=take_over)
        self._deliver(changes)
        return alarm

    def _advance(self, alarm_id: str, staff: StaffMember, to: AlarmState, take_over: bool) -> Alarm:
        alarm, changes = self._machine.advance(alarm_id, staff, to, self._clock.now(), take_over=take_over)
        self._deliver(changes)
        return alarm
