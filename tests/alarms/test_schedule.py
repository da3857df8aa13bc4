"""Local schedules: weekdays across midnight, window boundaries through DST, in other zones too."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from alarms.schedule import LocalClock, compile_schedule
from tests.alarms.home import local

STOCKHOLM = LocalClock(ZoneInfo("Europe/Stockholm"))


@pytest.mark.parametrize(
    ("when", "active"),
    [
        ("2026-11-27 23:00", True),  # Friday night
        ("2026-11-28 03:00", True),  # still Friday's night, on Saturday morning
        ("2026-11-28 07:00", False),
        ("2026-11-28 23:00", False),  # Saturday night is not on the list
        ("2026-11-29 03:00", False),
        ("2026-11-26 03:00", False),  # Wednesday's night, on Thursday morning
    ],
)
def test_weekday_window_across_midnight(when: str, active: bool) -> None:
    """`days` names the day the window starts on."""
    friday_nights = compile_schedule("22:00", "07:00", ["fri"])
    assert friday_nights.active(STOCKHOLM, local(when).timestamp()) is active


@pytest.mark.parametrize(
    ("after", "start", "end"),
    [
        ("2026-10-24 12:00", "2026-10-24T20:00:00+00:00", "2026-10-25T06:00:00+00:00"),  # 10 real hours
        ("2026-03-28 12:00", "2026-03-28T21:00:00+00:00", "2026-03-29T05:00:00+00:00"),  # 8 real hours
        ("2026-11-27 03:00", "2026-11-26T21:00:00+00:00", "2026-11-27T06:00:00+00:00"),  # inside a window
    ],
)
def test_next_window_through_dst(after: str, start: str, end: str) -> None:
    """Night 22:00–07:00 in UTC on the DST nights and an ordinary one."""
    night = compile_schedule("22:00", "07:00")
    got = night.next_window(STOCKHOLM, local(after).timestamp())
    assert [datetime.fromtimestamp(t, UTC).isoformat() for t in got] == [start, end]


def test_other_zone_with_half_hour_offset() -> None:
    """A site in another zone uses its own wall clock (Kolkata is UTC+05:30)."""
    kolkata = LocalClock(ZoneInfo("Asia/Kolkata"))
    night = compile_schedule("22:00", "07:00")
    assert night.active(kolkata, local("2026-11-26 22:30", "Asia/Kolkata").timestamp())
    assert not night.active(kolkata, local("2026-11-26 21:59", "Asia/Kolkata").timestamp())


def test_all_day_and_late_evening_windows() -> None:
    """00:00–24:00 is always on; 22:00–24:00 ends at midnight."""
    always = compile_schedule("00:00", "24:00")
    evening = compile_schedule("22:00", "24:00")
    assert always.active(STOCKHOLM, local("2026-11-26 13:37").timestamp())
    assert evening.active(STOCKHOLM, local("2026-11-26 23:59").timestamp())
    assert not evening.active(STOCKHOLM, local("2026-11-27 00:00").timestamp())
