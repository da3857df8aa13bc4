"""The alarm record the desk keeps: its lifecycle state, who has it, where it stands in its escalation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from hub.model import OPEN_STATES, AlarmCategory, AlarmState, Outcome, Severity


class Clock(Protocol):
    """Where the desk reads the time."""

    def now(self) -> datetime: ...


class Publish(Protocol):
    """Non-blocking MQTT publish."""

    def __call__(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None: ...


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

    @property
    def ring_base(self) -> datetime:
        """Escalation tiers count from here: the latest time the alarm began ringing."""
        return self.ringing_since or self.raised_at

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
        """Sort key: not yet accepted first, then most severe, then oldest."""
        return (0 if self.state is AlarmState.RAISED else 1, -int(self.severity), self.raised_at)


def alarm_from_row(row: asyncpg.Record) -> Alarm:
    """An alarm as stored in `desk_alarms` (restore after a restart)."""
    return Alarm(
        id=row["id"],
        key=row["key"],
        rule_id=row["rule_id"],
        category=AlarmCategory(row["category"]),
        severity=Severity(row["severity"]),
        site=row["site"],
        unit=row["unit"],
        resident_id=row["resident_id"],
        device_id=row["device_id"],
        reason=row["reason"],
        unregistered=row["unregistered"],
        raised_at=row["raised_at"],
        updated_at=row["updated_at"],
        state=AlarmState(row["state"]),
        count=row["count"],
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        note=row["note"],
        accepted_at=row["accepted_at"],
        accepted_by=row["accepted_by"],
        accepted_by_id=row["accepted_by_id"],
        condition_ended_at=row["condition_ended_at"],
        condition_note=row["condition_note"],
        ringing_since=row["ringing_since"],
        incidents=row["incidents"],
        unreached=row["unreached"],
        next_tier=row["next_tier"],
        next_escalation_at=row["next_escalation_at"],
        version=row["version"],
    )
