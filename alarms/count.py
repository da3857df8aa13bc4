"""Count rules: at least N matching events within W raise."""

from __future__ import annotations

from collections import deque
from typing import Any

from alarms.base import Compiled, Matcher, RuleContext, Where
from alarms.directory import DeviceInfo
from alarms.spec import CountRule, ScheduleSpec
from hub.model import Event


class CountEval(Compiled):
    """At least N matching events within W."""

    def __init__(self, rule: CountRule, schedules: dict[str, ScheduleSpec]) -> None:
        super().__init__(rule, schedules, float(rule.within))
        self.match = Matcher(rule.match)
        self.count = rule.count
        self.listens = self.match.kinds
        self.seen: dict[str, deque[float]] = {}

    def on_event(self, ctx: RuleContext, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """Count and raise at N."""
        if dev is None or not self.match.test(event, dev):
            return
        subject = event.device_id if self.by_device or rid is None else rid
        params = self.params(rid)
        if params.schedule is not None and not params.schedule.active(ctx.clock(event.site), t):
            return
        times = self.seen.get(subject)
        if times is None:
            times = self.seen[subject] = deque()
        times.append(t)
        while times[0] <= t - params.duration_s:
            times.popleft()
        if len(times) >= self.count and ctx.may_raise(self, rid, dev, params):
            ctx.raise_or_update(
                self,
                subject,
                t=t,
                at=event.ts,
                where=Where(event.site, rid, event.device_id),
                dev=dev,
                ref=event.ref,
                reason=self.reason(count=len(times)),
            )

    def state_to_json(self) -> Any:
        """Recent matching times per subject."""
        return {k: list(v) for k, v in self.seen.items() if v}

    def state_from_json(self, data: Any) -> None:
        """Restore recent matching times."""
        self.seen = {str(k): deque(float(x) for x in v) for k, v in (data or {}).items()}
