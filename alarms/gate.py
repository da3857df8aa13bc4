"""The gate in front of the rule engine: old news, replays and re-deliveries never change a live alarm.

Pure: events, their receive time and the limits in, a verdict out. The hub asks the gate about every event before
the engine sees it, live and when it replays the store after a restart.

- Order: each device keeps a high-water mark `(ts, seq)` per family of kinds that change the same state (a press
  and its cancel; battery readings; door open and closed). An event at the mark is a re-delivery (DUPLICATE: it
  reaches no rule); an event below it is older than the state it would change (STALE).
- Freshness: an event that arrives later (`received_at - ts`) than the freshness window of a rule it feeds is LATE:
  the engine hands it only to the rules whose window it is within (absence rules take any age: life is life).
- STALE events are stored and counted by the hub, and reach the engine only as a sign of life (a heartbeat at
  their own time): they keep supervision honest, they raise, clear and cancel nothing.
- Time: an event dated a little ahead of the hub's clock is evaluated at the hub's clock, so no timer fires before
  its time (events further ahead never get here: ingest rejects them as `future_timestamp`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from alarms.rules import RuleSet
from alarms.spec import AbsenceRule, Match, Rule
from hub.model import AlarmCategory, AlarmDecision, Event, EventKind

if TYPE_CHECKING:
    from alarms.engine import Engine

# kinds that change the same piece of a device's state; anything not listed is a family of its own
_FAMILIES: dict[EventKind, str] = {
    EventKind.FALL_DETECTED: "fall",
    EventKind.FALL_CONFIRMED: "fall",
    EventKind.FALL_CANCELLED: "fall",
    EventKind.ALARM_BUTTON: "button",
    EventKind.ALARM_BUTTON_CANCEL: "button",
    EventKind.BED_EXIT: "bed",
    EventKind.BED_ENTRY: "bed",
    EventKind.DOOR_OPEN: "door",
    EventKind.DOOR_CLOSED: "door",
    EventKind.DEVICE_ONLINE: "status",
    EventKind.DEVICE_OFFLINE: "status",
}

CARE_FRESHNESS_S = 300.0
TECHNICAL_FRESHNESS_S = 3600.0


class Verdict(enum.Enum):
    """What the gate decided about one event."""

    APPLY = "apply"
    DUPLICATE = "duplicate"
    STALE = "stale"
    LATE = "late"


@dataclass(frozen=True, slots=True)
class GateLimits:
    """Freshness windows: per category, and per rule where a rule needs its own (seconds)."""

    care_freshness_s: float = CARE_FRESHNESS_S
    technical_freshness_s: float = TECHNICAL_FRESHNESS_S
    rule_freshness_s: Mapping[str, float] = dataclasses.field(default_factory=dict)


def family(kind: EventKind) -> str:
    """The family of kinds an event's order is judged within."""
    return _FAMILIES.get(kind, kind.value)


def _match_kinds(match: Match | None) -> frozenset[EventKind] | None:
    """The kinds a match listens to (None: every kind)."""
    if match is None:
        return frozenset()
    return frozenset(match.kinds) if match.kinds else None


def _rule_kinds(rule: Rule) -> frozenset[EventKind] | None:
    kinds: set[EventKind] = set()
    for name in ("match", "clear", "cancel", "first", "then"):
        if not hasattr(rule, name):
            continue
        found = _match_kinds(getattr(rule, name))
        if found is None:
            return None
        kinds |= found
    return frozenset(kinds)


def rule_freshness(rules: RuleSet, limits: GateLimits) -> dict[str, float]:
    """Each rule's freshness window; absence rules take any age (an old sign of life or activity is still one)."""
    out: dict[str, float] = {}
    for rule in rules.live:
        if isinstance(rule, AbsenceRule):
            out[rule.id] = math.inf
            continue
        default = limits.care_freshness_s if rule.category is AlarmCategory.CARE else limits.technical_freshness_s
        out[rule.id] = float(limits.rule_freshness_s.get(rule.id, default))
    return out


def freshness_by_kind(rules: RuleSet, limits: GateLimits) -> dict[EventKind, float]:
    """For each kind, the shortest freshness window of the rules it feeds: past it, some rule ignores the event."""
    windows = rule_freshness(rules, limits)
    out: dict[EventKind, float] = {}
    for rule in rules.live:
        window = windows[rule.id]
        if math.isinf(window):
            continue
        kinds = _rule_kinds(rule)
        for kind in EventKind if kinds is None else kinds:
            out[kind] = min(out.get(kind, window), window)
    return out


class Gate:
    """Per-device high-water marks and freshness windows; see the module docstring."""

    def __init__(self, freshness_s: Mapping[EventKind, float]) -> None:
        self.freshness_s = dict(freshness_s)
        self.marks: dict[str, tuple[float, int]] = {}  # "device\x1ffamily" -> (ts, seq)
        self.counts: dict[Verdict, int] = dict.fromkeys(Verdict, 0)

    def admit(self, event: Event, received_at: datetime) -> Verdict:
        """Judge one event and move the device's high-water mark (an event is judged once: call it once)."""
        verdict = self._judge(event, received_at)
        self.counts[verdict] += 1
        return verdict

    def _judge(self, event: Event, received_at: datetime) -> Verdict:
        t = event.ts.timestamp()
        key = f"{event.device_id}\x1f{family(event.kind)}"
        mark = self.marks.get(key)
        here = (t, event.seq)
        if mark is not None:
            if here == mark:
                return Verdict.DUPLICATE
            if here < mark:
                return Verdict.STALE
        self.marks[key] = here
        window = self.freshness_s.get(event.kind)
        if window is not None and received_at.timestamp() - t > window:
            return Verdict.LATE
        return Verdict.APPLY

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready marks (they survive a restart with the engine's snapshot)."""
        return {"marks": dict(self.marks)}  # (time, seq) tuples: immutable, shared; one C-level copy of the dict

    def restore(self, data: Mapping[str, Any] | None) -> None:
        """Inverse of `snapshot`."""
        marks = (data or {}).get("marks", {})
        self.marks = {str(k): (float(v[0]), int(v[1])) for k, v in marks.items()}


def as_seen(event: Event, verdict: Verdict, now: datetime) -> Event | None:
    """The event as the engine should see it: itself, a sign of life only, or nothing (a re-delivery).

    An event dated ahead of the hub's clock (within the accepted skew) is evaluated at the hub's clock.
    """
    if verdict is Verdict.DUPLICATE:
        return None
    if verdict is Verdict.STALE:
        event = Event(ts=event.ts, site=event.site, device_id=event.device_id, kind=EventKind.HEARTBEAT, seq=event.seq)
    if event.ts > now:
        event = dataclasses.replace(event, ts=now)
    return event


def feed(gate: Gate, engine: Engine, event: Event, received_at: datetime, now: datetime) -> list[AlarmDecision]:
    """One event through the gate into the engine; the engine's decisions (none for a re-delivery)."""
    verdict = gate.admit(event, received_at)
    seen = as_seen(event, verdict, now)
    if seen is None:
        return []
    late_s = (received_at - event.ts).total_seconds()
    return engine.feed(seen, now, late_s=late_s if late_s > 0 else 0.0)
