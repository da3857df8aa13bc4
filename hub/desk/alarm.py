"""The alarm record the desk keeps: its lifecycle state, who has it, where it stands in its escalation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.model import OPEN_STATES, AlarmCategory, AlarmState, Outcome, Severity

# someone has the alarm
HELD_STATES = frozenset({AlarmState.ACCEPTED, AlarmState.EN_ROUTE, AlarmState.ON_SITE})

# the states a staff action may start from
NEXT_STATES: dict[AlarmState, frozenset[AlarmState]] = {
    AlarmState.ACCEPTED: frozenset({AlarmState.RAISED}),
    AlarmState.EN_ROUTE: frozenset({AlarmState.RAISED, AlarmState.ACCEPTED}),
    AlarmState.ON_SITE: frozenset({AlarmState.RAISED, AlarmState.ACCEPTED, AlarmState.EN_ROUTE}),
    AlarmState.RESOLVED: OPEN_STATES,
}


@dataclass(slots=True)
class Alarm:
    """One alarm on the desk."""

    id: str
    key: str
    rule_id: str
    category: AlarmCategory
    severity: Severity
    site: str
    unit: str | None
    resident_id: str | None
    device_id: str | None
    reason: str
    unregistered: bool
    raised_at: datetime
    updated_at: datetime
    state: AlarmState = AlarmState.RAISED
    count: int = 1
    outcome: Outcome | None = None
    note: str | None = None
    accepted_at: datetime | None = None
    accepted_by: str | None = None
    accepted_by_id: int | None = None
    closed_at: datetime | None = None
    next_tier: int = 0
    next_escalation_at: datetime | None = None
    wakes_patrol: bool = True
    version: int = field(default=0)
    # a clear or device-side cancel: the condition ended, but a person still closes a care alarm
    condition_ended_at: datetime | None = None
    condition_note: str | None = None
    # when it last began ringing (raised, or a repeat): escalation tiers count from here
    ringing_since: datetime | None = None
    # new incidents since it was raised (the first counts): "3rd time since 02:14"
    incidents: int = 1
    # a tier found nobody to reach: the site's "nobody reached" alarm was raised for it
    unreached: bool = False
    # the latest incident (press, fall ...) when there were several; not stored: after a restart, `ring_base`
    last_incident_at: datetime | None = None
    # a repeat while held rang past the holder (she did not answer it in time): colleagues' pages ring too
    repeat_escalated: bool = False

    @property
    def ring_base(self) -> datetime:
        """Escalation tiers count from here: the latest time the alarm began ringing."""
        return self.ringing_since or self.raised_at

    @property
    def repeat_pending(self) -> bool:
        """A new incident while someone holds the alarm, not yet answered by the holder: it rings for her."""
        return self.state in HELD_STATES and self.next_escalation_at is not None

    @property
    def rings(self) -> bool:
        """Whether the staff pages ring for it: nobody has taken it, or its holder has not answered a repeat."""
        return self.wakes_patrol and (self.state is AlarmState.RAISED or self.repeat_pending)

    @property
    def is_open(self) -> bool:
        """Not yet resolved or cancelled."""
        return self.state in OPEN_STATES

    def public(self) -> dict[str, Any]:
        """The JSON published for integrations on `vaka/v1/{site}/alarms/{id}`."""
        return {
            "id": self.id,
            "rule_id": self.rule_id,
            "category": self.category.value,
            "severity": self.severity.name.lower(),
            "state": self.state.value,
            "resident_id": self.resident_id,
            "device_id": self.device_id,
            "raised_at": self.raised_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "accepted_by": self.accepted_by,
            "count": self.count,
            "incidents": self.incidents,
            "condition_ended_at": self.condition_ended_at.isoformat() if self.condition_ended_at else None,
        }

    def urgency(self) -> tuple[int, int, datetime]:
        """Sort key: not yet accepted (or a repeat its holder has not answered) first, then most severe, then oldest."""
        return (0 if self.state is AlarmState.RAISED or self.repeat_pending else 1, -int(self.severity), self.raised_at)
