"""Escalation: which policy applies to an alarm, who a tier reaches, and whether it is night at a site.

Pure functions over settings, staff and time, so the desk's timers can be tested with a clock you hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from hub.model import AlarmCategory
from hub.people.staff import Role, StaffMember
from hub.settings import DeskSettings, EscalationPolicy, EscalationTier

if TYPE_CHECKING:
    from hub.desk.alarm import Alarm
    from hub.desk.directory import DeskDirectory

_FALLBACK = EscalationPolicy(tiers=[EscalationTier(after_s=0, audience="unit")], repeat_s=120)


def policy_for(settings: DeskSettings, site: str, category: AlarmCategory) -> EscalationPolicy:
    """The policy for a site and category: exact site before `*`, exact category before `*`."""
    best: tuple[int, EscalationPolicy] | None = None
    for policy in settings.policies:
        if policy.site not in (site, "*") or policy.category not in (category.value, "*"):
            continue
        score = (2 if policy.site == site else 0) + (1 if policy.category == category.value else 0)
        if best is None or score > best[0]:
            best = (score, policy)
    return best[1] if best else _FALLBACK


def next_escalation_at(policy: EscalationPolicy, raised_at: datetime, tier: int, fired_at: datetime) -> datetime:
    """When tier number `tier` is due; past the last tier, the last one repeats every `repeat_s` after `fired_at`."""
    if tier < len(policy.tiers):
        return raised_at + timedelta(seconds=policy.tiers[tier].after_s)
    return fired_at + timedelta(seconds=policy.repeat_s)


def tier_at(policy: EscalationPolicy, tier: int) -> EscalationTier:
    """The tier to fire for tier number `tier` (the last one once past the end)."""
    return policy.tiers[min(tier, len(policy.tiers) - 1)]


def escalation_detail(settings: DeskSettings, alarm: Alarm, tier_no: int, audience: str, recipients: int) -> str:
    """The alarm log's line for one escalation step: the tier reached (past the last tier: the last one, and how
    many times it has now been repeated), whom it reached and how many people."""
    last = len(policy_for(settings, alarm.site, alarm.category).tiers) - 1
    repeat = f" repeat={tier_no - last}" if tier_no > last else ""
    return f"tier={min(tier_no, last)} audience={audience} n={recipients}{repeat}"


def is_night(settings: DeskSettings, at: datetime, zone: str) -> bool:
    """True when `at` falls in the night hours of the site's time zone (DST-safe: wall-clock comparison)."""
    local = at.astimezone(ZoneInfo(zone)).time()
    start, end = settings.night_start, settings.night_end
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def audience_members(
    audience: str, staff: Iterable[StaffMember], site: str, unit: str | None
) -> tuple[StaffMember, ...]:
    """Who a tier reaches: `unit` everyone of the unit, `nurse` its nurses, `lead`/`technical` its admins."""
    members = [s for s in staff if s.sees(site, unit)]
    if audience == "nurse":
        members = [s for s in members if s.role is Role.NURSE]
    elif audience in ("lead", "technical"):
        members = [s for s in members if s.role is Role.ADMIN]
    return tuple(members)


def escalation_step(
    settings: DeskSettings, directory: DeskDirectory, alarm: Alarm, now: datetime, *, duty_required: bool = False
) -> tuple[int, str, tuple[StaffMember, ...]]:
    """Advance the alarm to its next tier: returns (tier number, audience, recipients) of the tier due now.

    A technical alarm's `unit` tier reaches nobody at night, unless the alarm is a safety device going silent, which
    reaches the whole unit at night whatever the tier. With `duty_required`, only people signed on to a shift count.
    """
    policy = policy_for(settings, alarm.site, alarm.category)
    tier_no = alarm.next_tier
    audience = tier_at(policy, tier_no).audience
    recipients = list(audience_members(audience, directory.staff, alarm.site, alarm.unit))
    if alarm.category is AlarmCategory.TECHNICAL and is_night(settings, now, directory.zone(alarm.site)):
        if not alarm.wakes_patrol and audience == "unit":
            recipients = []
        elif alarm.wakes_patrol:
            recipients += [s for s in directory.who_sees(alarm.site, alarm.unit) if s not in recipients]
    if duty_required:
        recipients = [s for s in recipients if directory.on_duty(s, now)]
    alarm.next_tier = tier_no + 1
    alarm.next_escalation_at = next_escalation_at(policy, alarm.ring_base, alarm.next_tier, now)
    return tier_no, audience, tuple(recipients)
