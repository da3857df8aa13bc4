"""The desk's state machine: open alarms and their lifecycle, pure.

Decisions of the rule engine, staff actions and the clock go in; `Change`s come out (raise, update, note, step,
escalate, close), which the lane hands to the fan-out (pages, MQTT, channels, persistence). Nothing here does I/O,
reads a clock or touches a metric, so every rule of the lifecycle can be tested with a list of decisions and a time.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from alarms.instant import ABORT_REASON
from hub.desk.alarm import NEXT_STATES, Alarm
from hub.desk.directory import DeskDirectory
from hub.desk.escalation import escalation_detail, escalation_step, next_escalation_at, policy_for
from hub.model import AlarmCategory, AlarmDecision, AlarmState, DecisionAction, Outcome, Severity, VakaError
from hub.people.staff import StaffMember
from hub.settings import DeskSettings, PatrolSettings

logger = logging.getLogger(__name__)

NOBODY_REACHED = "nobody_reached"


class DeskError(VakaError):
    """A staff action the alarm's state or the person's units do not allow."""


class HandoverError(DeskError):
    """The alarm is a colleague's: acting on it takes it over, which the person must confirm."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"alarm is taken by {holder}: confirm to take it over")
        self.holder = holder


class ChangeKind(enum.StrEnum):
    """What happened to an alarm."""

    RAISE = "raise"  # a new alarm
    UPDATE = "update"  # the condition still holds, or a technical fault continues (count, updated_at): pages only
    REPEAT = "repeat"  # a new incident on an open alarm (a care repeat, a technical fault after a clear): it rings
    CONDITION_ENDED = "condition_ended"  # a clear or device cancel: shown, the alarm stays until a person closes it
    STEP = "step"  # staff moved it on (accepted, en route, on site)
    TAKEN_OVER = "taken_over"  # a colleague took it over: pages only
    ESCALATE = "escalate"  # a tier fell due: channels to the tier's recipients
    NOBODY_REACHED = "nobody_reached"  # escalation ran out of people: logged, counted, persisted (no page change)
    CLOSE = "close"  # resolved, reset by a person at the unit, a technical self-close: everywhere; engine forgets


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One change of one alarm, with what the alarm log records of it."""

    kind: ChangeKind
    alarm: Alarm
    actor: str  # "rule", "device", "desk" or "staff:{id}"
    action: str  # the alarm log's word: raised, updated, accepted, escalated, resolved, ...
    detail: str
    at: datetime
    notify: bool = True  # published on MQTT and handed to the channels, not only shown on the pages
    transition: AlarmState | None = None  # counted in vaka_alarm_transitions_total
    accept_latency_s: float | None = None  # someone took a ringing alarm this long after it began ringing
    tier: int | None = None  # ESCALATE: the tier that fired
    audience: str | None = None
    recipients: tuple[StaffMember, ...] = ()
    phones: tuple[str, ...] = ()  # ESCALATE: fallback numbers beyond the recipients' own


class DeskMachine:
    """Holds the open alarms; every method takes the time and returns the changes it made."""

    def __init__(self, settings: DeskSettings, directory: DeskDirectory, patrol: PatrolSettings | None = None) -> None:
        self.settings = settings
        self.patrol = patrol or PatrolSettings()
        self.directory = directory
        self._alarms: dict[str, Alarm] = {}
        self._by_key: dict[str, str] = {}

    # --- decisions of the rule engine --------------------------------------------------------------------------

    def apply(self, decision: AlarmDecision, now: datetime) -> list[Change]:
        """Apply one rule engine decision."""
        alarm_id = self._by_key.get(decision.key)
        alarm = self._alarms.get(alarm_id) if alarm_id else None
        if decision.action is DecisionAction.RAISE and alarm is None:
            return self._raise(decision, now)
        if alarm is None:
            logger.info("alarm decision ignored action=%s key=%s: no open alarm", decision.action.value, decision.key)
            return []
        if decision.action in (DecisionAction.RAISE, DecisionAction.UPDATE):
            alarm.count = max(alarm.count + 1, decision.count)
            alarm.severity = max(alarm.severity, decision.severity)
            if alarm.rule_id != NOBODY_REACHED:  # "nobody reached" keeps naming the first alarm, the longest waiting
                alarm.reason = decision.reason or alarm.reason
            alarm.updated_at = now
            if (decision.action is DecisionAction.RAISE or decision.repeat) and self._new_incident(alarm):
                return self._ring_again(alarm, now, decision.reason)
            detail = f"count={alarm.count} {decision.reason}"
            return [self._change(ChangeKind.UPDATE, alarm, "rule", "updated", detail, now, notify=False)]
        actor = "device" if decision.action is DecisionAction.CANCEL else "rule"
        if decision.action is DecisionAction.CANCEL and decision.by_person:
            # a person ended it at the device (reset at the alarm unit, a presence button): a person closed it, and
            # the card and the log say how; whoever held it sees it closed
            alarm.condition_ended_at = now
            alarm.condition_note = decision.reason
            return [self._close(alarm, AlarmState.CANCELLED, actor, now, decision.reason, action="reset")]
        if decision.auto_close and alarm.category is AlarmCategory.TECHNICAL and alarm.state is AlarmState.RAISED:
            alarm.note = decision.reason
            return [self._close(alarm, AlarmState.CANCELLED, actor, now, decision.reason)]
        # a care alarm is closed by a person: the condition ended (door closed, radar withdrew, the resident cancelled
        # at the button), help may still be needed, so the alarm stays (and keeps ringing when nobody has taken it)
        # until someone resolves it
        alarm.condition_ended_at = now
        alarm.condition_note = decision.reason
        alarm.updated_at = now
        # the unit gave up on Vaka (SCAIP RE): nothing ended, and the log says so in its own word
        action = "sender_gave_up" if decision.reason == ABORT_REASON else "condition_ended"
        return [self._change(ChangeKind.CONDITION_ENDED, alarm, actor, action, decision.reason, now)]

    @staticmethod
    def _new_incident(alarm: Alarm) -> bool:
        """Whether a repeat on this open alarm is a new incident that rings: every care repeat (another press,
        another fall); for a technical alarm only a fault after the device said it was fine again, since a fault
        that simply continues (Frigate's stats every minute with the camera at 0 fps) is the same incident."""
        return alarm.category is AlarmCategory.CARE or alarm.condition_ended_at is not None

    def _ring_again(self, alarm: Alarm, now: datetime, reason: str) -> list[Change]:
        """A new incident on an open alarm: it rings again, also when someone holds it (even "On site").

        A care alarm someone holds stays hers: it rings for her first (her page and her phone), keeps its state (so
        the way in stays on her page) and reaches the next tiers only when she does not answer it in time.
        """
        alarm.incidents += 1
        alarm.condition_ended_at = None
        alarm.condition_note = None
        alarm.last_incident_at = now
        held = alarm.state is not AlarmState.RAISED
        holder = self._holder(alarm, now) if held else None
        if holder is not None:
            return self._ring_holder(alarm, holder, now, reason)
        if held:
            # the holder is gone (or it is not a care alarm): whoever takes it now is asked to take it over
            alarm.state = AlarmState.RAISED
            alarm.ringing_since = now
            alarm.next_tier = 0
            alarm.next_escalation_at = next_escalation_at(
                policy_for(self.settings, alarm.site, alarm.category), now, 0, now
            )
        detail = f"incidents={alarm.incidents} {reason}"
        changes = [
            self._change(
                ChangeKind.REPEAT,
                alarm,
                "rule",
                "repeated",
                detail,
                now,
                transition=AlarmState.RAISED if held else None,
            )
        ]
        if held and alarm.next_escalation_at is not None and alarm.next_escalation_at <= now:
            changes.extend(self.escalate(alarm, now))
        return changes

    def _holder(self, alarm: Alarm, now: datetime) -> StaffMember | None:
        """The person who holds a care alarm, while she still sees it (and, where duty counts, is on duty)."""
        if alarm.category is not AlarmCategory.CARE or not alarm.wakes_patrol or alarm.accepted_by_id is None:
            return None
        for member in self.directory.staff:
            if member.id == alarm.accepted_by_id and member.sees(alarm.site, alarm.unit):
                if self.patrol.duty_required and not self.directory.on_duty(member, now):
                    return None
                return member
        return None

    def _ring_holder(self, alarm: Alarm, holder: StaffMember, now: datetime, reason: str) -> list[Change]:
        """A repeat of a held care alarm: her page and phone ring; tiers due at once are hers, the later ones follow
        when she does not answer (`advance` to her own state, or her next step)."""
        policy = policy_for(self.settings, alarm.site, alarm.category)
        alarm.ringing_since = now
        alarm.next_tier = next((i for i, t in enumerate(policy.tiers) if t.after_s > 0), len(policy.tiers))
        alarm.next_escalation_at = next_escalation_at(policy, now, alarm.next_tier, now)
        alarm.repeat_escalated = False
        detail = f"incidents={alarm.incidents} held_by=staff:{holder.id} {reason}"
        repeat = self._change(ChangeKind.REPEAT, alarm, "rule", "repeated", detail, now)
        ring = Change(
            kind=ChangeKind.ESCALATE,
            alarm=alarm,
            actor="desk",
            action="escalated",
            detail="tier=0 audience=holder n=1",
            at=now,
            tier=0,
            audience="holder",
            recipients=(holder,),
        )
        return [repeat, ring]

    def _raise(self, d: AlarmDecision, now: datetime) -> list[Change]:
        unit = self.directory.unit_of(d.site, d.resident_id, d.device_id)
        unregistered = d.unregistered or (
            d.device_id is not None and not self.directory.knows_device(d.site, d.device_id)
        )
        alarm = Alarm(
            id=uuid.uuid4().hex,
            key=d.key,
            rule_id=d.rule_id,
            category=d.category,
            severity=d.severity,
            site=d.site,
            unit=None if unregistered else unit,
            resident_id=d.resident_id,
            device_id=d.device_id,
            reason=d.reason,
            unregistered=unregistered,
            raised_at=now,
            updated_at=now,
            count=d.count,
            ringing_since=now,
        )
        alarm.wakes_patrol = self.wakes_patrol(alarm)
        self._alarms[alarm.id] = alarm
        self._by_key[alarm.key] = alarm.id
        policy = policy_for(self.settings, alarm.site, alarm.category)
        alarm.next_escalation_at = next_escalation_at(policy, alarm.raised_at, 0, now)
        changes = [self._change(ChangeKind.RAISE, alarm, "rule", "raised", d.reason, now)]
        if alarm.next_escalation_at <= now:
            changes.extend(self.escalate(alarm, now))  # the first tier is usually due at once
        return changes

    def wakes_patrol(self, alarm: Alarm) -> bool:
        """Whether the alarm rings on the staff pages: care alarms, unknown devices, a safety device gone silent."""
        if alarm.category is AlarmCategory.CARE or alarm.unregistered:
            return True
        return (
            alarm.device_id is not None
            and self.directory.is_safety_device(alarm.site, alarm.device_id)
            and any(word in alarm.rule_id for word in self.settings.silence_rules)
        )

    # --- staff actions ----------------------------------------------------------------------------------------

    def advance(
        self, alarm_id: str, staff: StaffMember, to: AlarmState, now: datetime, *, take_over: bool = False
    ) -> tuple[Alarm, list[Change]]:
        """Accept, en route or on site (taking the alarm if nobody has; a colleague's only with `take_over`)."""
        alarm = self._check(alarm_id, staff, to, take_over)
        changes: list[Change] = []
        latency: float | None = None
        answered = alarm.state is to  # the holder's "got it" for a repeat (`_check` allowed it)
        if alarm.state is AlarmState.RAISED or alarm.accepted_by_id != staff.id:
            latency = self._take(alarm, staff, now, changes)
            answered = False
        alarm.next_escalation_at = None
        alarm.next_tier = 0
        alarm.repeat_escalated = False
        alarm.state = to
        alarm.updated_at = now
        changes.append(
            self._change(
                ChangeKind.STEP,
                alarm,
                f"staff:{staff.id}",
                "repeat_answered" if answered else to.value,
                "",
                now,
                transition=None if answered else to,
                accept_latency_s=latency,
            )
        )
        return alarm, changes

    def resolve(
        self, alarm_id: str, staff: StaffMember, outcome: Outcome, note: str, now: datetime, *, take_over: bool = False
    ) -> tuple[Alarm, list[Change]]:
        """Close the alarm with an outcome and an optional note."""
        alarm = self._check(alarm_id, staff, AlarmState.RESOLVED, take_over)
        alarm.outcome = outcome
        alarm.note = note.strip()[:1000] or None
        changes: list[Change] = []
        latency: float | None = None
        if alarm.state is AlarmState.RAISED or alarm.accepted_by_id != staff.id:
            latency = self._take(alarm, staff, now, changes)
        detail = f"outcome={outcome.value}"
        changes.append(
            self._close(alarm, AlarmState.RESOLVED, f"staff:{staff.id}", now, detail, accept_latency_s=latency)
        )
        return alarm, changes

    def holder_other_than(self, alarm: Alarm, staff: StaffMember) -> str | None:
        """The colleague who holds the alarm now, when that is not `staff`."""
        if alarm.accepted_by is None:
            return None
        if alarm.accepted_by_id is not None:
            return alarm.accepted_by if alarm.accepted_by_id != staff.id else None
        return alarm.accepted_by if alarm.accepted_by != staff.label else None

    def _check(self, alarm_id: str, staff: StaffMember, to: AlarmState, take_over: bool = False) -> Alarm:
        alarm = self._alarms.get(alarm_id)
        if alarm is None or not staff.sees(alarm.site, alarm.unit):
            msg = "no such open alarm in your units"
            raise DeskError(msg)
        answering = alarm.state is to and alarm.repeat_pending  # the holder's "got it" for a repeat
        if alarm.state not in NEXT_STATES[to] and not answering:
            msg = f"alarm is {alarm.state.value}, cannot become {to.value}"
            raise DeskError(msg)
        holder = self.holder_other_than(alarm, staff)
        if holder is not None and not take_over:
            raise HandoverError(holder)
        return alarm

    def _take(self, alarm: Alarm, staff: StaffMember, now: datetime, changes: list[Change]) -> float | None:
        """`staff` holds the alarm from now; a colleague's alarm is taken over (recorded). Returns the accept
        latency when the alarm was ringing."""
        previous = self.holder_other_than(alarm, staff)
        if previous is not None:
            before = f"staff:{alarm.accepted_by_id}" if alarm.accepted_by_id is not None else "staff:?"
            changes.append(
                self._change(
                    ChangeKind.TAKEN_OVER, alarm, f"staff:{staff.id}", "taken_over", f"from={before}", now, notify=False
                )
            )
        latency = (now - alarm.ring_base).total_seconds() if alarm.state is AlarmState.RAISED else None
        alarm.accepted_at = now
        alarm.accepted_by = staff.label
        alarm.accepted_by_id = staff.id
        alarm.next_escalation_at = None
        return latency

    def _close(
        self,
        alarm: Alarm,
        state: AlarmState,
        actor: str,
        now: datetime,
        detail: str,
        *,
        accept_latency_s: float | None = None,
        action: str | None = None,
    ) -> Change:
        alarm.state = state
        alarm.updated_at = now
        alarm.closed_at = now
        alarm.next_escalation_at = None
        self._alarms.pop(alarm.id, None)
        if self._by_key.get(alarm.key) == alarm.id:
            del self._by_key[alarm.key]
        return self._change(
            ChangeKind.CLOSE,
            alarm,
            actor,
            action or state.value,
            detail,
            now,
            transition=state,
            accept_latency_s=accept_latency_s,
        )

    @staticmethod
    def _change(
        kind: ChangeKind,
        alarm: Alarm,
        actor: str,
        action: str,
        detail: str,
        now: datetime,
        *,
        notify: bool = True,
        transition: AlarmState | None = None,
        accept_latency_s: float | None = None,
    ) -> Change:
        alarm.version += 1  # every change a page sees has a version of its own (receipts name it)
        return Change(
            kind=kind,
            alarm=alarm,
            actor=actor,
            action=action,
            detail=detail,
            at=now,
            notify=notify,
            transition=transition,
            accept_latency_s=accept_latency_s,
        )

    # --- escalation -------------------------------------------------------------------------------------------

    def due(self, now: datetime) -> list[Alarm]:
        """Alarms nobody has taken (or whose holder has not answered a repeat) with an escalation tier due at `now`."""
        return [
            a
            for a in self._alarms.values()
            if (a.state is AlarmState.RAISED or a.repeat_pending)
            and a.next_escalation_at is not None
            and a.next_escalation_at <= now
        ]

    def escalate(self, alarm: Alarm, now: datetime) -> list[Change]:
        """Fire the alarm's next tier; when it reaches nobody, also the site's "nobody reached" alarm."""
        tier_no, audience, recipients = escalation_step(
            self.settings, self.directory, alarm, now, duty_required=self.patrol.duty_required
        )
        phones: tuple[str, ...] = ()
        if alarm.rule_id == NOBODY_REACHED:
            # the loudest thing in the system: everyone of the site, on duty or not, and the fallback number
            recipients = tuple(self.directory.who_sees(alarm.site, None))
            phones = self.fallback_phones(alarm.site)
        changes = [
            Change(
                kind=ChangeKind.ESCALATE,
                alarm=alarm,
                actor="desk",
                action="escalated",
                detail=escalation_detail(self.settings, alarm, tier_no, audience, len(recipients)),
                at=now,
                tier=tier_no,
                audience=audience,
                recipients=recipients,
                phones=phones,
            )
        ]
        if alarm.repeat_pending and not alarm.repeat_escalated:
            # the holder did not answer the repeat: colleagues' pages ring too (she still holds it)
            alarm.repeat_escalated = True
            alarm.updated_at = now
            changes.append(self._change(ChangeKind.UPDATE, alarm, "desk", "repeat_unanswered", "", now, notify=False))
        if not recipients and alarm.wakes_patrol and not alarm.unreached and alarm.rule_id != NOBODY_REACHED:
            alarm.unreached = True
            changes.extend(self._nobody_reached(alarm, now, audience))
        return changes

    def fallback_phones(self, site: str) -> tuple[str, ...]:
        """The number(s) the SMS/voice gateway calls when an alarm of `site` reaches nobody."""
        number = self.patrol.fallback_phones.get(site) or self.patrol.fallback_phones.get("*")
        return (number,) if number else ()

    def _nobody_reached(self, origin: Alarm, now: datetime, audience: str) -> list[Change]:
        """Escalation ran out of people: a site-level alarm to everyone of the site, the fallback and operations."""
        resident = self.directory.resident(origin.site, origin.resident_id)
        where = f" room {resident.room}" if resident else ""
        noted = Change(
            kind=ChangeKind.NOBODY_REACHED,
            alarm=origin,
            actor="desk",
            action="nobody_reached",
            detail=f"audience={audience}",
            at=now,
            audience=audience,
            phones=self.fallback_phones(origin.site),
        )
        decision = AlarmDecision(
            action=DecisionAction.RAISE,
            key=f"{NOBODY_REACHED}:{origin.site}",
            rule_id=NOBODY_REACHED,
            category=AlarmCategory.CARE,
            severity=Severity.CRITICAL,
            site=origin.site,
            at=now,
            reason=f"nobody reached: {origin.rule_id}{where}",  # hub/web/reasons.py translates this form
            repeat=True,
        )
        return [noted, *self.apply(decision, now)]

    # --- restore and reading ----------------------------------------------------------------------------------

    def restore(self, alarm: Alarm) -> bool:
        """Take back an open alarm as stored before a restart; False when it is already here."""
        if alarm.id in self._alarms:
            return False
        alarm.wakes_patrol = self.wakes_patrol(alarm)
        alarm.last_incident_at = alarm.last_incident_at or (alarm.ring_base if alarm.incidents > 1 else None)
        alarm.repeat_escalated = alarm.repeat_pending and alarm.next_tier > 1  # past the holder's own tier
        self._alarms[alarm.id] = alarm
        self._by_key.setdefault(alarm.key, alarm.id)
        return True

    def forget_site(self, site: str) -> list[Alarm]:
        """Let go of a site's open alarms without a change (another hub owns the site now, hub/ownership/)."""
        gone = [a for a in self._alarms.values() if a.site == site]
        for alarm in gone:
            del self._alarms[alarm.id]
            if self._by_key.get(alarm.key) == alarm.id:
                del self._by_key[alarm.key]
        return gone

    def get_open_by_key(self, key: str) -> Alarm | None:
        """The open alarm under a rule key (`{rule_id}:{subject}`)."""
        alarm_id = self._by_key.get(key)
        return self._alarms.get(alarm_id) if alarm_id else None

    def has_open(self, key: str) -> bool:
        """Whether an alarm of this decision key is open."""
        return key in self._by_key

    def get(self, alarm_id: str) -> Alarm | None:
        """An open alarm by id."""
        return self._alarms.get(alarm_id)

    def open_alarms(self) -> list[Alarm]:
        """Every open alarm, most urgent first."""
        return sorted(self._alarms.values(), key=Alarm.urgency)

    def open_alarms_for(self, staff: StaffMember) -> list[Alarm]:
        """Open alarms of this person's units, most urgent first."""
        return sorted((a for a in self._alarms.values() if staff.sees(a.site, a.unit)), key=Alarm.urgency)

    def open_for_site(self, site: str) -> Iterable[Alarm]:
        """Open alarms of a site."""
        return (a for a in self._alarms.values() if a.site == site)

    def device_faults(self, site: str) -> set[str]:
        """Devices of a site with an open technical alarm."""
        return {a.device_id for a in self.open_for_site(site) if a.device_id and a.category is AlarmCategory.TECHNICAL}
