"""Sequence rules: `first` not followed by `then` within the duration raises."""

from __future__ import annotations

from typing import Any

from alarms.base import Compiled, Matcher, RuleContext, Watch, watches_from_json, watches_to_json
from alarms.directory import DeviceInfo
from alarms.spec import ScheduleSpec, SequenceRule
from hub.model import Event


class SequenceEval(Compiled):
    """`first` not followed by `then` within the duration."""

    def __init__(self, rule: SequenceRule, schedules: dict[str, ScheduleSpec]) -> None:
        super().__init__(rule, schedules, float(rule.within))
        self.first = Matcher(rule.first)
        self.then = Matcher(rule.then)
        both = (self.first.kinds, self.then.kinds)
        self.listens = frozenset(both[0] | both[1]) if both[0] and both[1] else None
        self.pending: dict[str, Watch] = {}

    def on_event(self, ctx: RuleContext, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """Open or close the window."""
        if dev is None:
            return
        subject = event.device_id if self.by_device or rid is None else rid
        if self.then.test(event, dev):
            self.pending.pop(subject, None)
            ctx.clear(self, subject, event.ts)
            return
        if subject in self.pending or not self.first.test(event, dev):
            return
        params = self.params(rid)
        if params.schedule is not None and not params.schedule.active(ctx.clock(event.site), t):
            return
        if ctx.may_raise(self, rid, dev, params):
            self.pending[subject] = Watch(t, event.site, rid, event.device_id)
            ctx.timers.push(t + params.duration_s, self.id, subject, t)

    def on_timer(self, ctx: RuleContext, subject: str, anchor: float, due: float) -> None:
        """Raise when `then` did not come."""
        self.raise_watched(
            ctx,
            self.pending,
            subject,
            anchor,
            due,
            lambda _watch, params, _dev: self.reason(minutes=round(params.duration_s / 60)),
        )

    def state_to_json(self) -> Any:
        """Open windows."""
        return watches_to_json(self.pending)

    def state_from_json(self, data: Any) -> None:
        """Restore open windows."""
        self.pending = watches_from_json(data)
