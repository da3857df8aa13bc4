"""The alarm desk: open alarms, their lifecycle, escalation timers and recovery after a restart.

Contract: `apply()` (rule engine decisions) and the staff actions are synchronous and work in memory only. Before
they return, the change is queued to every open staff page of the unit, published on
`vaka/v1/{site}/alarms/{alarm_id}` and handed to the notification channels; persistence (`desk_alarms`, the
append-only `desk_alarm_log`) follows in `run_loop()` and waits for the database as long as it must without ever
delaying delivery. `restore()` brings back open alarms, including where each stood in its escalation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg

from hub.alarm import NEXT_STATES, Alarm, Clock, Publish, alarm_from_row
from hub.desk_directory import DeskDirectory
from hub.desk_store import DeskStore
from hub.escalation import escalation_step, next_escalation_at, policy_for
from hub.metrics import Metrics
from hub.model import (
    AlarmCategory,
    AlarmDecision,
    AlarmState,
    DecisionAction,
    Outcome,
    Resident,
    Severity,
    Site,
    VakaError,
)
from hub.notify import Dispatcher, Notification, Notifier, build_notifiers
from hub.notify.websocket import WebSocketHub
from hub.staff import StaffMember

if TYPE_CHECKING:
    from hub.settings import Settings
    from hub.store.pool import Database

logger = logging.getLogger(__name__)


def local_hm(at: datetime, zone: ZoneInfo) -> str:
    """Clock time in the site's zone, "02:14"."""
    return at.astimezone(zone).strftime("%H:%M")


_TICK_S = 0.25
_RESTORE_RETRY_S = 2.0


NOBODY_REACHED = "nobody_reached"


class DeskError(VakaError):
    """A staff action the alarm's state or the person's units do not allow."""


class HandoverError(DeskError):
    """The alarm is a colleague's: acting on it takes it over, which the person must confirm."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"alarm is taken by {holder}: confirm to take it over")
        self.holder = holder


class Desk:
    """Holds the open alarms and follows each to the end. See the module docstring for the contract."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        metrics: Metrics,
        *,
        publish: Publish,
        clock: Clock,
        on_closed: Callable[[str, datetime], None] | None = None,
        notifiers: Iterable[Notifier] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.metrics = metrics
        self.clock = clock
        self._publish = publish
        self._on_closed = on_closed
        self.hub = WebSocketHub(metrics)
        self.hub.on_read = lambda staff, a: self.log_resident_reads(
            staff, [(a["site"], a["resident_id"])], "alarm_push"
        )
        chosen = list(notifiers) if notifiers is not None else build_notifiers(settings, db)
        self.dispatcher = Dispatcher(chosen, metrics)
        self.store = DeskStore(db)
        self._alarms: dict[str, Alarm] = {}
        self._by_key: dict[str, str] = {}
        self.directory = DeskDirectory()
        self._restore_pending = False
        self._restore_late = False
        self._counted: dict[str, tuple[str, str]] = {}
        self._open_counts: dict[tuple[str, str], int] = {}
        self._unreached_log: dict[str, tuple[float, int]] = {}  # site -> (last line, monotonic s; lines held back)

    # --- inventory and staff ----------------------------------------------------------------------------------

    def set_sites(self, sites: Iterable[Site]) -> None:
        """Replace the inventory the desk resolves units, rooms and safety devices from."""
        self.directory.set_sites(sites)

    def set_staff(self, staff: Iterable[StaffMember]) -> None:
        """Replace the staff directory used for recipients."""
        self.directory.set_staff(staff)

    @property
    def staff(self) -> list[StaffMember]:
        """The staff directory."""
        return self.directory.staff

    def resident(self, site: str, resident_id: str | None) -> Resident | None:
        """A resident of the inventory."""
        return self.directory.resident(site, resident_id)

    async def refresh(self, *, sites: bool = False) -> None:
        """Re-read the staff (and with `sites`, the inventory) from the database.

        After start the hub hands inventory changes over with `set_sites`; it is the one place that re-reads them.
        """
        from hub.store.inventory import fetch_sites
        from hub.store.staff import load_staff

        async with self.db.acquire() as conn:
            if sites:
                self.set_sites(await fetch_sites(conn))
            staff = await load_staff(conn)
            duty = await conn.fetch("SELECT staff_id, until FROM staff_duty")
        self.set_staff(staff)
        self.directory.set_duty({r["staff_id"]: r["until"] for r in duty})

    # --- decisions from the rule engine -----------------------------------------------------------------------

    def apply(self, decision: AlarmDecision) -> Alarm | None:
        """Apply one rule engine decision; synchronous, in memory; returns the alarm it touched."""
        alarm_id = self._by_key.get(decision.key)
        alarm = self._alarms.get(alarm_id) if alarm_id else None
        if decision.action is DecisionAction.RAISE and alarm is None:
            return self._raise(decision)
        if alarm is None:
            logger.info("alarm decision ignored action=%s key=%s: no open alarm", decision.action.value, decision.key)
            return None
        now = self.clock.now()
        if decision.action in (DecisionAction.RAISE, DecisionAction.UPDATE):
            alarm.count = max(alarm.count + 1, decision.count)
            alarm.severity = max(alarm.severity, decision.severity)
            alarm.reason = decision.reason or alarm.reason
            alarm.updated_at = now
            if decision.action is DecisionAction.RAISE or decision.repeat:
                self._ring_again(alarm, now, decision.reason)
            else:
                self._record(alarm, "rule", "updated", f"count={alarm.count} {decision.reason}", publish=False)
            return alarm
        actor = "device" if decision.action is DecisionAction.CANCEL else "rule"
        if decision.auto_close and alarm.category is AlarmCategory.TECHNICAL and alarm.state is AlarmState.RAISED:
            alarm.note = decision.reason
            self._close(alarm, AlarmState.CANCELLED, actor, now, decision.reason)
            return alarm
        # a care alarm is closed by a person: the condition ended (door closed, button cancelled), help may still be
        # needed, so the alarm stays (and keeps ringing when nobody has taken it) until someone resolves it
        alarm.condition_ended_at = now
        alarm.condition_note = decision.reason
        alarm.updated_at = now
        self._record(alarm, actor, "condition_ended", decision.reason)
        return alarm

    def _ring_again(self, alarm: Alarm, now: datetime, reason: str) -> None:
        """A new incident on an open alarm: it rings again, also when someone holds it (even "On site")."""
        alarm.incidents += 1
        alarm.condition_ended_at = None
        alarm.condition_note = None
        held = alarm.state is not AlarmState.RAISED
        if held:
            # the holder stays on record: whoever takes it now is asked to take it over
            alarm.state = AlarmState.RAISED
            alarm.ringing_since = now
            alarm.next_tier = 0
            alarm.next_escalation_at = next_escalation_at(
                policy_for(self.settings.desk, alarm.site, alarm.category), now, 0, now
            )
            self.metrics.alarm_transitions.labels(alarm.category.value, AlarmState.RAISED.value).inc()
        self.metrics.alarm_repeats.labels(alarm.category.value).inc()
        self._record(alarm, "rule", "repeated", f"incidents={alarm.incidents} {reason}")
        if held and alarm.next_escalation_at is not None and alarm.next_escalation_at <= now:
            self._fire(alarm, now)

    def _raise(self, d: AlarmDecision) -> Alarm:
        now = self.clock.now()
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
        alarm.wakes_patrol = self._wakes_patrol(alarm)
        self._alarms[alarm.id] = alarm
        self._by_key[alarm.key] = alarm.id
        policy = policy_for(self.settings.desk, alarm.site, alarm.category)
        alarm.next_escalation_at = next_escalation_at(policy, alarm.raised_at, 0, now)
        self.metrics.alarms_raised.labels(alarm.category.value, alarm.severity.name.lower()).inc()
        self._record(alarm, "rule", "raised", d.reason)
        if alarm.next_escalation_at <= now:
            self._fire(alarm, now)  # the first tier is usually due at once
        return alarm

    def _wakes_patrol(self, alarm: Alarm) -> bool:
        if alarm.category is AlarmCategory.CARE or alarm.unregistered:
            return True
        return (
            alarm.device_id is not None
            and self.directory.is_safety_device(alarm.site, alarm.device_id)
            and any(word in alarm.rule_id for word in self.settings.desk.silence_rules)
        )

    # --- staff actions ------------------------------------------------------------------------------------------

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
        alarm = self._check(alarm_id, staff, AlarmState.RESOLVED, take_over)
        now = self.clock.now()
        alarm.outcome = outcome
        alarm.note = note.strip()[:1000] or None
        if alarm.state is AlarmState.RAISED or alarm.accepted_by_id != staff.id:
            self._take(alarm, staff, now)
        self._close(alarm, AlarmState.RESOLVED, f"staff:{staff.id}", now, f"outcome={outcome.value}")
        return alarm

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
        if alarm.state not in NEXT_STATES[to]:
            msg = f"alarm is {alarm.state.value}, cannot become {to.value}"
            raise DeskError(msg)
        holder = self.holder_other_than(alarm, staff)
        if holder is not None and not take_over:
            raise HandoverError(holder)
        return alarm

    def _advance(self, alarm_id: str, staff: StaffMember, to: AlarmState, take_over: bool) -> Alarm:
        alarm = self._check(alarm_id, staff, to, take_over)
        now = self.clock.now()
        if alarm.state is AlarmState.RAISED or alarm.accepted_by_id != staff.id:
            self._take(alarm, staff, now)
        alarm.state = to
        alarm.updated_at = now
        self.metrics.alarm_transitions.labels(alarm.category.value, to.value).inc()
        self._record(alarm, f"staff:{staff.id}", to.value, "")
        return alarm

    def _take(self, alarm: Alarm, staff: StaffMember, now: datetime) -> None:
        """`staff` holds the alarm from now; a colleague's alarm is taken over (recorded)."""
        previous = self.holder_other_than(alarm, staff)
        if previous is not None:
            self.metrics.alarm_handovers.inc()
            before = f"staff:{alarm.accepted_by_id}" if alarm.accepted_by_id is not None else "staff:?"
            self._record(alarm, f"staff:{staff.id}", "taken_over", f"from={before}", publish=False)
        if alarm.state is AlarmState.RAISED:
            self.metrics.alarm_accept_latency.observe((now - alarm.ring_base).total_seconds())
        alarm.accepted_at = now
        alarm.accepted_by = staff.label
        alarm.accepted_by_id = staff.id
        alarm.next_escalation_at = None

    def _close(self, alarm: Alarm, state: AlarmState, actor: str, now: datetime, detail: str) -> None:
        alarm.state = state
        alarm.updated_at = now
        alarm.closed_at = now
        alarm.next_escalation_at = None
        self._alarms.pop(alarm.id, None)
        if self._by_key.get(alarm.key) == alarm.id:
            del self._by_key[alarm.key]
        self.metrics.alarm_transitions.labels(alarm.category.value, state.value).inc()
        self._record(alarm, actor, state.value, detail)
        if self._on_closed is not None:
            try:
                self._on_closed(alarm.key, now)
            except Exception:
                logger.exception("on_closed failed for alarm %s", alarm.id)

    # --- one change: page, MQTT, log line, channels, persistence ---------------------------------------------

    def recipients_on_page(self, alarm: Alarm) -> list[StaffMember]:
        """Everyone whose staff page shows this alarm."""
        return self.directory.who_sees(alarm.site, alarm.unit)

    def view(self, alarm: Alarm) -> dict[str, Any]:
        """The alarm as the staff page shows it, with the hub's now and clock times in the site's zone."""
        data = alarm.public()
        resident = self.resident(alarm.site, alarm.resident_id)
        zone = ZoneInfo(self.directory.zone(alarm.site))
        data.update(
            site=alarm.site,
            room=resident.room if resident else None,
            unit=alarm.unit,
            reason=alarm.reason,
            unregistered=alarm.unregistered,
            ring=alarm.wakes_patrol and alarm.state is AlarmState.RAISED,
            outcome=alarm.outcome.value if alarm.outcome else None,
            severity_level=int(alarm.severity),
            raised_hm=local_hm(alarm.raised_at, zone),
            ringing_since=alarm.ring_base.isoformat(),
            condition_ended_hm=local_hm(alarm.condition_ended_at, zone) if alarm.condition_ended_at else None,
            condition_note=alarm.condition_note,
            accepted_by_id=alarm.accepted_by_id,
            now=self.clock.now().isoformat(),
        )
        return data

    # --- who is on duty -----------------------------------------------------------------------------------------

    def sign_on(self, staff: StaffMember, hours: float | None = None) -> datetime:
        """`staff` is on duty from now for `hours` (default: the configured shift); returns when the shift ends."""
        now = self.clock.now()
        until = now + timedelta(hours=hours or self.settings.patrol.shift_hours)
        self.directory.duty[staff.id] = until
        self.store.duty(staff.id, now, until)
        logger.info("staff on duty staff=%s until=%s", staff.id, until.isoformat())
        return until

    def sign_off(self, staff: StaffMember) -> None:
        """`staff` is off duty from now."""
        if self.directory.duty.pop(staff.id, None) is not None:
            self.store.duty(staff.id, self.clock.now(), None)
            logger.info("staff off duty staff=%s", staff.id)

    def on_duty(self, staff: StaffMember) -> datetime | None:
        """When this person's shift ends, or None when they are not on duty."""
        return self.directory.duty.get(staff.id) if self.directory.on_duty(staff, self.clock.now()) else None

    def _record(self, alarm: Alarm, actor: str, action: str, detail: str, *, publish: bool = True) -> None:
        alarm.version += 1
        self.hub.publish(
            self.view(alarm),
            alarm.version,
            not alarm.is_open,
            self.recipients_on_page(alarm),
            sees=lambda s: s.sees(alarm.site, alarm.unit),
        )
        public = alarm.public()
        if publish:
            try:
                self._publish(
                    f"vaka/v1/{alarm.site}/alarms/{alarm.id}", json.dumps(public).encode(), qos=1, retain=False
                )
            except Exception:
                logger.exception("alarm publish failed id=%s", alarm.id)
            self.dispatcher.dispatch(Notification(id=f"{alarm.id}:{alarm.version}", event="state", alarm=public))
        logger.info(
            "ALARM id=%s state=%s action=%s site=%s rule=%s category=%s severity=%s actor=%s",
            alarm.id,
            alarm.state.value,
            action,
            alarm.site,
            alarm.rule_id,
            alarm.category.value,
            alarm.severity.name.lower(),
            actor,
        )
        self.store.save(alarm, actor, action, detail, self.clock.now())
        self._count_open(alarm)

    def _count_open(self, alarm: Alarm) -> None:
        """Move the alarm between the open-alarm gauges: O(1), it runs on every change."""
        before = self._counted.pop(alarm.id, None)
        after = (alarm.category.value, alarm.state.value) if alarm.is_open else None
        if after is not None:
            self._counted[alarm.id] = after
        if before == after:
            return
        for labels, delta in ((before, -1), (after, 1)):
            if labels is not None:
                self._open_counts[labels] = self._open_counts.get(labels, 0) + delta
                self.metrics.alarms_open.labels(*labels).set(self._open_counts[labels])

    # --- escalation -----------------------------------------------------------------------------------------------

    def escalate_due(self) -> int:
        """Fire every escalation tier that is due now; returns how many fired."""
        now = self.clock.now()
        fired = 0
        for alarm in list(self._alarms.values()):
            due = alarm.next_escalation_at
            if alarm.state is AlarmState.RAISED and due is not None and due <= now:
                self._fire(alarm, now)
                fired += 1
        return fired

    def _fire(self, alarm: Alarm, now: datetime) -> None:
        tier_no, audience, recipients = escalation_step(
            self.settings.desk, self.directory, alarm, now, duty_required=self.settings.patrol.duty_required
        )
        phones: tuple[str, ...] = ()
        if alarm.rule_id == NOBODY_REACHED:
            # the loudest thing in the system: everyone of the site, on duty or not, and the fallback number
            recipients = tuple(self.directory.who_sees(alarm.site, None))
            phones = self.fallback_phones(alarm.site)
        self.metrics.escalations.labels(alarm.category.value).inc()
        self.dispatcher.dispatch(
            Notification(
                id=f"{alarm.id}:tier{tier_no}",
                event="escalation",
                alarm=alarm.public(),
                recipients=recipients,
                tier=tier_no,
                audience=audience,
                ring=alarm.wakes_patrol,
                phones=phones,
            )
        )
        if recipients or phones:
            logger.info(
                "ALARM id=%s escalated tier=%s audience=%s recipients=%s", alarm.id, tier_no, audience, len(recipients)
            )
        else:
            self.metrics.escalations_unreached.labels(alarm.category.value).inc()
            self._log_unreached(alarm, tier_no, audience)
        self.store.save(alarm, "desk", "escalated", f"tier={tier_no} audience={audience} n={len(recipients)}", now)
        if not recipients and alarm.wakes_patrol and not alarm.unreached and alarm.rule_id != NOBODY_REACHED:
            alarm.unreached = True
            self._raise_nobody_reached(alarm, now, audience)

    def fallback_phones(self, site: str) -> tuple[str, ...]:
        """The number(s) the SMS/voice gateway calls when an alarm of `site` reaches nobody."""
        phones = self.settings.patrol.fallback_phones
        number = phones.get(site) or phones.get("*")
        return (number,) if number else ()

    def _log_unreached(self, alarm: Alarm, tier_no: int, audience: str) -> None:
        """One line per site per `unreached_log_interval_s` at most; the lines held back are counted in the next."""
        wall = time.monotonic()
        last, held = self._unreached_log.get(alarm.site, (float("-inf"), 0))
        if wall - last < self.settings.patrol.unreached_log_interval_s:
            self._unreached_log[alarm.site] = (last, held + 1)
            return
        self._unreached_log[alarm.site] = (wall, 0)
        logger.warning(
            "ALARM id=%s escalated tier=%s audience=%s recipients=0 site=%s (reached nobody; %s more held back)",
            alarm.id,
            tier_no,
            audience,
            alarm.site,
            held,
        )

    def _raise_nobody_reached(self, origin: Alarm, now: datetime, audience: str) -> None:
        """Escalation ran out of people: a site-level alarm to everyone of the site, the fallback and operations."""
        self.metrics.nobody_reached.inc()
        resident = self.resident(origin.site, origin.resident_id)
        where = f" room {resident.room}" if resident else ""
        logger.warning(
            "ALARM id=%s nobody reached site=%s rule=%s audience=%s fallback=%s",
            origin.id,
            origin.site,
            origin.rule_id,
            audience,
            "yes" if self.fallback_phones(origin.site) else "none configured",
        )
        self.store.save(origin, "desk", "nobody_reached", f"audience={audience}", now)
        self.apply(
            AlarmDecision(
                action=DecisionAction.RAISE,
                key=f"{NOBODY_REACHED}:{origin.site}",
                rule_id=NOBODY_REACHED,
                category=AlarmCategory.CARE,
                severity=Severity.CRITICAL,
                site=origin.site,
                at=now,
                reason=f"nobody reached for {origin.rule_id}{where}",
                repeat=True,
            )
        )

    # --- reading -----------------------------------------------------------------------------------------------

    def open_alarms_for(self, staff: StaffMember) -> list[Alarm]:
        """Open alarms of this person's units, most urgent first."""
        return sorted((a for a in self._alarms.values() if staff.sees(a.site, a.unit)), key=Alarm.urgency)

    def open_alarms(self) -> list[Alarm]:
        """Every open alarm, most urgent first."""
        return sorted(self._alarms.values(), key=Alarm.urgency)

    def get(self, alarm_id: str) -> Alarm | None:
        """An open alarm by id."""
        return self._alarms.get(alarm_id)

    def get_open_by_key(self, key: str) -> Alarm | None:
        """The open alarm under a rule key (`{rule_id}:{subject}`)."""
        alarm_id = self._by_key.get(key)
        return self._alarms.get(alarm_id) if alarm_id else None

    def residents_for(self, staff: StaffMember) -> list[tuple[Site, Resident]]:
        """Residents of this person's units, by site and room."""
        return self.directory.residents_for(staff)

    def device_faults(self, site: str) -> set[str]:
        """Devices of a site with an open technical alarm."""
        return {
            a.device_id
            for a in self._alarms.values()
            if a.site == site and a.device_id and a.category is AlarmCategory.TECHNICAL
        }

    def log_resident_reads(self, staff: StaffMember, residents: Iterable[tuple[str, str]], purpose: str) -> None:
        """Record that a person saw these residents' data (`(site, resident_id)`); persisted in the background."""
        now = self.clock.now()
        n = 0
        for site, resident_id in set(residents):
            self.store.access(now, staff.id, staff.role.value, site, resident_id, purpose)
            n += 1
        if n:
            self.metrics.resident_reads.labels(staff.role.value).inc(n)

    # --- lifecycle -----------------------------------------------------------------------------------------------

    async def restore(self, sites: list[Site] | None = None) -> None:
        """Load inventory (unless given), staff and open alarms (with escalation state) from the database.

        When the database is away, the desk starts empty (new alarms flow from memory) and `run_loop` brings the
        earlier open alarms back as soon as it answers.
        """
        if sites is not None:
            self.set_sites(sites)
        try:
            await self.refresh(sites=sites is None)
        except (TimeoutError, OSError, VakaError, asyncpg.PostgresError, ImportError) as exc:
            logger.warning("desk could not load inventory/staff: %s", exc)
        try:
            rows = await self.store.load_open()
        except (TimeoutError, OSError, VakaError, asyncpg.PostgresError) as exc:
            logger.warning("desk could not restore open alarms yet, retrying in the background: %s", exc)
            self._restore_pending = True
            return
        self._restore_pending = False
        restored = 0
        for row in rows:
            if row["id"] in self._alarms:
                continue
            alarm = alarm_from_row(row)
            alarm.wakes_patrol = self._wakes_patrol(alarm)
            self._alarms[alarm.id] = alarm
            self._by_key.setdefault(alarm.key, alarm.id)
            restored += 1
            self._count_open(alarm)
            if self._restore_late:
                self.hub.publish(
                    self.view(alarm),
                    alarm.version,
                    False,
                    self.recipients_on_page(alarm),
                    sees=lambda s, a=alarm: s.sees(a.site, a.unit),  # type: ignore[misc]
                )
        logger.info(
            "desk restored open_alarms=%s staff=%s sites=%s", restored, len(self.staff), self.directory.site_count
        )

    async def run_loop(self) -> None:
        """Escalation timers, persistence and inventory refresh, until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.store.write_loop(), name="vaka.desk.persist")
                tg.create_task(self._timer_loop(), name="vaka.desk.timers")
                tg.create_task(self._refresh_loop(), name="vaka.desk.refresh")
        finally:
            await self.dispatcher.aclose()
            await self.hub.aclose()

    async def _timer_loop(self) -> None:
        while True:
            try:
                self.escalate_due()
                self.hub.prune()
            except Exception:
                logger.exception("desk escalation tick failed")
            await asyncio.sleep(_TICK_S)

    async def _refresh_loop(self) -> None:
        while self._restore_pending:
            await asyncio.sleep(_RESTORE_RETRY_S)
            self._restore_late = True
            await self.restore()
        while True:
            await asyncio.sleep(self.settings.desk.inventory_refresh_s)
            try:
                await self.refresh()
            except (TimeoutError, OSError, VakaError, asyncpg.PostgresError) as exc:
                logger.warning("desk refresh failed: %s", exc)

    def age(self, alarm: Alarm) -> timedelta:
        """How long ago the alarm was raised."""
        return self.clock.now() - alarm.raised_at
