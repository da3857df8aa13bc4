"""Check-in plans and their schedule: pure, clock passed in, DST-safe."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub.checkins.plan import Plan, PlanError, Slot, load_plans
from hub.checkins.schedule import due, slot_time

STOCKHOLM = ZoneInfo("Europe/Stockholm")
PLAN = Plan(
    resident="r1", consent_ref="consent-1", care_decision_ref="beslut-7", camera="cam1",
    slots=[Slot(at=time(23, 0)), Slot(at=time(2, 0)), Slot(at=time(5, 0), mode="physical")],
    opt_out_nights=[date(2026, 12, 24)],
)  # fmt: skip


def test_a_slot_after_midnight_belongs_to_the_night_before() -> None:
    assert slot_time(date(2026, 11, 26), Slot(at=time(2, 0)), STOCKHOLM) == datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    assert slot_time(date(2026, 11, 26), Slot(at=time(23, 0)), STOCKHOLM) == datetime(2026, 11, 26, 22, 0, tzinfo=UTC)


def test_slots_keep_the_wall_clock_across_dst() -> None:
    # the night of 24 October 2026 ends in winter time: 05:00 local is 04:00 UTC, 23:00 the evening before 21:00 UTC
    assert slot_time(date(2026, 10, 24), Slot(at=time(5, 0)), STOCKHOLM) == datetime(2026, 10, 25, 4, 0, tzinfo=UTC)
    assert slot_time(date(2026, 10, 24), Slot(at=time(23, 0)), STOCKHOLM) == datetime(2026, 10, 24, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 26, 21, 44, tzinfo=UTC), []),  # 22:44 local: 23:00 ±15 not yet open
        (datetime(2026, 11, 26, 21, 45, tzinfo=UTC), ["ci-r1-20261126-2300"]),
        (datetime(2026, 11, 27, 1, 10, tzinfo=UTC), ["ci-r1-20261126-0200"]),  # 02:10 local, the night of the 26th
        (datetime(2026, 11, 27, 1, 15, tzinfo=UTC), []),  # window closed
        (datetime(2026, 12, 24, 22, 0, tzinfo=UTC), []),  # Christmas Eve: opted out
    ],
)
def test_due(now: datetime, expected: list[str]) -> None:
    assert [d.id for d in due(PLAN, now, STOCKHOLM)] == expected


def test_plan_mistakes_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "plans.yaml"
    path.write_text(
        "plans:\n"
        "  - resident: r1\n"
        "    consent_ref: c1\n"
        "    care_decision_ref: d1\n"
        "    slots:\n"
        "      - at: '23:00'\n"
        "      - at: '25:00'\n"
        "        mode: drone\n"
    )
    with pytest.raises(PlanError) as err:
        load_plans(path)
    text = str(err.value)
    assert f"{path}:7: plans.0.slots.1.at:" in text
    assert f"{path}:8: plans.0.slots.1.mode:" in text


def test_camera_slots_need_a_camera(tmp_path: Path) -> None:
    path = tmp_path / "plans.yaml"
    path.write_text(
        "plans:\n  - resident: r1\n    consent_ref: c\n    care_decision_ref: d\n    slots: [{at: '02:00'}]\n"
    )
    with pytest.raises(PlanError, match="camera slots need `camera`"):
        load_plans(path)
