"""Daily schedules in a site's local wall-clock time, evaluated on epoch seconds without building datetimes.

A schedule is a window `start`–`end` of local wall-clock time that may cross midnight, starting on chosen weekdays.
Wall-clock semantics: on the night clocks go back, 22:00–07:00 lasts ten real hours; in March it lasts eight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_S = 86400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS_MASK = 0b1111111
# every real zone changes offset on a quarter-hour boundary, so the offset is constant within one
_QUARTER_S = 900


def parse_hhmm(text: str) -> int:
    """Seconds after local midnight for "HH:MM" (00:00–24:00); ValueError otherwise."""
    hours_text, sep, minutes_text = text.partition(":")
    if not sep or not hours_text.isdigit() or not minutes_text.isdigit() or len(minutes_text) != 2:
        msg = f"{text!r} is not a time of day like 22:00"
        raise ValueError(msg)
    hours, minutes = int(hours_text), int(minutes_text)
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        msg = f"{text!r} is not a time of day like 22:00"
        raise ValueError(msg)
    return hours * 3600 + minutes * 60


class LocalClock:
    """Turns epoch seconds into local seconds for one zone, caching the offset per quarter hour."""

    __slots__ = ("_cache", "zone")

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._cache: dict[int, int] = {}

    def offset_s(self, t: float) -> int:
        """UTC offset in seconds at epoch time `t`."""
        quarter = int(t // _QUARTER_S)
        off = self._cache.get(quarter)
        if off is None:
            if len(self._cache) > 8192:
                self._cache.clear()
            delta = datetime.fromtimestamp(quarter * _QUARTER_S, UTC).astimezone(self.zone).utcoffset()
            off = int(delta.total_seconds()) if delta is not None else 0
            self._cache[quarter] = off
        return off

    def local_s(self, t: float) -> float:
        """Local wall-clock seconds since 1970-01-01 00:00 local."""
        return t + self.offset_s(t)

    def to_epoch(self, day: date, seconds_of_day: int) -> float:
        """Epoch seconds of a local wall-clock moment (first occurrence when ambiguous)."""
        # aware + timedelta is wall-clock arithmetic; timestamp() then applies the offset valid at that local time
        moment = datetime.combine(day, time(0), tzinfo=self.zone) + timedelta(seconds=seconds_of_day)
        return moment.timestamp()


@dataclass(frozen=True, slots=True)
class Schedule:
    """A compiled local window; `days_mask` bit 0 is Monday, for the day the window starts."""

    start_s: int
    end_s: int
    days_mask: int = ALL_DAYS_MASK

    @property
    def never_active(self) -> bool:
        """True when the window has no length or no day."""
        return self.start_s == self.end_s or self.days_mask == 0

    def active_local(self, local_s: float) -> bool:
        """Whether local wall-clock seconds fall in the window."""
        day = int(local_s // DAY_S)
        sod = local_s - day * DAY_S
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday
        if self.start_s < self.end_s:
            return self.start_s <= sod < self.end_s and bool(self.days_mask >> weekday & 1)
        if sod >= self.start_s:
            return bool(self.days_mask >> weekday & 1)
        return sod < self.end_s and bool(self.days_mask >> ((weekday - 1) % 7) & 1)

    def active(self, clock: LocalClock, t: float) -> bool:
        """Whether epoch time `t` falls in the window in the clock's zone."""
        return self.active_local(clock.local_s(t))

    def next_window(self, clock: LocalClock, after: float) -> tuple[float, float]:
        """(start, end) epoch seconds of the first window whose end is after `after`."""
        local_day = date(1970, 1, 1) + timedelta(days=int(clock.local_s(after) // DAY_S))
        end_offset_days = 0 if self.start_s < self.end_s else 1
        for back in range(-1, 9):
            day = local_day + timedelta(days=back)
            if not self.days_mask >> day.weekday() & 1:
                continue
            start = clock.to_epoch(day, self.start_s)
            end = clock.to_epoch(day + timedelta(days=end_offset_days), self.end_s)
            if end > after:
                return start, end
        msg = "schedule is never active"
        raise ValueError(msg)


def compile_schedule(start: str, end: str, days: Sequence[str] | None = None) -> Schedule:
    """Build a Schedule from "HH:MM" strings and weekday names (mon…sun)."""
    mask = ALL_DAYS_MASK if days is None else 0
    for name in days or ():
        mask |= 1 << WEEKDAYS.index(name)
    return Schedule(parse_hhmm(start), parse_hhmm(end), mask)
