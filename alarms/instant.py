"""Instant rules: raise on a match, clear on `clear`, withdraw on a device-side `cancel`."""

from __future__ import annotations

from typing import Any

from alarms.base import Compiled, Matcher, RuleContext, Watch, Where, fmt_value, watches_from_json, watches_to_json
from alarms.directory import DeviceInfo
from alarms.spec import InstantRule, ScheduleSpec
from hub.model import Event, EventKind

# what the card says when a person ended the alarm at the unit (a reset or presence button), whichever rule's it was
RESET_REASON = "reset at the alarm unit"
# what the card says when the unit gave up on Vaka for the alarm (SCAIP `RE`, SS 91100:2014 4.4): nobody ended it
ABORT_REASON = "the alarm unit stopped waiting for Vaka and may have alerted another receiver"
# endings an alarm unit sends for whichever alarm its ref names (alarm button, fall), and what the card says
UNIT_ENDINGS = {EventKind.ALARM_RESET: RESET_REASON, EventKind.ALARM_ABORTED: ABORT_REASON}


class InstantEval(Compiled):
    """Raise on match; clear on `clear`; device-side cancel on `cancel`."""

    def __init__(self, rule: InstantRule, schedules: dict[str, ScheduleSpec]) -> None:
        super().__init__(rule, schedules, 0.0)
        self.match = Matcher(rule.match)
        self.clear = Matcher(rule.clear) if rule.clear else None
        self.cancel = Matcher(rule.cancel) if rule.cancel else None
        self.cancel_reason = rule.cancel_reason
        kinds: set[EventKind] = set()
        for matcher in (self.match, self.clear, self.cancel):
            if matcher is not None and matcher.kinds is not None:
                kinds |= matcher.kinds
        self.listens = (
            frozenset(kinds) if all(m is None or m.kinds for m in (self.match, self.clear, self.cancel)) else None
        )
        # unregistered devices may raise only care alarms that do not depend on the device's kind
        self.open_to_unregistered = self.care and self.match.device_kinds is None
        # a condition that started outside the schedule and has not cleared (door opened at 21:50, still open):
        # raised when the schedule begins
        self.waiting: dict[str, Watch] = {}

    def on_event(self, ctx: RuleContext, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """Raise, clear or cancel."""
        if dev is None:
            if not self.open_to_unregistered:
                return
            rid = None  # unknown device: keyed by the device, whatever the event claims
        subject = event.device_id if self.by_device or rid is None else rid
        params = self.params(rid)
        if self.match.test(event, dev, params.threshold):
            if params.schedule is not None and not params.schedule.active(ctx.clock(event.site), t):
                if self.clear is not None and subject not in self.waiting:
                    start, _ = params.schedule.next_window(ctx.clock(event.site), t)
                    self.waiting[subject] = Watch(t, event.site, rid, event.device_id)
                    ctx.timers.push(start, self.id, subject, t)
                return
            if ctx.may_raise(self, rid, dev, params):
                ctx.raise_or_update(
                    self,
                    subject,
                    t=t,
                    at=event.ts,
                    where=Where(event.site, rid, event.device_id),
                    dev=dev,
                    ref=event.ref,
                    reason=self.reason(value=fmt_value(event.value), device_kind=dev.kind if dev else "device"),
                )
        elif self.clear is not None and self.clear.test(event, dev, params.clear_at):
            if self.waiting:
                self.waiting.pop(subject, None)
            ctx.clear(self, subject, event.ts)
        elif self.cancel is not None and self.cancel.test(event, dev):
            unit_reason = UNIT_ENDINGS.get(event.kind)
            ctx.cancel(
                self,
                subject,
                event.ts,
                event.ref,
                unit_reason or self.cancel_reason,
                event.device_id,
                unit_wide=unit_reason is not None,
                by_person=event.kind is EventKind.ALARM_RESET,
            )

    def on_timer(self, ctx: RuleContext, subject: str, anchor: float, due: float) -> None:
        """The schedule began while the condition still held: raise now."""
        self.raise_watched(
            ctx,
            self.waiting,
            subject,
            anchor,
            due,
            lambda _watch, _params, dev: self.reason(value="?", device_kind=dev.kind if dev else "device"),
        )

    def state_to_json(self) -> Any:
        """Conditions waiting for their schedule."""
        return watches_to_json(self.waiting)

    def state_from_json(self, data: Any) -> None:
        """Restore conditions waiting for their schedule."""
        self.waiting = watches_from_json(data)
