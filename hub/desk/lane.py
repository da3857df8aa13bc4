"""The alarm lane: one owner for the path that decides whether a person needs help and gets it to them.

    event ─┐                                     ┌─▶ staff pages (WebSocket)
           ├─▶ rule engine ─▶ desk state machine ─▶ fan-out ─┼─▶ MQTT vaka/v1/{site}/alarms/{id}
    tick ──┘   (alarms/)      (hub.desk.machine)  (fanout)   ├─▶ channels (web push, webhook, SMS)
                    ▲                                        └─▶ persistence (desk_alarms, alarm log)
                    └──── a closed alarm: `alarm_closed` ◀── Change(CLOSE)

Contract: `feed()` (an event), `tick()` (the clock) and the staff actions are synchronous and work in memory only;
before they return, every change has been queued to the pages, published and handed to the channels, and its
persistence follows in `run_loop()` without ever delaying delivery. Events and ticks take the same guarded path:
each decision, each escalation and each delivered change is isolated — a failure is logged with the alarm (or
decision key), counted in `vaka_alarm_lane_failures_total{step}`, raised as a technical alarm for operations, and the
lane goes on with the next item. `restore()` brings back open alarms, including where each stood in its escalation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

import asyncpg

from alarms.gate import Gate, Verdict, as_seen
from hub.desk import local_state
from hub.desk.alarm import Alarm
from hub.desk.directory import DeskDirectory
from hub.desk.fanout import FanOut, Output, Publish, ResidentReads, alarm_view, standard_outputs
from hub.desk.machine import NOBODY_REACHED, Change, ChangeKind, DeskError, DeskMachine, HandoverError
from hub.desk.persistence import DeskJournal, DeskStore, alarm_from_row, snapshot_row
from hub.metrics import Metrics
from hub.model import (
    AlarmCategory,
    AlarmDecision,
    AlarmState,
    DecisionAction,
    Event,
    EventKind,
    Outcome,
    Resident,
    Severity,
    Site,
    VakaError,
    hub_alarm,
)
from hub.notify import Dispatcher, Notifier
from hub.notify.channels import build_notifiers
from hub.notify.websocket import WebSocketHub
from hub.people.staff import StaffMember
from hub.runtime.tasks import Spawner
from hub.store.inventory import fetch_sites
from hub.store.staff import load_duty, load_staff

if TYPE_CHECKING:
    from hub.settings import Settings
    from hub.store.pool import Database

__all__ = ["NOBODY_REACHED", "Desk", "DeskError", "HandoverError"]

logger = logging.getLogger(__name__)

TICK_S = 0.25
_LOCAL_SAVE_EVERY_S = 1.0  # the desk's own copy is written at most this often while it changes
SHUTDOWN_FLUSH_S = 3.0  # what is still queued for the database is written, or journaled, within this
_RESTORE_RETRY_S = 2.0
_ESCALATION_RETRY_S = 30.0
_METRIC_SAMPLE_EVERY = 8  # the rule evaluation histogram times one event in eight: it costs microseconds
FAILURE_RULE = "alarm_lane_failure"
OUTPUT_FAILURE_RULE = "alarm_output_failure"  # one output of the fan-out failed on a change (fanout.py)
ROW_REFUSED_RULE = "desk_row_refused"  # the database refused a desk row for its content (persistence.py)
DISK_FAILURE_RULE = "hub_disk_failure"  # the hub's disk refused a write of its state (hub/app.py, persistence.py)
TASK_FAILURE_RULE = (
    "hub_task_failure"  # a background task failed (hub/runtime/tasks.py): raised on every site, once while open
)

# If the rule engine itself fails on one of these, the alarm still goes out through a fallback decision.
LATE_CARE_RULE = "late_care_event"  # a care event that arrived past its rule's freshness window (issue 22.8)
LATE_CARE_REASON = "late: {rule} at {at}, arrived {arrived}"
_FALLBACK_KINDS = {
    EventKind.FALL_DETECTED: "fall detected",
    EventKind.FALL_CONFIRMED: "fall detected",
    EventKind.ALARM_BUTTON: "alarm button pressed",
    EventKind.SMOKE: "smoke detected",
    EventKind.WATER_LEAK: "water leak",
}


class Clock(Protocol):
    """Where the lane reads the time."""

    def now(self) -> datetime: ...


class RuleEngine(Protocol):
    """What the lane needs of alarms.engine.Engine."""

    def feed(self, event: Event, now: datetime, *, late_s: float = 0.0) -> Sequence[AlarmDecision]: ...
    def tick(self, now: datetime) -> Sequence[AlarmDecision]: ...
    def alarm_closed(self, key: str, at: datetime) -> None: ...
    def next_deadline(self) -> datetime | None: ...
    @property
    def pending_timers(self) -> int: ...


class Desk:
    """The alarm lane and its desk: see the module docstring for the contract."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        metrics: Metrics,
        *,
        publish: Publish,
        clock: Clock,
        spawner: Spawner,
        engine: RuleEngine | None = None,
        gate: Gate | None = None,
        notifiers: Iterable[Notifier] | None = None,
        tick_s: float = TICK_S,
        journal_dir: Path | None = None,
        local_dir: Path | None = None,
        shutdown_deadline_s: float = SHUTDOWN_FLUSH_S,
        outputs: Callable[[list[Output]], Sequence[Output]] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.metrics = metrics
        self.clock = clock
        self.engine = engine
        self.gate = gate
        self._tick_s = tick_s
        self.spawner = spawner
        self.directory = DeskDirectory()
        self.machine = DeskMachine(settings.desk, self.directory, settings.patrol)
        self.hub = WebSocketHub(metrics, spawner=spawner)
        self.hub.clock_info = lambda: {"now": self.clock.now().isoformat(), "rate": self.clock_rate()}
        chosen = list(notifiers) if notifiers is not None else build_notifiers(settings, db)
        self.dispatcher = Dispatcher(chosen, metrics, spawner=spawner)
        self.store = DeskStore(
            db,
            DeskJournal(journal_dir) if journal_dir is not None else None,
            on_journal_failed=lambda exc: self.local_write_failed("desk_journal", exc),
            on_row_refused=self._row_refused,
        )
        self._shutdown_deadline_s = shutdown_deadline_s
        standard = standard_outputs(
            directory=self.directory,
            pages=self.hub,
            publish=publish,
            dispatcher=self.dispatcher,
            store=self.store,
            metrics=metrics,
            unreached_log_interval_s=settings.patrol.unreached_log_interval_s,
        )
        self.fanout = FanOut(
            outputs(standard) if outputs is not None else standard,
            metrics,
            ResidentReads(self.store, metrics),
            on_failure=self._output_failed,
        )
        self._restore_pending = False
        self._restore_late = False
        self._fed = 0
        self._local_dir = local_dir  # the desk's own copy for a start without the database (local_state.py)
        self._local_dirty = asyncio.Event()
        self._closed_here: set[str] = set()  # closed since this start: a late database restore never reopens them
        # the HA profile (hub/ownership/): whether this hub may act for a site now; one hub acts for every site else
        self.acts_for: Callable[[str, str | None], bool] = _acts_for_every_site

    # --- the lane: events and ticks in, changes out ----------------------------------------------------------

    def feed(self, event: Event) -> None:
        """Run one event through the engine and the desk; never raises."""
        now = self.clock.now()
        try:
            decisions = self._evaluate(event, now)
        except Exception:
            logger.exception("rule engine failed on a %s event from %s", event.kind, event.device_id)
            self._failed("engine", event.site)
            decisions = _fallback(event)
        for decision in decisions:
            self._guarded("decision", decision.key, decision.site, partial(self.apply, decision))

    def _evaluate(self, event: Event, now: datetime) -> Sequence[AlarmDecision]:
        if self.engine is None:
            return ()
        self._fed += 1
        if self._fed % _METRIC_SAMPLE_EVERY:
            return self._gated(event, now)
        started = time.perf_counter()
        decisions = self._gated(event, now)
        self.metrics.rule_evaluation.observe(time.perf_counter() - started)
        return decisions

    def _gated(self, event: Event, now: datetime) -> Sequence[AlarmDecision]:
        """The event through the gate (re-deliveries dropped, stale news made a sign of life) into the engine."""
        assert self.engine is not None
        if self.gate is None:
            return self.engine.feed(event, now)
        verdict = self.gate.admit(event, now)
        seen = as_seen(event, verdict, now)
        if seen is None:
            return ()
        late_s = (now - event.ts).total_seconds()
        decisions = self.engine.feed(seen, now, late_s=late_s if late_s > 0 else 0.0)
        late_care = (
            verdict is Verdict.LATE
            and event.kind in _FALLBACK_KINDS
            and late_s <= self.settings.reliability.late_care_window_s
        )
        if late_care and not any(d.action is DecisionAction.RAISE for d in decisions):
            return [*decisions, self._late_care(event, now)]
        return decisions

    def _late_care(self, event: Event, now: datetime) -> AlarmDecision:
        """A care event that arrived too late for its rule (buffered in a gateway) still reaches a person, as a late
        alarm: "alarm button at 02:14, arrived 05:14". Only when it is the device's newest word: an older one than
        what the device said since is news the situation has moved on (the gate's verdict STALE), shown to nobody.
        """
        zone = ZoneInfo(self.directory.zone(event.site))
        resident = event.resident_id or self.directory.resident_of_device(event.site, event.device_id)
        subject = resident or event.device_id
        return AlarmDecision(
            action=DecisionAction.RAISE,
            key=f"{LATE_CARE_RULE}:{subject}",
            rule_id=LATE_CARE_RULE,
            category=AlarmCategory.CARE,
            severity=Severity.HIGH,
            site=event.site,
            at=now,
            reason=LATE_CARE_REASON.format(
                rule=event.kind.value,
                at=event.ts.astimezone(zone).strftime("%H:%M"),
                arrived=now.astimezone(zone).strftime("%H:%M"),
            ),
            resident_id=resident,
            device_id=event.device_id,
        )

    def tick(self) -> datetime:
        """The clock: fire the engine's due timers and the desk's due escalations; never raises. Returns the time it
        ticked at: every alarm due by then is at the desk (followers that judge by the desk's state at a time, like
        the check-ins, tick first and judge at that time)."""
        now = self.clock.now()
        if self.engine is not None:
            try:
                decisions: Sequence[AlarmDecision] = self.engine.tick(now)
            except Exception:
                logger.exception("rule engine tick failed")
                self._failed("engine_tick", None)
                decisions = ()
            for decision in decisions:
                self._guarded("decision", decision.key, decision.site, partial(self.apply, decision))
        self.escalate_due()
        self.hub.prune()
        return now

    def apply(self, decision: AlarmDecision) -> Alarm | None:
        """Apply one rule engine decision and deliver its changes; returns the alarm it touched."""
        if not self.acts_for(decision.site, decision.rule_id):
            return None
        changes = self.machine.apply(decision, self.clock.now())
        self._deliver(changes)
        return changes[0].alarm if changes else None

    def escalate_due(self) -> int:
        """Fire every escalation tier that is due now, each alarm on its own; returns how many fired."""
        now = self.clock.now()
        fired = 0
        for alarm in self.machine.due(now):
            if not self.acts_for(alarm.site, alarm.rule_id):
                continue
            if self._guarded("escalation", alarm.id, alarm.site, partial(self._escalate, alarm, now)):
                fired += 1
            elif alarm.next_escalation_at is not None and alarm.next_escalation_at <= now:
                # tried again later, not on every tick: its failure alarm is already out
                alarm.next_escalation_at = now + timedelta(seconds=_ESCALATION_RETRY_S)
        return fired

    def _escalate(self, alarm: Alarm, now: datetime) -> None:
        self._deliver(self.machine.escalate(alarm, now))

    def _deliver(self, changes: Sequence[Change]) -> None:
        if changes:
            self._local_dirty.set()
        for change in changes:
            alarm = change.alarm
            if change.kind is ChangeKind.CLOSE:
                self._closed_here.add(alarm.id)
            self._guarded("fanout", alarm.id, alarm.site, partial(self.fanout.deliver, change))
            if change.kind is ChangeKind.CLOSE and self.engine is not None:
                close = partial(self.engine.alarm_closed, alarm.key, change.at)
                self._guarded("engine_close", alarm.id, alarm.site, close)

    def _guarded(self, step: str, ref: str, site: str | None, work: Callable[[], object]) -> bool:
        """Run one item of the lane; a failure is logged with the item, counted and raised to operations."""
        try:
            work()
        except Exception:
            logger.exception("alarm lane step=%s failed for %s", step, ref)
            self._failed(step, site)
            return False
        return True

    def _failed(self, step: str, site: str | None) -> None:
        """Count a failed item and raise (or update) the site's technical alarm for operations."""
        self.metrics.alarm_lane_failures.labels(step).inc()
        if site is None:
            return
        reason = f"alarm processing failed ({step}): check the hub log; open alarms may need a physical round"
        self._raise_technical(FAILURE_RULE, site, reason)

    def _output_failed(self, output: str, alarm: Alarm) -> None:
        """One output failed on a change (fanout.py logged and counted it): the site's technical alarm
        `alarm_output_failure` for operations, once while it is open. It goes out through the other outputs."""
        key = f"{OUTPUT_FAILURE_RULE}:{alarm.site}"
        if not self.machine.has_open(key):
            reason = f"an alarm output failed ({output}) on {alarm.id}: check the hub log; the other outputs went on"
            self._raise_technical(OUTPUT_FAILURE_RULE, alarm.site, reason)

    def background_task_failed(self, task: str) -> None:
        """A background task failed (hub/runtime/tasks.py logged and counted it): every site gets the technical alarm
        `hub_task_failure` for operations, once while it is open (a task failing again does not ring it again)."""
        self.hub_fault(TASK_FAILURE_RULE, f"a background task of the hub failed ({task}): check the hub log")

    def local_write_failed(self, what: str, exc: OSError) -> None:
        """The hub's disk refused a write of its own state (full, read-only): counted, and every site gets the
        technical alarm `hub_disk_failure` once while it is open. The hub goes on; see docs/reliability.md."""
        self.metrics.local_write_failures.labels(what).inc()
        reason = f"the hub's disk refused a write ({what}: {exc.strerror or exc}): free space on the hub's disk"
        self.hub_fault(DISK_FAILURE_RULE, reason)

    def _row_refused(self, kind: str) -> None:
        """PostgreSQL refused one of the desk's rows for its content; it was set aside (desk_refused_rows)."""
        self.metrics.desk_rows_refused.labels(kind).inc()
        reason = f"the database refused a row of the alarm log ({kind}); it is kept in desk_refused_rows"
        self.hub_fault(ROW_REFUSED_RULE, reason)

    def hub_fault(self, rule: str, reason: str) -> None:
        """A fault of the hub itself: every site gets the technical alarm `rule`, once while it is open."""
        for site in self.directory.site_ids():
            if not self.machine.has_open(f"{rule}:{site}"):
                self._raise_technical(rule, site, reason)

    def _raise_technical(self, rule: str, site: str, reason: str) -> None:
        """Raise (or ring again) the site's technical alarm `rule` about the hub itself; never raises."""
        now = self.clock.now()
        decision = hub_alarm(DecisionAction.RAISE, rule, site, now, reason)
        if not self.acts_for(site, rule):
            return
        try:
            for change in self.machine.apply(decision, now):
                self.fanout.deliver(change)
        except Exception:
            logger.exception("alarm lane could not raise its own failure alarm site=%s rule=%s", site, rule)

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
        alarm, changes = self.machine.resolve(alarm_id, staff, outcome, note, self.clock.now(), take_over=take_over)
        self._deliver(changes)
        return alarm

    def _advance(self, alarm_id: str, staff: StaffMember, to: AlarmState, take_over: bool) -> Alarm:
        alarm, changes = self.machine.advance(alarm_id, staff, to, self.clock.now(), take_over=take_over)
        self._deliver(changes)
        return alarm

    def holder_other_than(self, alarm: Alarm, staff: StaffMember) -> str | None:
        """The colleague who holds the alarm now, when that is not `staff`."""
        return self.machine.holder_other_than(alarm, staff)

    def fallback_phones(self, site: str) -> tuple[str, ...]:
        """The number(s) the SMS/voice gateway calls when an alarm of `site` reaches nobody."""
        return self.machine.fallback_phones(site)

    # --- who is on duty -----------------------------------------------------------------------------------------

    def sign_on(self, staff: StaffMember, hours: float | None = None) -> datetime:
        """`staff` is on duty from now for `hours` (default: the configured shift); returns when the shift ends."""
        now = self.clock.now()
        until = now + timedelta(hours=hours or self.settings.patrol.shift_hours)
        self.directory.duty[staff.id] = until
        self.store.duty(staff.id, now, until)
        self._local_dirty.set()
        logger.info("staff on duty staff=%s until=%s", staff.id, until.isoformat())
        return until

    def sign_off(self, staff: StaffMember) -> None:
        """`staff` is off duty from now."""
        if self.directory.duty.pop(staff.id, None) is not None:
            self.store.duty(staff.id, self.clock.now(), None)
            self._local_dirty.set()
            logger.info("staff off duty staff=%s", staff.id)

    def on_duty(self, staff: StaffMember) -> datetime | None:
        """When this person's shift ends, or None when they are not on duty."""
        return self.directory.duty.get(staff.id) if self.directory.on_duty(staff, self.clock.now()) else None

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
        async with self.db.acquire() as conn:
            if sites:
                self.set_sites(await fetch_sites(conn))
            staff = await load_staff(conn)
            duty = await load_duty(conn)
        self.set_staff(staff)
        self.directory.set_duty(duty)
        self._local_dirty.set()

    # --- reading ----------------------------------------------------------------------------------------------

    def recipients_on_page(self, alarm: Alarm) -> list[StaffMember]:
        """Everyone whose staff page shows this alarm."""
        return self.directory.who_sees(alarm.site, alarm.unit)

    def view(self, alarm: Alarm) -> dict[str, Any]:
        """The alarm as the staff page shows it, with the hub's now and clock times in the site's zone."""
        return alarm_view(alarm, self.directory, self.clock.now())

    def open_alarms_for(self, staff: StaffMember) -> list[Alarm]:
        """Open alarms of this person's units, most urgent first."""
        return self.machine.open_alarms_for(staff)

    def open_alarms(self) -> list[Alarm]:
        """Every open alarm, most urgent first."""
        return self.machine.open_alarms()

    def get(self, alarm_id: str) -> Alarm | None:
        """An open alarm by id."""
        return self.machine.get(alarm_id)

    def get_open_by_key(self, key: str) -> Alarm | None:
        """The open alarm under a rule key (`{rule_id}:{subject}`)."""
        return self.machine.get_open_by_key(key)

    def has_open(self, key: str) -> bool:
        """Whether an alarm of this decision key (`rule:subject`) is open."""
        return self.machine.has_open(key)

    def residents_for(self, staff: StaffMember) -> list[tuple[Site, Resident]]:
        """Residents of this person's units, by site and room."""
        return self.directory.residents_for(staff)

    def device_faults(self, site: str) -> set[str]:
        """Devices of a site with an open technical alarm."""
        return {
            a.device_id
            for a in self.machine.open_for_site(site)
            if a.device_id and a.category is AlarmCategory.TECHNICAL
        }

    def log_resident_reads(
        self, staff: StaffMember, residents: Iterable[tuple[str, str]], purpose: str, address: str | None = None
    ) -> None:
        """Record that a person saw these residents' data (`(site, resident_id)`), from `address`; in the background."""
        self.fanout.record_reads(staff, residents, purpose, self.clock.now(), address)

    def clock_rate(self) -> float:
        """How fast the hub's clock runs against the wall clock (1 in production; the simulation's speed in a demo)."""
        speed = getattr(self.clock, "speed", None)
        if speed is None:
            return 1.0
        synced = getattr(self.clock, "synced", True)
        return float(speed) if synced else 0.0

    def age(self, alarm: Alarm) -> timedelta:
        """How long ago the alarm was raised."""
        return self.clock.now() - alarm.raised_at

    # --- lifecycle -----------------------------------------------------------------------------------------------

    async def restore(self, sites: list[Site] | None = None) -> None:
        """Load inventory (unless given), staff and open alarms (with escalation state) from the database.

        When the database is away, the desk starts empty (new alarms flow from memory) and `run_loop` brings the
        earlier open alarms back as soon as it answers.
        """
        if sites is not None:
            self.set_sites(sites)
        staff_loaded = True
        try:
            await self.refresh(sites=sites is None)
        except (TimeoutError, OSError, VakaError, asyncpg.PostgresError, ImportError) as exc:
            logger.warning("desk could not load inventory/staff: %s", exc)
            staff_loaded = False
        try:
            await self.store.drain_journal()  # alarms raised during an outage are in the journal, not yet stored
            rows = await self.store.load_open()
        except (TimeoutError, OSError, VakaError, asyncpg.PostgresError) as exc:
            logger.warning("desk could not restore open alarms yet, retrying in the background: %s", exc)
            if not self._restore_pending:
                await self._resume_locally(staff_loaded=staff_loaded)
            self._restore_pending = True
            return
        self._restore_pending = False
        restored = 0
        for row in rows:
            alarm = alarm_from_row(row)
            if alarm.id in self._closed_here:
                continue  # closed here while the database was away: its closing row follows in the queue
            held = self.machine.get_open_by_key(alarm.key)
            if held is not None and held.id != alarm.id:
                logger.warning(
                    "desk restore: %s open twice (%s here, %s stored); keeping both", alarm.key, held.id, alarm.id
                )
            if not self.machine.restore(alarm):
                continue
            restored += 1
            self.fanout.count_open(alarm)
            if self._restore_late:
                self.fanout.show(alarm, closed=False, read_at=self.clock.now())
        logger.info(
            "desk restored open_alarms=%s staff=%s sites=%s", restored, len(self.staff), self.directory.site_count
        )

    async def _resume_locally(self, *, staff_loaded: bool) -> None:
        """A start with the database away: open alarms, staff and duty from the desk's own copy and its journal, so
        nothing is raised twice and escalation reaches the people on duty (issue 22.3)."""
        if self._local_dir is None:
            return
        state = await asyncio.to_thread(local_state.load, self._local_dir) or local_state.DeskState()
        try:
            state.take_newer(await self.store.journaled_alarms())
        except (OSError, ValueError, TypeError) as exc:
            logger.warning("desk journal cannot be read for the local restore: %s", exc)
        if not staff_loaded and state.staff:
            self.set_staff(state.staff)
            self.directory.set_duty(state.duty)
        restored = 0
        for alarm in state.alarms.values():
            if self.machine.restore(alarm):
                restored += 1
                self.fanout.count_open(alarm)
        logger.info(
            "desk resumed from its local copy (database away): open_alarms=%s staff=%s on_duty=%s",
            restored,
            len(self.staff),
            len(self.directory.duty),
        )

    async def settle_recovery(self) -> None:
        """After start-up recovery and before the hub takes events: what recovery changed is written (or journaled)
        now, not once the loops run a second or two later; a second crash in that window lost the rows, and the
        next start applied the same decisions again (`tests/hub/test_crash_recovery.py`)."""
        await self.store.close(self._shutdown_deadline_s)
        await self.save_local()

    async def save_local(self) -> None:
        """Write the desk's own copy now (open alarms, staff, duty); a refused write is counted and raised."""
        if self._local_dir is None:
            return
        self._local_dirty.clear()
        data = local_state.encode(
            [snapshot_row(a) for a in self.machine.open_alarms()], self.staff, self.directory.duty
        )
        try:
            await asyncio.to_thread(local_state.save, self._local_dir, data)
        except OSError as exc:
            self.local_write_failed("desk_state", exc)

    async def _local_state_loop(self) -> None:
        while True:
            await self._local_dirty.wait()
            await self.save_local()
            await asyncio.sleep(_LOCAL_SAVE_EVERY_S)

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The lane's forever-loops by task name: its clock, persistence and the staff refresh (the hub runs them in
        its one TaskGroup; `aclose` follows once they are cancelled)."""
        return {
            "vaka.lane.tick": self._tick_loop(),
            "vaka.desk.persist": self.store.write_loop(),
            "vaka.desk.refresh": self._refresh_loop(),
            "vaka.desk.local_state": self._local_state_loop(),
        }

    async def aclose(self) -> None:
        """After the loops: what is queued for the database written or journaled, channels and pages closed."""
        await self.save_local()
        await self.store.close(self._shutdown_deadline_s)
        await self.store.write_remaining(self._shutdown_deadline_s)  # nothing left after close; a last guard
        await self.dispatcher.aclose()
        await self.hub.aclose()

    async def run_loop(self) -> None:
        """The loops (as the spawner's tasks) and `aclose` after them: a desk running without the hub (tests)."""
        tasks = [self.spawner.spawn(loop, name=name) for name, loop in self.loops().items()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.aclose()

    async def _tick_loop(self) -> None:
        while True:
            self.tick()
            self.metrics.hub_heartbeat.set(time.time())
            if self.engine is not None:
                self.metrics.engine_timers.set(self.engine.pending_timers)
            wait_s = self._tick_s
            deadline = self.engine.next_deadline() if self.engine is not None else None
            if deadline is not None:
                wait_s = min(wait_s, max((deadline - self.clock.now()).total_seconds(), 0.0))
            await asyncio.sleep(wait_s)

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


def _acts_for_every_site(site: str, rule_id: str | None) -> bool:
    return True


def _fallback(ev: Event) -> list[AlarmDecision]:
    """A decision for a life-safety event when the rule engine failed on it."""
    reason = _FALLBACK_KINDS.get(ev.kind)
    if reason is None:
        return []
    subject = ev.resident_id or ev.device_id
    return [
        AlarmDecision(
            action=DecisionAction.RAISE,
            key=f"fallback:{subject}",
            rule_id="fallback",
            category=AlarmCategory.CARE,
            severity=Severity.CRITICAL,
            site=ev.site,
            at=ev.ts,
            reason=reason,
            resident_id=ev.resident_id,
            device_id=ev.device_id,
            ref=ev.ref,
        )
    ]
