"""Scoring simulated check-ins: a task on time, late or missing, and physical visits made when (and only when) due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bench.checkin_score import score_checkins

T0 = datetime(2026, 11, 26, 22, 45, tzinfo=UTC)  # a 23:00 ±15 min slot opens


def slot(sid: str, expect: str, reason: str = "") -> dict[str, str]:
    return {
        "checkin": sid, "site": "s", "resident_id": sid.split("-2026")[0][3:], "due": (T0 + timedelta(minutes=15)).isoformat(),
        "window_start": T0.isoformat(), "window_end": (T0 + timedelta(minutes=30)).isoformat(), "expect": expect,
        "reason": reason,
    }  # fmt: skip


def task(sid: str, mode: str, created_s: float, reason: str = "", parent: str | None = None) -> dict[str, Any]:
    return {"id": sid, "mode": mode, "reason": reason, "created_at": T0 + timedelta(seconds=created_s),
            "parent_id": parent}  # fmt: skip


def test_tasks_in_their_window_with_the_right_mode_score_full() -> None:
    truth = [slot("ci-r-1-20261126-2300", "camera"), slot("ci-r-2-20261126-2300", "physical", "camera_down")]
    tasks = [task("ci-r-1-20261126-2300", "camera", 3), task("ci-r-2-20261126-2300", "physical", 4, "camera_down")]
    result = score_checkins(truth, tasks)
    assert result["checkins_on_time"] == 1.0
    assert result["physical_fallback_recall"] == 1.0
    assert result["checkins_wrong_mode"] == 0
    assert result["checkin_problems"] == []


def test_a_late_or_missing_task_is_not_on_time_and_says_what_was_seen() -> None:
    truth = [slot("ci-r-1-20261126-2300", "camera"), slot("ci-r-2-20261126-2300", "camera")]
    result = score_checkins(truth, [task("ci-r-1-20261126-2300", "camera", 1900)])  # window is 1800 s
    assert result["checkins_on_time"] == 0.0
    assert result["checkins_late"] == 1
    assert result["checkins_missing"] == 1
    assert result["checkins_created"] == 1
    assert result["checkin_problems"] == [
        {"checkin": "ci-r-1-20261126-2300", "expect": "camera", "seen": "camera task created +1900 s from the window's start"},
        {"checkin": "ci-r-2-20261126-2300", "expect": "camera", "seen": "no task"},
    ]  # fmt: skip


def test_a_missed_fallback_and_an_unneeded_visit_are_both_counted() -> None:
    truth = [slot("ci-r-1-20261126-2300", "physical", "camera_down"), slot("ci-r-2-20261126-2300", "camera")]
    tasks = [task("ci-r-1-20261126-2300", "camera", 5), task("ci-r-2-20261126-2300", "physical", 5, "camera_down")]
    result = score_checkins(truth, tasks)
    assert result["checkins_on_time"] == 1.0  # on time, but the wrong mode
    assert result["physical_fallbacks_due"] == 1
    assert result["physical_fallbacks_made"] == 0
    assert result["physical_fallback_recall"] == 0.0
    assert result["physical_visits_not_needed"] == 1
    assert result["checkins_wrong_mode"] == 2


def test_follow_up_tasks_are_ignored_and_unplanned_ones_counted() -> None:
    truth = [slot("ci-r-1-20261126-2300", "camera")]
    tasks = [
        task("ci-r-1-20261126-2300", "camera", 0),
        task("ci-r-1-20261126-2300-2", "camera", 600, "not_visible", parent="ci-r-1-20261126-2300"),
        task("ci-r-9-20261126-2300", "camera", 0),
    ]
    result = score_checkins(truth, tasks)
    assert result["checkins_on_time"] == 1.0
    assert result["checkins_unplanned"] == 1
    # created_at as ISO text or POSIX seconds scores the same
    as_text = [dict(t, created_at=t["created_at"].isoformat()) for t in tasks]
    as_seconds = [dict(t, created_at=t["created_at"].timestamp()) for t in tasks]
    assert score_checkins(truth, as_text) == result == score_checkins(truth, as_seconds)
    assert score_checkins([], [])["checkins_on_time"] is None
