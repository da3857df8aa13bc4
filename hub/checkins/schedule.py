"""Which check-in tasks are due, and when: pure, time passed in, DST-safe (slots are wall-clock times of the site)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hub.checkins.plan import Plan, Slot

# a slot before noon belongs to the night that began the evening before
NOON_HOUR = 12


@dataclass(frozen=True, slots=True)
class DueSlot:
    """One planned check-in of one night."""

    id: str
    resident: str
    night: date
    slot: Slot
    due_at: datetime
    window_start: datetime
    window_end: datetime


def slot_time(night: date, slot: Slot, zone: ZoneInfo) -> datetime:
    """The instant of `slot` in the night that began on `night` (the evening's date)."""
    day = night if slot.at.hour >= NOON_HOUR else night + timedelta(days=1)
    # fold=0: in the autumn's repeated hour the first 02:30; in the spring's missing hour zoneinfo moves it forward
    local = datetime.combine(day, slot.at, tzinfo=zone)
    return local.astimezone(UTC)


def task_id(resident: str, night: date, slot: Slot) -> str:
    """A stable id: the same slot of the same night is the same task, also after a restart."""
    return f"ci-{resident}-{night:%Y%m%d}-{slot.at:%H%M}"


def due(plan: Plan, now: datetime, zone: ZoneInfo) -> list[DueSlot]:
    """The plan's tasks whose window has opened by `now` and not yet closed, for tonight and last night."""
    local_today = now.astimezone(zone).date()
    out = []
    for night in (local_today - timedelta(days=1), local_today):
        if night in plan.opt_out_nights:
            continue
        for slot in plan.slots:
            at = slot_time(night, slot, zone)
            half = timedelta(minutes=slot.window_min)
            if at - half <= now < at + half:
                out.append(
                    DueSlot(task_id(plan.resident, night, slot), plan.resident, night, slot, at, at - half, at + half)
                )
    return out
