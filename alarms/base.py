"""What every compiled rule shares: matching, per-resident parameters, per-subject state and the context protocol.

Evaluators (one module per rule type) see the engine only through `RuleContext`, so this package has no import
circle: base <- one module per rule type <- registry <- engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from alarms.directory import DeviceInfo, ResidentProfile
from alarms.schedule import Schedule, compile_schedule
from alarms.spec import Match, Rule, ScheduleSpec
from hub.model import AlarmCategory, Event, EventKind, Severity

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from alarms.schedule import LocalClock
    from alarms.state import TimerHeap

_OPS = {
    "lt": lambda v, b: v < b,
    "le": lambda v, b: v <= b,
    "gt": lambda v, b: v > b,
    "ge": lambda v, b: v >= b,
    "eq": lambda v, b: v == b,
}


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


@dataclass(frozen=True, slots=True, kw_only=True)
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
        # a rule the pack leaves off is compiled only when a profile turns it on: off for everyone else
        self.defaults = Params(
            enabled=rule.enabled, threshold=None, clear_at=None, duration_s=duration_s, schedule=self.schedule
        )
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

    def on_event(self, ctx: RuleContext, event: Event, t: float, dev: DeviceInfo | None, rid: str | None) -> None:
        """React to an event of a kind this rule listens to."""

    def on_timer(self, ctx: RuleContext, subject: str, anchor: float, due: float) -> None:
        """A timer of this rule came due."""

    def arm(self, ctx: RuleContext, t: float) -> None:
        """Start timers for the current directory (new devices or residents), from time `t`."""

    def raise_watched(
        self,
        ctx: RuleContext,
        watches: dict[str, Watch],
        subject: str,
        anchor: float,
        due: float,
        reason: Callable[[Watch, Params, DeviceInfo | None], str],
    ) -> None:
        """A timer set for `watches[subject]` fell due: if that watch is still the one it was set for (`anchor`), it
        ends, and the rule raises (or updates) its alarm with `reason` when the resident and device may raise now."""
        watch = watches.get(subject)
        if watch is None or watch.since != anchor:
            return
        del watches[subject]
        dev = ctx.devices.get(watch.device_id) if watch.device_id else None
        params = self.params(watch.resident_id)
        if ctx.may_raise(self, watch.resident_id, dev, params):
            ctx.raise_or_update(
                self,
                subject,
                t=due,
                at=utc(due),
                where=watch.where,
                dev=dev,
                ref=None,
                reason=reason(watch, params, dev),
            )

    def state_to_json(self) -> Any:
        """Rule-specific state for the snapshot."""
        return None

    def state_from_json(self, data: Any) -> None:
        """Inverse of `state_to_json`."""


def utc(t: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(t, UTC)


def fmt_value(value: float | None) -> str:
    """A reading as a reason line shows it."""
    return "?" if value is None else f"{value:g}"


class Where(NamedTuple):
    """Where an alarm belongs: site, resident (None for a device subject or an unknown device) and device.

    A tuple, so a snapshot holds it as it is (immutable, encoded as an array) without copying.
    """

    site: str
    resident_id: str | None
    device_id: str | None


@dataclass(slots=True)
class Watch:
    """A condition a rule follows for one subject: since when (the timer's anchor), where, and the last value."""

    since: float
    site: str
    resident_id: str | None
    device_id: str | None
    value: float | None = None

    @property
    def where(self) -> Where:
        """Where an alarm for this condition belongs."""
        return Where(self.site, self.resident_id, self.device_id)

    def to_json(self) -> list[Any]:
        """`[since, site, resident, device, value]` (the snapshot's form)."""
        return [self.since, self.site, self.resident_id, self.device_id, self.value]

    @classmethod
    def from_json(cls, data: list[Any]) -> Watch:
        """Inverse of `to_json`; also reads the four-element form of older snapshots."""
        since, site, rid, device_id, *rest = data
        return cls(float(since), str(site), rid, device_id, rest[0] if rest else None)


def watches_to_json(state: dict[str, Watch]) -> dict[str, list[Any]]:
    """Per-subject conditions as a snapshot holds them: copies, so the snapshot owns nothing of the engine."""
    return {k: w.to_json() for k, w in state.items()}


def watches_from_json(data: Any) -> dict[str, Watch]:
    """Inverse of `watches_to_json` (an absent state is empty)."""
    return {str(k): Watch.from_json(v) for k, v in (data or {}).items()}


class RuleContext(Protocol):
    """What an evaluator may use of the engine: the inventory, timers, local clocks and the three alarm verbs."""

    @property
    def devices(self) -> Mapping[str, DeviceInfo]: ...
    @property
    def devices_by_resident(self) -> Mapping[str, list[DeviceInfo]]: ...
    @property
    def timers(self) -> TimerHeap: ...
    @property
    def offline_grace_s(self) -> float: ...
    @property
    def supervision_suspended(self) -> bool: ...
    @property
    def clock_s(self) -> float: ...
    def clock(self, site: str) -> LocalClock: ...
    def may_raise(self, rule: Compiled, rid: str | None, dev: DeviceInfo | None, params: Params) -> bool: ...
    def raise_or_update(
        self,
        rule: Compiled,
        subject: str,
        *,
        t: float,
        at: datetime,
        where: Where,
        dev: DeviceInfo | None,
        ref: str | None,
        reason: str,
    ) -> None: ...
    def clear(self, rule: Compiled, subject: str, at: datetime) -> None: ...
    def cancel(
        self,
        rule: Compiled,
        subject: str,
        at: datetime,
        ref: str | None,
        reason: str,
        device_id: str | None = None,
        *,
        unit_wide: bool = False,
        by_person: bool = False,
    ) -> None: ...
