"""Simulated night check-ins: which residents have a plan, the plan file `vaka checkin plan` reads, cameras that are
down at a slot now and then, and the ground truth of what the hub should create for each slot.

A resident with a plan is looked in on at 23:00 and 02:00 by camera (±15 min) and visited at 05:00 (±20 min). With
`camera_failure_rate` a camera slot finds the camera silent: it stops reporting long enough before the slot's window
opens for `device_silent` to be raised (an incident in the alarm truth too), so the hub must make that slot a physical
visit at once. Camera slots are reserved for the camera: no other incident of that camera comes near them, so the
truth says exactly when the camera is down. Everything derives from the seed; with `checkin_share` 0 nothing changes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from hub.checkins.plan import PlanFile, Slot
from hub.checkins.schedule import slot_time, task_id
from hub.simulation.config import SimConfig
from hub.simulation.devices import SimResident
from hub.simulation.incidents import WARMUP_S, Incident, IncidentPlan
from hub.simulation.timeline import MINUTE, care_days, overlaps

SLOTS = (
    Slot(at="23:00", window_min=15, mode="camera"),
    Slot(at="02:00", window_min=15, mode="camera"),
    Slot(at="05:00", window_min=20, mode="physical"),
)
# a camera slot is kept free of other incidents of its camera from this long before the window opens to its end
RESERVE_BEFORE_S = 45 * MINUTE


@dataclass(frozen=True, slots=True)
class CheckinTruth:
    """One planned slot of one night: the task the hub must create in the window, camera or physical."""

    id: str
    site: str
    resident_id: str
    due: float
    window_start: float
    window_end: float
    expect: str  # "camera" | "physical"
    reason: str  # "" | "camera_down"

    def truth(self) -> dict[str, str]:
        """The ground-truth line for this slot."""
        return {
            "checkin": self.id,
            "site": self.site,
            "resident_id": self.resident_id,
            "due": _iso(self.due),
            "window_start": _iso(self.window_start),
            "window_end": _iso(self.window_end),
            "expect": self.expect,
            "reason": self.reason,
        }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


@dataclass(slots=True)
class CheckinSim:
    """The check-in residents of a run, their plans, and the truth; `reserve` runs before incidents are planned."""

    config: SimConfig
    residents: list[SimResident]
    start: float
    end: float
    planned: list[SimResident] = field(default_factory=list)
    travel_minutes: dict[str, int] = field(default_factory=dict)
    slots: list[CheckinTruth] = field(default_factory=list)

    def __post_init__(self) -> None:
        seed, share = self.config.seed, self.config.checkin_share
        for res in self.residents:
            rng = random.Random(f"{seed}:{res.id}:checkin")
            if share > 0 and rng.random() < share and "camera" in res.devices:
                self.planned.append(res)
                self.travel_minutes[res.id] = rng.randint(4, 25)

    def reserve(self, plan: IncidentPlan) -> None:
        """Reserve each camera slot for its camera, and make some cameras silent over their slot (with the truth)."""
        zone, seed, site = self.config.zone, self.config.seed, self.config.site
        for day in care_days(self.start, self.end, zone):
            for res in self.planned:
                camera = res.devices["camera"]
                for slot in SLOTS:
                    due = slot_time(day.day, slot, zone).timestamp()
                    half = slot.window_min * MINUTE
                    w0, w1 = due - half, due + half
                    if w0 < self.start + WARMUP_S or w1 > self.end:
                        continue
                    sid = task_id(res.id, day.day, slot)
                    expect, reason = slot.mode, ""
                    if slot.mode == "camera":
                        supervision_s = camera.kind.supervision_interval_s
                        rng = random.Random(f"{seed}:{sid}:camera")
                        if rng.random() < self.config.camera_failure_rate:
                            silent_from = round(w0 - supervision_s - rng.uniform(10, 25) * MINUTE, 3)
                            silent_until = w1 + rng.uniform(5, 20) * MINUTE
                            by = silent_from + supervision_s + self.config.grace_s
                            spans = plan.mutes.get(camera.id, [])
                            if silent_from >= self.start + WARMUP_S and not overlaps(spans, silent_from, silent_until):
                                plan.mutes.setdefault(camera.id, []).append((silent_from, silent_until))
                                plan.busy.setdefault(camera.id, []).append((silent_from, silent_until))
                                plan.incidents.append(
                                    Incident("device_silent", res.id, camera.id, silent_from, "device_silent", by)
                                )
                                expect, reason = "physical", "camera_down"
                        plan.busy.setdefault(camera.id, []).append((w0 - supervision_s - RESERVE_BEFORE_S, w1))
                    self.slots.append(CheckinTruth(sid, site, res.id, due, w0, w1, expect, reason))
        self.slots.sort(key=lambda s: (s.due, s.id))

    def plan_file(self) -> dict[str, Any]:
        """The plans as `vaka checkin plan FILE` reads them (validated against PlanFile)."""
        plans = [
            {
                "resident": res.id,
                "consent_ref": f"simulated consent {res.id}",
                "care_decision_ref": f"simulated care decision {res.id}",
                "camera": res.devices["camera"].id,
                "travel_minutes": self.travel_minutes[res.id],
                "slots": [{"at": f"{s.at:%H:%M}", "window_min": s.window_min, "mode": s.mode} for s in SLOTS],
            }
            for res in self.planned
        ]
        data = {"plans": plans}
        PlanFile.model_validate(data)
        return data

    def truth(self) -> list[dict[str, str]]:
        """One line per planned slot in the run, in due order."""
        return [s.truth() for s in self.slots]


def write_checkin_plans(data: dict[str, Any], path: Path) -> None:
    """Write a plan file (from `Simulation.checkin_plans()`) as YAML."""
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
