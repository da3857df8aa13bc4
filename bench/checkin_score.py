"""Scoring for simulated night check-ins: the hub's `checkins` table against the simulator's check-in truth.

A planned slot is done on time when the hub created its task (`ci-{resident}-{night}-{HHMM}`) inside the slot's
window; it has the right mode when it is a physical visit exactly when the truth says the camera was down at the slot
(`expect: physical`), or the slot itself is a visit. Follow-up tasks (second looks, visits after a look) are the
patrol's doing, not the plan's, and are not scored here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

MATCH_SLACK_S = 5.0  # the hub's tick may stamp a task a few simulated seconds before the window (clock interpolation)
MAX_LISTED = 20


def _ts(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


def score_checkins(truth: Sequence[Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """On-time share, physical fallbacks made when due and wrongly, and what went wrong (the first few, listed).

    `tasks` are rows of the hub's `checkins` table with at least id, mode, reason and created_at (a datetime, ISO
    text or POSIX seconds); `truth` lines come from `Simulation.checkin_truth()`.
    """
    by_id = {str(t["id"]): t for t in tasks}
    on_time = late = 0
    fallbacks_due = fallbacks_made = unneeded_visits = wrong_mode = 0
    problems: list[dict[str, Any]] = []
    for line in truth:
        sid = str(line["checkin"])
        task = by_id.get(sid)
        expect = str(line["expect"])
        camera_down = line.get("reason") == "camera_down"
        fallbacks_due += camera_down
        if task is None:
            problems.append({"checkin": sid, "expect": expect, "seen": "no task"})
            continue
        created = _ts(task["created_at"])
        w0, w1 = _ts(line["window_start"]), _ts(line["window_end"])
        timely = w0 - MATCH_SLACK_S <= created <= w1
        on_time += timely
        late += created > w1
        mode = str(task["mode"])
        if camera_down and mode == "physical":
            fallbacks_made += 1
        if mode != expect:
            wrong_mode += 1
            unneeded_visits += mode == "physical"
        if not timely or mode != expect:
            when = "in the window" if timely else f"{created - w0:+.0f} s from the window's start"
            problems.append({"checkin": sid, "expect": expect, "seen": f"{mode} task created {when}"})
    planned = len(truth)
    truth_ids = {str(line["checkin"]) for line in truth}
    unplanned = [t for t in tasks if str(t["id"]) not in truth_ids and not t.get("parent_id")]
    return {
        "checkins_planned": planned,
        "checkins_created": planned - sum(p["seen"] == "no task" for p in problems),
        "checkins_on_time": round(on_time / planned, 4) if planned else None,
        "checkins_late": late,
        "checkins_missing": sum(p["seen"] == "no task" for p in problems),
        "checkins_wrong_mode": wrong_mode,
        "physical_fallbacks_due": fallbacks_due,
        "physical_fallbacks_made": fallbacks_made,
        "physical_fallback_recall": round(fallbacks_made / fallbacks_due, 4) if fallbacks_due else None,
        "physical_visits_not_needed": unneeded_visits,
        "checkins_unplanned": len(unplanned),
        "checkin_problems": problems[:MAX_LISTED],
    }
