"""The fan-out: where a desk change goes. Staff pages, the MQTT alarm topic, the notification channels, the
`ALARM` log line, the open-alarm gauges and persistence, in that order; none of them is awaited.

Each output is guarded on its own, so a broken channel or a full MQTT queue never keeps a change from the pages or
from the alarm log (and `deliver` itself never raises for one of them).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from hub.desk.alarm import Alarm
from hub.desk.directory import DeskDirectory
from hub.desk.machine import Change, ChangeKind
from hub.desk.persistence import DeskStore
from hub.metrics import Metrics
from hub.model import AlarmState
from hub.notify import Dispatcher, Notification
from hub.notify.websocket import WebSocketHub
from hub.staff import StaffMember

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
        ring=alarm.wakes_patrol and alarm.state is AlarmState.RAISED,
        outcome=alarm.outcome.value if alarm.outcome else None,
        severity_level=int(alarm.severity),
        raised_hm=local_hm(alarm.raised_at, zone),
        ringing_since=alarm.ring_base.isoformat(),
        condition_ended_hm=local_hm(alarm.condition_ended_at, zone) if alarm.condition_ended_at else None,
        condition_note=alarm.condition_note,
        accepted_by_id=alarm.accepted_by_id,
        now=now.isoformat(),
    )
    return data


class FanOut:
    """Delivers desk changes to every output; see the module docstring."""

    def __init__(
        self,
        *,
        directory: DeskDirectory,
        pages: WebSocketHub,
        publish: Publish,
        dispatcher: Dispatcher,
        store: DeskStore,
        metrics: Metrics,
        unreached_log_interval_s: float = 60.0,
    ) -> None:
        self.directory = directory
        self.pages = pages
        self._publish = publish
        self.dispatcher = dispatcher
        self.store = store
        self.metrics = metrics
        self._counted: dict[str, tuple[str, str]] = {}
        self._open_counts: dict[tuple[str, str], int] = {}
        self._unreached_log_interval_s = unreached_log_interval_s
        self._unreached_log: dict[str, tuple[float, int]] = {}  # site -> (last line, monotonic s; lines held back)

    def deliver(self, change: Change) -> None:
        """Send one change everywhere it goes."""
        alarm = change.alarm
        if change.kind is ChangeKind.ESCALATE:
            self._escalate(change)
            return
        if change.kind is ChangeKind.NOBODY_REACHED:
            self._nobody_reached(change)
            return
        m = self.metrics
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
        self.show(alarm, closed=change.kind is ChangeKind.CLOSE, read_at=change.at)
        if change.notify:
            public = alarm.public()
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
            change.action,
            alarm.site,
            alarm.rule_id,
            alarm.category.value,
            alarm.severity.name.lower(),
            change.actor,
        )
        self.store.save(alarm, change.actor, change.action, change.detail, change.at)
        self.count_open(alarm)

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
                self.record_reads(member, [(alarm.site, alarm.resident_id)], "alarm_push", read_at)

    def _escalate(self, change: Change) -> None:
        alarm = change.alarm
        self.metrics.escalations.labels(alarm.category.value).inc()
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
        if change.recipients or change.phones:
            logger.info(
                "ALARM id=%s escalated tier=%s audience=%s recipients=%s",
                alarm.id,
                change.tier,
                change.audience,
                len(change.recipients),
            )
        else:
            self.metrics.escalations_unreached.labels(alarm.category.value).inc()
            self._log_unreached(change)
        self.store.save(alarm, change.actor, change.action, change.detail, change.at)

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

    def _nobody_reached(self, change: Change) -> None:
        origin = change.alarm
        self.metrics.nobody_reached.inc()
        logger.warning(
            "ALARM id=%s nobody reached site=%s rule=%s audience=%s fallback=%s",
            origin.id,
            origin.site,
            origin.rule_id,
            change.audience,
            "yes" if change.phones else "none configured",
        )
        self.store.save(origin, change.actor, change.action, change.detail, change.at)

    def record_reads(
        self,
        staff: StaffMember,
        residents: Iterable[tuple[str, str]],
        purpose: str,
        at: datetime,
        address: str | None = None,
    ) -> None:
        """Log that a person saw these residents' data (`(site, resident_id)`); persisted in the background."""
        n = 0
        for site, resident_id in set(residents):
            self.store.access(at, staff.id, staff.role.value, site, resident_id, purpose, address)
            n += 1
        if n:
            self.metrics.resident_reads.labels(staff.role.value).inc(n)

    def count_open(self, alarm: Alarm) -> None:
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
