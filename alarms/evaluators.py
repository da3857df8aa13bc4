"""Compiled rules: one small evaluator class per rule type, called by the engine only for events of their kinds."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alarms.directory import DeviceInfo, ResidentProfile
from alarms.schedule import Schedule, compile_schedule
from alarms.spec import (
    AbsenceRule,
    CountRule,
    InstantRule,
    Match,
    Rule,
    ScheduleSpec,
    SequenceRule,
    SustainedRule,
)
from hub.model import AlarmCategory, Event, EventKind, Severity

if TYPE_CHECKING:
    from alarms.engine import Engine

_OPS = {
    "lt": lambda v, b: v < b,
    "le": lambda v, b: v <= b,
    "gt": lambda v, b: v > b,
    "ge": lambda v, b: v >= b,
    "eq": lambda v, b: v == b,
}


def _lists_to_json(state: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Per-subject lists as a snapshot shares them: copies, so the snapshot owns nothing of the engine."""
    return {k: list(v) for k, v in state.items()}


def _lists_from_json(data: Any) -> dict[str, list[Any]]:
    """Inverse of `_lists_to_json` (an absent state is empty)."""
    return {str(k): list(v) for k, v in (data or {}).items()}


class Matcher:
    """A compiled `Match`: kinds, device kinds, one value comparison and attribute equalities."""

    __slots__ = ("attrs", "bound", "device_kinds", "kinds", "op")

    def __init__(self, match: Match) -> None:
        self.kinds = frozenset(match.kinds) if match.kinds else None
        self.device_kinds = frozenset(match.device_kinds) if match.device_kinds else None
        self.op, self.bound = match.value.operator if match.value else ("", 0.0)
        self.attrs = tuple(match.attrs.items())

    def test(self, event: Event, dev: DeviceInfo | None, bound: float | None = None) -> bool:
        """Whether the event matches; `bound` replaces the value threshold (a resident's override)."""
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.device_kinds is not None and (dev is None or dev.kind not in self.device_kinds):
            return False
        if self.op:
            if event.value is None:
                return False
            if not _OPS[self.op](event.value, self.bound if bound is None else bound):
                return False
        return not self.attrs or all(event.attrs.get(key) == expected for key, expected in self.attrs)


@dataclass(frozen=True, slots=True)
class Params:
    """A rule's effective settings for one resident (pack values merged with the resident's overrides)."""

    enabled: bool
    threshold: float | None
    clear_at: float | None
    duration_s: float
    schedule: Schedule | None


class Compiled:
    """Common part of every compiled rule: identity, severity, schedule, kinds it listens to and overrides."""

    listens: frozenset[EventKind] | None  # None: every event kind

    def __init__(self, rule: Rule, schedules: dict[str, ScheduleSpec], duration_s: float) -> None:
        self.rule = rule
        self.id = rule.id
        self.category = rule.category
        self.care = rule.category is AlarmCategory.CARE
        self.severity = rule.severity_level
        self.safety_severity = Severity[rule.safety_severity.upper()] if rule.safety_severity else self.severity
        self.by_device = rule.subject == "device"
        self.cooldown_s = float(rule.cooldown)
        self.night_schedule = rule.schedule == "night"
        spec = schedules[rule.schedule] if isinstance(rule.schedule, str) else rule.schedule
        self.schedule = compile_schedule(spec.start, spec.end, list(spec.days) if spec.days else None) if spec else None
        self.defaults = Params(True, None, None, duration_s, self.schedule)
        self.overrides: dict[str, Params] = {}
        self.reason_has_fields = "{" in rule.reason

    def set_profiles(self, residents: dict[str, ResidentProfile]) -> None:
        """Merge residents' overrides and night hours into per-resident Params."""
        self.overrides = {}
        for rid, profile in residents.items():
            override = profile.overrides.get(self.id)
            schedule = self.schedule
            if self.night_schedule and profile.night:
                schedule = compile_schedule(*profile.night)
            if override is None and schedule is self.schedule:
                continue
            base = self.defaults
            if override is not None and override.schedule is not None:
                schedule = compile_schedule(*override.schedule)
            self.overrides[rid] = Params(
                enabled=override.enabled if override and override.enabled is not None else base.enabled,
                threshold=override.threshold if override else None,
                clear_at=override.clear_at if override else None,
                duration_s=override.duration_s if override and override.duration_s else base.duration_s,
                schedule=schedule,
            )

    def params(self, rid: str | None) -> Params:
        """Effective settings for a resident."""
        if rid is None or not self.overrides:
            return self.defaults
        return self.overrides.get(rid, self.defaults)

    def reason(self, **fields: Any) -> str:
        """The nurse-facing reason with placeholders filled in."""
        return self.rule.reason.format_map(fields) if self.reason_has_fields else self.rule.reason

    def on_event(self, engine: Engine, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """React to an event of a kind this rule listens to."""

    def on_timer(self, engine: Engine, subject: str, anchor: float, due: float) -> None:
        """A timer of this rule came due."""

    def arm(self, engine: Engine, t: float) -> None:
        """Start timers for the current directory (new devices or residents), from time `t`."""

    def state_to_json(self) -> Any:
        """Rule-specific state for the snapshot."""
        return None

    def state_from_json(self, data: Any) -> None:
        """Inverse of `state_to_json`."""


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


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
        # subject -> [since, site, resident, device]; raised when the schedule begins
        self.waiting: dict[str, list[Any]] = {}

    def on_event(self, engine: Engine, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """Raise, clear or cancel."""
        if dev is None:
            if not self.open_to_unregistered:
                return
            rid = None  # unknown device: keyed by the device, whatever the event claims
        subject = event.device_id if self.by_device or rid is None else rid
        params = self.params(rid)
        if self.match.test(event, dev, params.threshold):
            if params.schedule is not None and not params.schedule.active(engine.clock(event.site), t):
                if self.clear is not None and subject not in self.waiting:
                    start, _ = params.schedule.next_window(engine.clock(event.site), t)
                    self.waiting[subject] = [t, event.site, rid, event.device_id]
                    engine.timers.push(start, self.id, subject, t)
                return
            if engine.may_raise(self, rid, dev, params):
                engine.raise_or_update(
                    self,
                    subject,
                    t,
                    event.ts,
                    event.site,
                    rid,
                    event.device_id,
                    dev,
                    event.ref,
                    self.reason(value=_fmt(event.value), device_kind=dev.kind if dev else "device"),
                )
        elif self.clear is not None and self.clear.test(event, dev, params.clear_at):
            if self.waiting:
                self.waiting.pop(subject, None)
            engine.clear(self, subject, event.ts)
        elif self.cancel is not None and self.cancel.test(event, dev):
            engine.cancel(self, subject, event.ts, event.ref, self.cancel_reason)

    def on_timer(self, engine: Engine, subject: str, anchor: float, due: float) -> None:
        """The schedule began while the condition still held: raise now."""
        entry = self.waiting.get(subject)
        if entry is None or entry[0] != anchor:
            return
        del self.waiting[subject]
        _, site, rid, device_id = entry
        dev = engine.devices.get(device_id)
        params = self.params(rid)
        if engine.may_raise(self, rid, dev, params):
            reason = self.reason(value="?", device_kind=dev.kind if dev else "device")
            engine.raise_or_update(self, subject, due, engine.dt(due), site, rid, device_id, dev, None, reason)

    def state_to_json(self) -> Any:
        """Conditions waiting for their schedule."""
        return _lists_to_json(self.waiting)

    def state_from_json(self, data: Any) -> None:
        """Restore conditions waiting for their schedule."""
        self.waiting = _lists_from_json(data)


class SustainedEval(Compiled):
    """Condition held for `for`: remember since when, fire a timer, clear with hysteresis."""

    def __init__(self, rule: SustainedRule, schedules: dict[str, ScheduleSpec]) -> None:
        super().__init__(rule, schedules, float(rule.for_))
        self.match = Matcher(rule.match)
        self.clear = Matcher(rule.clear) if rule.clear else None
        kinds = set(self.match.kinds or ()) | set(self.clear.kinds or () if self.clear else ())
        self.listens = frozenset(kinds) if self.match.kinds else None
        # subject -> [since, site, resident, device, last value]
        self.since: dict[str, list[Any]] = {}

    def on_event(self, engine: Engine, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """Start, keep or break the condition."""
        if dev is None:
            return
        subject = event.device_id if self.by_device or rid is None else rid
        params = self.params(rid)
        if self.match.test(event, dev, params.threshold):
            entry = self.since.get(subject)
            if entry is None:
                self.since[subject] = [t, event.site, rid, event.device_id, event.value]
                engine.timers.push(t + params.duration_s, self.id, subject, t)
            else:
                entry[4] = event.value
        elif self.clear is None or self.clear.test(event, dev, params.clear_at):
            self.since.pop(subject, None)
            engine.clear(self, subject, event.ts)
        elif self.match.kinds is None or event.kind in self.match.kinds:
            self.since.pop(subject, None)  # between threshold and hysteresis: the condition broke, no clear

    def on_timer(self, engine: Engine, subject: str, anchor: float, due: float) -> None:
        """Raise when the condition has held since the anchor."""
        entry = self.since.get(subject)
        if entry is None or entry[0] != anchor:
            return
        # the next matching reading starts a new wait: a condition that persists updates the alarm every `for`,
        # and raises anew once the desk has closed it and the cooldown has passed
        del self.since[subject]
        _, site, rid, device_id, value = entry
        dev = engine.devices.get(device_id)
        params = self.params(rid)
        if engine.may_raise(self, rid, dev, params):
            engine.raise_or_update(
                self,
                subject,
                due,
                engine.dt(due),
                site,
                rid,
                device_id,
                dev,
                None,
                self.reason(minutes=round(params.duration_s / 60), value=_fmt(value)),
            )

    def state_to_json(self) -> Any:
        """Conditions in progress."""
        return _lists_to_json(self.since)

    def state_from_json(self, data: Any) -> None:
        """Restore conditions in progress."""
        self.since = _lists_from_json(data)


class SequenceEval(Compiled):
    """`first` not followed by `then` within the duration."""

    def __init__(self, rule: SequenceRule, schedules: dict[str, ScheduleSpec]) -> None:
        super().__init__(rule, schedules, float(rule.within))
        self.first = Matcher(rule.first)
        self.then = Matcher(rule.then)
        both = (self.first.kinds, self.then.kinds)
        self.listens = frozenset(both[0] | both[1]) if both[0] and both[1] else None
        # subject -> [anchor, site, resident, device]
        self.pending: dict[str, list[Any]] = {}

    def on_event(self, engine: Engine, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """Open or close the window."""
        if dev is None:
            return
        subject = event.device_id if self.by_device or rid is None else rid
        if self.then.test(event, dev):
            self.pending.pop(subject, None)
            engine.clear(self, subject, event.ts)
            return
        if subject in self.pending or not self.first.test(event, dev):
            return
        params = self.params(rid)
        if params.schedule is not None and not params.schedule.active(engine.clock(event.site), t):
            return
        if engine.may_raise(self, rid, dev, params):
            self.pending[subject] = [t, event.site, rid, event.device_id]
            engine.timers.push(t + params.duration_s, self.id, subject, t)

    def on_timer(self, engine: Engine, subject: str, anchor: float, due: float) -> None:
        """Raise when `then` did not come."""
        entry = self.pending.get(subject)
        if entry is None or entry[0] != anchor:
            return
        del self.pending[subject]
        _, site, rid, device_id = entry
        dev = engine.devices.get(device_id)
        params = self.params(rid)
        if engine.may_raise(self, rid, dev, params):
            engine.raise_or_update(
                self,
                subject,
                due,
                engine.dt(due),
                site,
                rid,
                device_id,
                dev,
                None,
                self.reason(minutes=round(params.duration_s / 60)),
            )

    def state_to_json(self) -> Any:
        """Open windows."""
        return _lists_to_json(self.pending)

    def state_from_json(self, data: Any) -> None:
        """Restore open windows."""
        self.pending = _lists_from_json(data)


class CountEval(Compiled):
    """At least N matching events within W."""

    def __init__(self, rule: CountRule, schedules: dict[str, ScheduleSpec]) -> None:
        super().__init__(rule, schedules, float(rule.within))
        self.match = Matcher(rule.match)
        self.count = rule.count
        self.listens = self.match.kinds
        self.seen: dict[str, deque[float]] = {}

    def on_event(self, engine: Engine, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """Count and raise at N."""
        if dev is None or not self.match.test(event, dev):
            return
        subject = event.device_id if self.by_device or rid is None else rid
        params = self.params(rid)
        if params.schedule is not None and not params.schedule.active(engine.clock(event.site), t):
            return
        times = self.seen.get(subject)
        if times is None:
            times = self.seen[subject] = deque()
        times.append(t)
        while times[0] <= t - params.duration_s:
            times.popleft()
        if len(times) >= self.count and engine.may_raise(self, rid, dev, params):
            engine.raise_or_update(
                self,
                subject,
                t,
                event.ts,
                event.site,
                rid,
                event.device_id,
                dev,
                event.ref,
                self.reason(count=len(times)),
            )

    def state_to_json(self) -> Any:
        """Recent matching times per subject."""
        return {k: list(v) for k, v in self.seen.items() if v}

    def state_from_json(self, data: Any) -> None:
        """Restore recent matching times."""
        self.seen = {str(k): deque(float(x) for x in v) for k, v in (data or {}).items()}


def compile_rule(rule: Rule, schedules: dict[str, ScheduleSpec]) -> Compiled:
    """The evaluator for one validated rule."""
    from alarms.absence import DailyAbsenceEval, SilenceEval
    from alarms.windows import BaselineEval

    if isinstance(rule, InstantRule):
        return InstantEval(rule, schedules)
    if isinstance(rule, SustainedRule):
        return SustainedEval(rule, schedules)
    if isinstance(rule, SequenceRule):
        return SequenceEval(rule, schedules)
    if isinstance(rule, CountRule):
        return CountEval(rule, schedules)
    if isinstance(rule, AbsenceRule):
        return DailyAbsenceEval(rule, schedules) if rule.window else SilenceEval(rule, schedules)
    return BaselineEval(rule, schedules)
