"""The engine's mutable state that must survive a restart: open alarms, cooldowns and the timer heap."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from hub.model import AlarmCategory, Severity


@dataclass(slots=True, kw_only=True)
class OpenAlarm:
    """An alarm the engine raised and the desk has not yet closed (CLEAR does not close it; CANCEL does)."""

    rule_id: str
    subject: str
    site: str
    category: AlarmCategory
    severity: Severity
    resident_id: str | None
    device_id: str | None
    opened_at: float
    count: int = 1
    unregistered: bool = False
    cleared: bool = False
    refs: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "rule_id": self.rule_id,
            "subject": self.subject,
            "site": self.site,
            "category": self.category.value,
            "severity": int(self.severity),
            "resident_id": self.resident_id,
            "device_id": self.device_id,
            "opened_at": self.opened_at,
            "count": self.count,
            "unregistered": self.unregistered,
            "cleared": self.cleared,
            "refs": sorted(self.refs),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OpenAlarm:
        """Inverse of `to_json`."""
        return cls(
            rule_id=str(data["rule_id"]),
            subject=str(data["subject"]),
            site=str(data["site"]),
            category=AlarmCategory(data["category"]),
            severity=Severity(int(data["severity"])),
            resident_id=data.get("resident_id"),
            device_id=data.get("device_id"),
            opened_at=float(data["opened_at"]),
            count=int(data.get("count", 1)),
            unregistered=bool(data.get("unregistered", False)),
            cleared=bool(data.get("cleared", False)),
            refs=set(data.get("refs", ())),
        )


# (due epoch seconds, sequence for a stable order, rule id, subject, anchor epoch seconds)
Timer = tuple[float, int, str, str, float]


class TimerHeap:
    """A min-heap of timers. Cancelled timers stay in the heap; their rule ignores them when the anchor is stale."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, rule_id: str, subject: str, anchor: float) -> None:
        """Schedule a timer."""
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, rule_id, subject, anchor))

    def next_due(self) -> float | None:
        """Epoch seconds of the earliest timer, None when empty."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, t: float) -> Timer | None:
        """The earliest timer due at or before `t`, removed; None when none is due."""
        if self._heap and self._heap[0][0] <= t:
            return heapq.heappop(self._heap)
        return None

    def to_json(self) -> list[Timer]:
        """The timers in heap order (immutable tuples, shared, not copied); `from_json` restores any order."""
        return list(self._heap)

    @classmethod
    def from_json(cls, data: list[list[Any]], known_rules: set[str]) -> TimerHeap:
        """Inverse of `to_json` (also of the sorted lists of older snapshots), dropping timers of rules that no longer
        exist."""
        heap = cls()
        # in their original order (due, then sequence), so timers due at the same time fire as they would have
        for due, _seq, rule_id, subject, anchor in sorted(data, key=lambda timer: (timer[0], timer[1])):
            if rule_id in known_rules:
                heap.push(float(due), str(rule_id), str(subject), float(anchor))
        return heap
