"""The fan-out: where a desk change goes. An ordered list of small outputs, each with one method: persistence
first, then the staff pages, the MQTT alarm topic, the notification channels, the `ALARM` log line and the gauges;
none of them is awaited.

Each output runs under its own guard: one that raises is logged with the alarm id, counted in
`vaka_alarm_output_failures_total{output}` and reported (`on_failure`: the lane raises the technical alarm
`alarm_output_failure`), and every other output still gets the change. The report is delivered through the same
outputs once the change is through all of them; the failing output fails on it too, the others carry it, and a
failure while reporting is only logged and counted, so a broken output can never loop (issue 23).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from alarms.instant import ABORT_REASON
from hub.desk.alarm import Alarm
from hub.desk.directory import DeskDirectory
from hub.desk.machine import Change, ChangeKind
from hub.desk.persistence import DeskStore
from hub.metrics import Metrics
from hub.notify import Dispatcher, Notification
from hub.notify.websocket import WebSocketHub
from hub.people.staff import StaffMember

logger = logging.getLogger(__name__)


class Publish(Protocol):
    """Non-blocking MQTT publish (the hub's events connection)."""

    def __call__(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None: ...


def local_hm(at: datetime, zone: ZoneInfo) -> str:
    """Clock time in the site's zone, "02:14"."""
    return at.astimezone(zone).strftime("%H:%M")


def alarm_view(alarm: Alarm, directory: DeskDirectory, now: datetime) -> dict[str, Any]:
    """The alarm as the staff page shows it, with the hub's now and clock times in the site's zone."""
    data = alarm.public()
    resident = directory.resident(alarm.site, alarm.resident_id)
    zone = ZoneInfo(directory.zone(alarm.site))
    data.update(
        site=alarm.site,
        room=resident.room if resident else None,
        unit=alarm.unit,
        reason=alarm.reason,
        unregistered=alarm.unregistered,
        ring=alarm.rings,
        outcome=alarm.outcome.value if alarm.outcome else None,
        severity_level=int(alarm.severity),
        raised_hm=local_hm(alarm.raised_at, zone),
        latest_hm=local_hm(alarm.last_incident_at or alarm.ring_base, zone),
        repeat_pending=alarm.repeat_pending,  # a repeat its holder has not answered: it rings for her
        repeat_escalated=alarm.repeat_escalated and alarm.repeat_pending,  # ... and for colleagues too
        ringing_since=alarm.ring_base.isoformat(),
        condition_ended_hm=local_hm(alarm.condition_ended_at, zone) if alarm.condition_ended_at else None,
        condition_note=alarm.condition_note,
        gave_up=alarm.condition_note == ABORT_REASON,  # the unit gave up on Vaka: the card says so, not "ended"
        accepted_by_id=alarm.accepted_by_id,
        now=now.isoformat(),
    )
    return data


class Output(Protocol):
    """One place a desk change goes."""

    name: str

    def deliver(self, change: Change) -> None:
        """Take one change; may raise (the fan-out guards each output on its own)."""


_SILENT = frozenset({ChangeKind.ESCALATE, ChangeKind.NOBODY_REACHED})  # no page, MQTT or state notification


def _is_state(change: Change) -> bool:
    return change.kind not in _SILENT


class Persistence:
    """Every change into the alarm log and the alarm's row (queued; written by the desk's persistence loop)."""

    name = "persistence"

    def __init__(self, store: DeskStore) -> None:
        self.store = store

    def deliver(self, change: Change) -> None:
        self.store.save(change.alarm, change.actor, change.action, change.detail, change.at)


class Pages:
    """The alarm on the staff pages of everyone who sees it; each reader's seeing it is a resident read."""

    name = "pages"

    def __init__(self, directory: DeskDirectory, pages: WebSocketHub, reads: ResidentReads) -> None:
        self.directory = directory
        self.pages = pages
        self.reads = reads

    def deliver(self, change: Change) -> None:
        if _is_state(change):
            self.show(change.alarm, closed=change.kind is ChangeKind.CLOSE, read_at=change.at)

    def show(self, alarm: Alarm, *, closed: bool, read_at: datetime) -> None:
        """Put the alarm on the pages of everyone who sees it; their reading it is logged as a resident read."""
        readers = self.pages.publish(
            alarm_view(alarm, self.directory, read_at),
            alarm.version,
            closed,
            self.directory.who_sees(alarm.site, alarm.unit),
            sees=lambda s: s.sees(alarm.site, alarm.unit),
        )
        if alarm.resident_id is not None:
            for member in readers:
                self.reads.record(member, [(alarm.site, alarm.resident_id)], "alarm_push", read_at)


class MqttAlarms:
    """State changes on `vaka/v1/{site}/alarms/{id}` for integrations (never blocks: paho queues it)."""

    name = "mqtt"

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    def deliver(self, change: Change) -> None:
        if _is_state(change) and change.notify:
            alarm = change.alarm
            topic = f"vaka/v1/{alarm.site}/alarms/{alarm.id}"
            self._publish(topic, json.dumps(alarm.public()).encode(), qos=1, retain=False)


class Channels:
    """Web Push, webhook and SMS: state notifications, and each escalation tier to its recipients."""

    name = "channels"

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def deliver(self, change: Change) -> None:
        alarm = change.alarm
        if change.kind is ChangeKind.ESCALATE:
            self.dispatcher.dispatch(
                Notification(
                    id=f"{alarm.id}:tier{change.tier}",
                    event="escalation",
                    alarm=alarm.public(),
                    recipients=change.recipients,
                    tier=change.tier,
                    audience=change.audience,
                    ring=alarm.wakes_patrol,
                    phones=change.phones,
                )
            )
        elif _is_state(change) and change.notify:
            self.dispatcher.dispatch(
                Notification(id=f"{alarm.id}:{alarm.version}", event="state", alarm=alarm.public())
            )


class LogLine:
    """One fixed, greppable `ALARM` line per change (escalations that reached nobody: one per site per interval)."""

    name = "log"

    def __init__(self, unreached_log_interval_s: float = 60.0) -> None:
        self._unreached_log_interval_s = unreached_log_interval_s
        self._unreached_log: dict[str, tuple[float, int]] = {}  # site -> (last line, monotonic s; lines held back)

    def deliver(self, change: Change) -> None:
        alarm = change.alarm
        if change.kind is ChangeKind.ESCALATE:
            if change.recipients or change.phones:
                logger.info(
                    "ALARM id=%s escalated tier=%s audience=%s recipients=%s",
                    alarm.id,
                    change.tier,
                    change.audience,
                    len(change.recipients),
                )
            else:
                self._log_unreached(change)
            return
        if change.kind is ChangeKind.NOBODY_REACHED:
            logger.warning(
                "ALARM id=%s nobody reached site=%s rule=%s audience=%s fallback=%s",
                alarm.id,
                alarm.site,
                alarm.rule_id,
                change.audience,
                "yes" if change.phones else "none configured",
            )
            return
        logger.info(
            "ALARM id=%s state=%s action=%s site=%s rule=%s category=%s severity=%s actor=%s",
            alarm.id,
            alarm.state.value,
            change.action,
            alarm.site,
            alarm.rule_id,
            alarm.category.value,
            alarm.severity.name.lower(),
            change.actor,
        )

    def _log_unreached(self, change: Change) -> None:
        """One line per site per `unreached_log_interval_s` at most; the lines held back are counted in the next."""
        alarm = change.alarm
        wall = time.monotonic()
        last, held = self._unreached_log.get(alarm.site, (float("-inf"), 0))
        if wall - last < self._unreached_log_interval_s:
            self._unreached_log[alarm.site] = (last, held + 1)
            return
        self._unreached_log[alarm.site] = (wall, 0)
        logger.warning(
            "ALARM id=%s escalated tier=%s audience=%s recipients=0 site=%s (reached nobody; %s more held back)",
            alarm.id,
            change.tier,
            change.audience,
            alarm.site,
            held,
        )


class Gauges:
    """The alarm counters and the open-alarm gauges (O(1) per change)."""

    name = "gauges"

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._counted: dict[str, tuple[str, str]] = {}
        self._open_counts: dict[tuple[str, str], int] = {}

    def deliver(self, change: Change) -> None:
        alarm = change.alarm
        m = self.metrics
        if change.kind is ChangeKind.ESCALATE:
            m.escalations.labels(alarm.category.value).inc()
            if not (change.recipients or change.phones):
                m.escalations_unreached.labels(alarm.category.value).inc()
            return
        if change.kind is ChangeKind.NOBODY_REACHED:
            m.nobody_reached.inc()
            return
        if change.kind is ChangeKind.RAISE:
            m.alarms_raised.labels(alarm.category.value, alarm.severity.name.lower()).inc()
        elif change.kind is ChangeKind.REPEAT:
            m.alarm_repeats.labels(alarm.category.value).inc()
        elif change.kind is ChangeKind.TAKEN_OVER:
            m.alarm_handovers.inc()
        if change.transition is not None:
            m.alarm_transitions.labels(alarm.category.value, change.transition.value).inc()
        if change.accept_latency_s is not None:
            m.alarm_accept_latency.observe(change.accept_latency_s)
        self.count_open(alarm)

    def count_open(self, alarm: Alarm, *, here: bool = True) -> None:
        """Move the alarm between the open-alarm gauges: O(1), it runs on every change. `here=False`: the alarm left
        this hub open (another hub of the HA profile owns its site now) and is counted no more."""
        before = self._counted.pop(alarm.id, None)
        after = (alarm.category.value, alarm.state.value) if alarm.is_open and here else None
        if after is not None:
            self._counted[alarm.id] = after
        if before == after:
            return
        for labels, delta in ((before, -1), (after, 1)):
            if labels is not None:
                self._open_counts[labels] = self._open_counts.get(labels, 0) + delta
                self.metrics.alarms_open.labels(*labels).set(self._open_counts[labels])


class ResidentReads:
    """Logs that a person saw residents' data (the access log), persisted in the background."""

    def __init__(self, store: DeskStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics

    def record(
        self,
        staff: StaffMember,
        residents: Iterable[tuple[str, str]],
        purpose: str,
        at: datetime,
        address: str | None = None,
    ) -> None:
        """One access-log row per resident seen."""
        n = 0
        for site, resident_id in set(residents):
            self.store.access(at, staff.id, staff.role.value, site, resident_id, purpose, address)
            n += 1
        if n:
            self.metrics.resident_reads.labels(staff.role.value).inc(n)


def standard_outputs(
    *,
    directory: DeskDirectory,
    pages: WebSocketHub,
    publish: Publish,
    dispatcher: Dispatcher,
    store: DeskStore,
    metrics: Metrics,
    unreached_log_interval_s: float = 60.0,
) -> list[Output]:
    """The outputs of a desk change, in order: persistence, pages, MQTT, channels, the log line, the gauges."""
    return [
        Persistence(store),
        Pages(directory, pages, ResidentReads(store, metrics)),
        MqttAlarms(publish),
        Channels(dispatcher),
        LogLine(unreached_log_interval_s),
        Gauges(metrics),
    ]


class FanOut:
    """Delivers desk changes to every output, each under its own guard; see the module docstring."""

    def __init__(
        self,
        outputs: Sequence[Output],
        metrics: Metrics,
        reads: ResidentReads,
        on_failure: Callable[[str, Alarm], None] | None = None,
    ) -> None:
        self.outputs = list(outputs)
        self.metrics = metrics
        self.reads = reads
        self.on_failure = on_failure
        self._reporting = False
        for output in self.outputs:
            metrics.alarm_output_failures.labels(output.name)  # present at 0 for dashboards and alerts
        self._pages = next((o for o in _unwrapped(self.outputs) if isinstance(o, Pages)), None)
        self._gauges = next((o for o in _unwrapped(self.outputs) if isinstance(o, Gauges)), None)

    def deliver(self, change: Change) -> None:
        """Send one change to every output; never raises for one of them."""
        failed: list[str] = []
        for output in self.outputs:
            try:
                output.deliver(change)
            except Exception:
                logger.exception("alarm output=%s failed for %s (%s)", output.name, change.alarm.id, change.kind.value)
                self.metrics.alarm_output_failures.labels(output.name).inc()
                failed.append(output.name)
        if not failed or self._reporting or self.on_failure is None:
            return
        self._reporting = True  # the report goes through the same outputs; its own failures are not reported again
        try:
            for name in failed:
                self.on_failure(name, change.alarm)
        except Exception:
            logger.exception("could not report the failed alarm outputs %s for %s", failed, change.alarm.id)
        finally:
            self._reporting = False

    def show(self, alarm: Alarm, *, closed: bool, read_at: datetime) -> None:
        """Put the alarm on the staff pages (a restore after the database came back)."""
        if self._pages is not None:
            self._pages.show(alarm, closed=closed, read_at=read_at)

    def record_reads(
        self,
        staff: StaffMember,
        residents: Iterable[tuple[str, str]],
        purpose: str,
        at: datetime,
        address: str | None = None,
    ) -> None:
        """Log that a person saw these residents' data (`(site, resident_id)`); persisted in the background."""
        self.reads.record(staff, residents, purpose, at, address)

    def count_open(self, alarm: Alarm, *, here: bool = True) -> None:
        """Count a restored open alarm in the gauges (`here=False`: no more, its site went to another hub)."""
        if self._gauges is not None:
            self._gauges.count_open(alarm, here=here)


def _unwrapped(outputs: Iterable[Output]) -> Iterable[Output]:
    """The outputs, and what a wrapper (a test's recorder) holds as `inner`."""
    for output in outputs:
        yield output
        inner = getattr(output, "inner", None)
        if inner is not None:
            yield inner
