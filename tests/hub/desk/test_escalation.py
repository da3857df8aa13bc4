"""Night hours are times of day: a wrong one is refused when the hub starts, never on the first escalation."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from hub.desk.escalation import is_night
from hub.settings import DeskSettings, SettingsError, load_settings


@pytest.mark.parametrize(
    ("start", "end", "utc_hour", "night"),
    [
        ("22:00", "07:00", 1, True),  # 02:00 in Stockholm
        ("22:00", "07:00", 12, False),
        ("22:00", "06:30", 5, True),  # 06:00 local, before 06:30
        ("00:00", "23:59", 12, True),
    ],
)
def test_night_hours_are_read_as_times_of_day(start: str, end: str, utc_hour: int, night: bool) -> None:
    settings = DeskSettings(night_start=start, night_end=end)  # type: ignore[arg-type]
    assert isinstance(settings.night_end, time)
    at = datetime(2026, 11, 26, utc_hour, 0, tzinfo=UTC)
    assert is_night(settings, at, "Europe/Stockholm") is night


def test_a_night_end_of_24_00_is_refused_at_start_with_the_setting_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAKA_DESK__NIGHT_END", "24:00")
    with pytest.raises(SettingsError, match=r"setting desk\.night_end: .*hour value is outside"):
        load_settings()
