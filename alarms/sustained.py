"""Sustained rules: a condition held for `for` raises; clears with hysteresis."""

from __future__ import annotations

from typing import Any

from alarms.base import Compiled, Matcher, RuleContext, Watch, fmt_value, watches_from_json, watches_to_json
from alarms.directory import DeviceInfo
from alarms.spec import ScheduleSpec, SustainedRule
from hub.model import Event


class SustainedEval(Compiled):
    """Condition held for `for`: remember since when, fire a timer, clear with hysteresis."""

    def __init__(self, rule: SustainedRule, schedules: dict[str, ScheduleSpec]) -> None:
        super().__init__(rule, schedules, float(rule.for_))
        self.match = Matcher(rule.match)
        self.clear = Matcher(rule.clear) if rule.clear else None
        kinds = set(self.match.kinds or ()) | set(self.clear.kinds or () if self.clear else ())
        self.listens = frozenset(kinds) if self.match.kinds else None
        self.since: dict[str, Watch] = {}  # with the last matching value

    def on_event(self, ctx: RuleContext, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """Start, keep or break the condition."""
        if dev is None:
            return
        subject = event.device_id if self.by_device or rid is None else rid
        params = self.params(rid)
        if self.match.test(event, dev, params.threshold):
            watch = self.since.get(subject)
            if watch is None:
                self.since[subject] = Watch(t, event.site, rid, event.device_id, event.value)
                ctx.timers.push(t + params.duration_s, self.id, subject, t)
            else:
                watch.value = event.value
        elif self.clear is None or self.clear.test(event, dev, params.clear_at):
            self.since.pop(subject, None)
            ctx.clear(self, subject, event.ts)
        elif self.match.kinds is None or event.kind in self.match.kinds:
            self.since.pop(subject, None)  # between threshold and hysteresis: the condition broke, no clear

    def on_timer(self, ctx: RuleContext, subject: str, anchor: float, due: float) -> None:
        """Raise when the condition has held since the anchor.

        The watch ends with the timer: the next matching reading starts a new wait, so a condition that persists
        updates the alarm every `for`, and raises anew once the desk has closed it and the cooldown has passed."""
        self.raise_watched(
            ctx,
            self.since,
            subject,
            anchor,
            due,
            lambda watch, params, _dev: self.reason(
                minutes=round(params.duration_s / 60), value=fmt_value(watch.value)
            ),
        )

    def state_to_json(self) -> Any:
        """Conditions in progress."""
        return watches_to_json(self.since)

    def state_from_json(self, data: Any) -> None:
        """Restore conditions in progress."""
        self.since = watches_from_json(data)
