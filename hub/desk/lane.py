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
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from alarms.gate import Gate, Verdict, as_seen
from hub.desk.alarm import Alarm
from hub.desk.directory import DeskDirectory
from hub.desk.fanout import FanOut, Output, ResidentReads
from hub.desk.local_state import LocalCopy
from hub.desk.machine import NOBODY_REACHED, Change, ChangeKind, DeskError, DeskMachine, HandoverError
from hub.desk.persistence import DeskStore
from hub.metrics import Metrics
from hub.model import (
    AlarmCategory,
    AlarmDecision,
    DecisionAction,
    Event,
    EventKind,
    Severity,
    hub_alarm,
)
from hub.notify import Dispatcher
from hub.notify.websocket import WebSocketHub
from hub.runtime.clock import Clock, clock_rate

if TYPE_CHECKING:
    from hub.settings import Settings

__all__ = ["NOBODY_REACHED", "Desk", "DeskError", "HandoverError"]

logger = logging.getLogger(__name__)

TICK_S = 0.25
SHUTDOWN_FLUSH_S = 3.0  # what is still queued for the database is written, or journaled, within this
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
        metrics: Metrics,
        *,
        clock: Clock,
        directory: DeskDirectory,
        machine: DeskMachine,
        outputs: Sequence[Output],
        reads: ResidentReads,
        store: DeskStore,
        pages: WebSocketHub,
        dispatcher: Dispatcher,
        local: LocalCopy,
        engine: RuleEngine | None = None,
        gate: Gate | None = None,
        tick_s: float = TICK_S,
        shutdown_deadline_s: float = SHUTDOWN_FLUSH_S,
        acts_for: Callable[[str, str | None], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.engine = engine
        self.gate = gate
        self.directory = directory
        self.machine = machine
        self.store = store
        self.pages = pages
        self.dispatcher = dispatcher
        self.fanout = FanOut(outputs, metrics, reads, on_failure=self._output_failed)
        self._local = local
        self._tick_s = tick_s
        self._page_rate: float | None = None  # the clock rate the staff pages were last told
        self._shutdown_deadline_s = shutdown_deadline_s
        self._fed = 0
        # the HA profile (hub/ownership/): whether this hub may act for a site now; one hub acts for every site else
        self.acts_for: Callable[[str, str | None], bool] = acts_for or _acts_for_every_site

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
        self.pages.prune()
        if (rate := clock_rate(self.clock)) != self._page_rate:  # issue 28: pages follow a rate change at once
            self._page_rate = rate
            self.pages.clock_changed()
        return now

    def apply(self, decision: AlarmDecision) -> Alarm | None:
        """Apply one rule engine decision and deliver its changes; returns the alarm it touched."""
        if not self.acts_for(decision.site, decision.rule_id):
            return None
        changes = self.machine.apply(decision, self.clock.now())
        self.deliver(changes)
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
        self.deliver(self.machine.escalate(alarm, now))

    def deliver(self, changes: Sequence[Change]) -> None:
        """Deliver the machine's changes (a decision's, an escalation's, a person's action) through every output,
        each change on its own."""
        self._local.note(changes)
        for change in changes:
            alarm = change.alarm
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

    def row_refused(self, kind: str) -> None:
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

    # --- lifecycle -----------------------------------------------------------------------------------------------

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The lane's forever-loops by task name: its clock and persistence (the hub runs them in its one TaskGroup;
        `aclose` follows once they are cancelled)."""
        return {"vaka.lane.tick": self._tick_loop(), "vaka.desk.persist": self.store.write_loop()}

    async def aclose(self) -> None:
        """After the loops: what is queued for the database written or journaled, channels and pages closed."""
        await self.store.close(self._shutdown_deadline_s)
        await self.store.write_remaining(self._shutdown_deadline_s)  # nothing left after close; a last guard
        await self.dispatcher.aclose()
        await self.pages.aclose()

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
