"""The night log: every alarm of the last hours with who did what when, read from the desk's append-only alarm log.

What the patrol reads at the end of a night (and the nurse the morning after): closed alarms too — the ones resolved,
the ones a technical rule closed itself, the "nobody reached" alarms. Times are the hub's (a simulation's in a demo)
shown in the site's zone; people are shown by the name their colleagues see, never by a resident's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from hub.people.staff import StaffMember

_ALARMS = """
SELECT id, rule_id, category, severity, site, unit, resident_id, device_id, state, outcome, note, reason, raised_at,
       closed_at, incidents
FROM desk_alarms
WHERE site = ANY($1::text[]) AND (raised_at >= $2 OR closed_at >= $2 OR closed_at IS NULL) AND raised_at <= $3
ORDER BY raised_at DESC
LIMIT $4
"""
_LOG = """
SELECT l.alarm_id, l.at, l.actor, l.action, l.state, l.detail, s.display_name, s.username
FROM desk_alarm_log l
LEFT JOIN staff s ON l.actor LIKE 'staff:%' AND s.id::text = substr(l.actor, 7)
WHERE l.alarm_id = ANY($1::text[])
ORDER BY l.at, l.seq
"""
# the steps a person reads; escalation lines are summed up instead ("escalated 3 times")
_QUIET = frozenset({"updated", "escalated", "repeat_unanswered"})
# alarms a person raises herself (a press of her alarm button), and the hub's own alarms, by rule
RESIDENT_RULES = frozenset({"alarm_button"})
SYSTEM_RULES = frozenset({"nobody_reached", "alarm_lane_failure", "hub_task_failure", "fallback"})
# who did it, as the page names them: the resident, a device (a sensor or a device's own cancel), the system (Vaka)
ACTORS = ("resident", "device", "system")


@dataclass(slots=True)
class LogStep:
    """One thing that happened to an alarm: at (local "02:14"), who ("Anna", or one of `ACTORS`), what (action)."""

    at: datetime
    hm: str
    who: str
    action: str
    detail: str


@dataclass(slots=True)
class LoggedAlarm:
    """An alarm of the night with its steps."""

    id: str
    rule_id: str
    category: str
    severity: int
    site: str
    unit: str | None
    resident_id: str | None
    device_id: str | None
    state: str
    outcome: str | None
    note: str | None
    reason: str
    raised_at: datetime
    raised_hm: str
    closed_hm: str | None
    incidents: int
    escalations: int = 0  # tiers past the first ring (the first ring and a holder's own ring are not "onward")
    steps: list[LogStep] = field(default_factory=list)


def _who(actor: str, rule_id: str, display_name: str | None, username: str | None) -> str:
    """A person's name, or who else it was: the resident (her own press), a device, or the system itself."""
    if actor.startswith("staff:"):
        return display_name or username or actor
    if actor == "desk" or rule_id in SYSTEM_RULES:
        return "system"
    if actor == "rule" and rule_id in RESIDENT_RULES:
        return "resident"
    return "device"


def _escalated_onward(detail: str) -> bool:
    """An escalation line past the first tier, not a holder's own ring ("tier=2 audience=nurse n=1")."""
    fields = dict(part.split("=", 1) for part in detail.split() if "=" in part)
    return fields.get("audience") != "holder" and fields.get("tier", "0") not in ("0", "")


async def night_log(
    conn: asyncpg.Connection,
    staff: StaffMember,
    now: datetime,
    zones: dict[str, str],
    *,
    names: dict[int, str] | None = None,
    hours: float = 24.0,
    limit: int = 500,
) -> list[LoggedAlarm]:
    """Alarms of `staff`'s units raised, closed or still open in the `hours` before `now`, newest first."""
    since = now - timedelta(hours=hours)
    rows = await conn.fetch(_ALARMS, sorted(staff.sites), since, now, limit)
    alarms: dict[str, LoggedAlarm] = {}
    for r in rows:
        if not staff.sees(r["site"], r["unit"]):
            continue
        zone = ZoneInfo(zones.get(r["site"], "Europe/Stockholm"))
        alarms[r["id"]] = LoggedAlarm(
            id=r["id"],
            rule_id=r["rule_id"],
            category=r["category"],
            severity=r["severity"],
            site=r["site"],
            unit=r["unit"],
            resident_id=r["resident_id"],
            device_id=r["device_id"],
            state=r["state"],
            outcome=r["outcome"],
            note=r["note"],
            reason=r["reason"],
            raised_at=r["raised_at"],
            raised_hm=r["raised_at"].astimezone(zone).strftime("%H:%M"),
            closed_hm=r["closed_at"].astimezone(zone).strftime("%H:%M") if r["closed_at"] else None,
            incidents=r["incidents"],
        )
    if not alarms:
        return []
    for r in await conn.fetch(_LOG, list(alarms)):
        alarm = alarms[r["alarm_id"]]
        if r["action"] == "escalated" and _escalated_onward(r["detail"] or ""):
            alarm.escalations += 1
        if r["action"] in _QUIET:
            continue
        zone = ZoneInfo(zones.get(alarm.site, "Europe/Stockholm"))
        detail = r["detail"]
        if r["action"] == "taken_over" and detail.startswith("from=staff:") and names:
            # the colleague's name, as the card showed it
            previous = detail.removeprefix("from=staff:")
            detail = names.get(int(previous), previous) if previous.isdigit() else previous
        alarm.steps.append(
            LogStep(
                at=r["at"],
                hm=r["at"].astimezone(zone).strftime("%H:%M"),
                who=_who(r["actor"], alarm.rule_id, r["display_name"], r["username"]),
                action=r["action"],
                detail=detail,
            )
        )
    return list(alarms.values())
