"""Building blocks of a simulated timeline: one message to send, and a resident's day in local time."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.simulation.devices import SimDevice

TELEMETRY_KINDS = frozenset({"temperature", "humidity", "battery", "heartbeat", "motion", "robot_state"})
MINUTE = 60.0
HOUR = 3600.0


@dataclass(slots=True)
class Msg:
    """One message a device will send at simulated time `t` (POSIX seconds); channel follows from kind."""

    t: float
    device: SimDevice
    kind: str
    value: float | None = None
    unit: str | None = None
    attrs: dict[str, Any] | None = None
    ref: str | None = None
    status: str | None = None  # "online"/"offline": a retained status message instead of an event

    @property
    def channel(self) -> str:
        """The topic's last level: event, telemetry or status."""
        if self.status is not None:
            return "status"
        return "telemetry" if self.kind in TELEMETRY_KINDS else "event"


@dataclass(slots=True)
class Timeline:
    """Messages collected in any order; `sorted()` returns them in time order (stable for equal times)."""

    msgs: list[Msg] = field(default_factory=list)

    def add(self, t: float, device: SimDevice, kind: str, value: float | None = None, **kw: Any) -> None:
        """Append one message."""
        self.msgs.append(Msg(round(t, 3), device, kind, value, **kw))

    def extend(self, other: Timeline) -> None:
        """Append all of another timeline's messages."""
        self.msgs.extend(other.msgs)

    def sorted(self) -> list[Msg]:
        """The messages in time order."""
        return sorted(self.msgs, key=_time_of)


def _time_of(msg: Msg) -> float:
    return msg.t


@dataclass(frozen=True, slots=True)
class CareDay:
    """A resident's day from local noon to the next local noon: afternoon, evening, night, morning."""

    day: date
    zone: ZoneInfo

    @property
    def start(self) -> float:
        """Local noon of `day`, as POSIX seconds."""
        return self.at(12)

    @property
    def end(self) -> float:
        """Local noon of the next day."""
        return self.at(12, next_day=True)

    def at(self, hour: int, minute: int = 0, *, next_day: bool = False) -> float:
        """POSIX seconds of a local wall time on `day` (or the next day); DST-safe."""
        d = self.day + timedelta(days=1) if next_day else self.day
        return datetime.combine(d, time(hour, minute), tzinfo=self.zone).timestamp()

    def evening(self, hour: int, minute: int = 0) -> float:
        """A local time on the evening side: hours 12–23 today, 0–11 tomorrow."""
        return self.at(hour, minute, next_day=hour < 12)

    def uniform(self, rng: random.Random, a: float, b: float) -> float:
        """A uniform time in [a, b), or a when the range is empty."""
        return a if b <= a else rng.uniform(a, b)


@dataclass(frozen=True, slots=True)
class Skeleton:
    """When a resident goes to bed and gets up on one care day."""

    bedtime: float
    wake: float
    restless: bool


def skeleton_for(seed: int, resident_id: str, day: CareDay) -> Skeleton:
    """The fixed frame of a resident's night: bedtime 21:30–23:00, wake 07:01–09:15, 15 % restless."""
    rng = random.Random(f"{seed}:{resident_id}:{day.day.isoformat()}:skeleton")
    bedtime = rng.uniform(day.evening(21, 30), day.evening(23, 0))
    wake = rng.uniform(day.evening(7, 1), day.evening(9, 15))
    return Skeleton(bedtime, wake, rng.random() < 0.15)


def overlaps(spans: list[tuple[float, float]], a: float, b: float, margin_s: float = 0.0) -> bool:
    """True if [a, b) comes within `margin_s` of any span."""
    return any(a < y + margin_s and x - margin_s < b for x, y in spans)


def care_days(start: float, end: float, zone: ZoneInfo) -> list[CareDay]:
    """The care days (noon to noon) that overlap [start, end)."""
    first = (datetime.fromtimestamp(start, zone) - timedelta(hours=12)).date()
    days: list[CareDay] = []
    d = first
    while True:
        day = CareDay(d, zone)
        if day.start >= end:
            return days
        if day.end > start:
            days.append(day)
        d += timedelta(days=1)
