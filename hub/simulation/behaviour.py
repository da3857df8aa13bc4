"""A resident's ordinary day: afternoon, evening routine, a night with bathroom visits, morning activity.

Ordinary behaviour never trips the default rule pack: night bed exits return within 15 min, the entrance door
opens only between 08:00 and 21:00, bathroom visits last under 15 min, everyone is up between 07:01 and 09:15.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hub.simulation.devices import SimResident
from hub.simulation.timeline import MINUTE, CareDay, Skeleton, Timeline, overlaps

NIGHT_VISITS_MEAN = 1.2


@dataclass(slots=True)
class DayPlan:
    """What incidents impose on a care day: their messages, the time they occupy, and changes to the routine."""

    timeline: Timeline = field(default_factory=Timeline)
    occupied: list[tuple[float, float]] = field(default_factory=list)
    wake: float | None = None  # a later wake-up (no morning activity)
    quiet_morning: bool = False  # no night visits after 05:30 and nothing before the wake-up
    missed_doses: set[str] = field(default_factory=set)


def dose_times(day: CareDay, wake: float) -> list[tuple[str, float]]:
    """A medication robot's doses on a care day: 13, 18, 21 and, in the morning, 08:00 or after the wake-up."""
    return [
        ("13:00", day.at(13)),
        ("18:00", day.at(18)),
        ("21:00", day.at(21)),
        ("08:00", max(day.evening(8), wake + 10 * MINUTE)),
    ]


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson-distributed count (Knuth; small means only)."""
    if mean <= 0:
        return 0
    limit, k, p = pow(2.718281828459045, -mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class _Day:
    """Builds one ordinary care day; episodes never overlap each other or incident spans."""

    def __init__(self, res: SimResident, day: CareDay, sk: Skeleton, plan: DayPlan, rng: random.Random) -> None:
        self.res, self.day, self.plan, self.rng = res, day, plan, rng
        self.dev = res.devices
        self.bedtime = sk.bedtime
        self.wake = plan.wake if plan.wake is not None else sk.wake
        self.restless = sk.restless
        self.tl = Timeline()
        self.busy: list[tuple[float, float]] = list(plan.occupied)

    def place(self, a: float, b: float, margin_s: float = 3 * MINUTE) -> bool:
        """Reserve [a, b) if free."""
        if overlaps(self.busy, a, b, margin_s):
            return False
        self.busy.append((a, b))
        return True

    def bathroom_visit(self, t: float, duration_s: float) -> None:
        self.tl.add(t, self.dev["motion_bathroom"], "motion", 1)
        self.tl.add(t + 5, self.dev["presence_bathroom"], "presence", 1)
        self.tl.add(t + duration_s, self.dev["presence_bathroom"], "presence", 0)
        self.tl.add(t + duration_s + 20, self.dev["motion_hall"], "motion", 1)

    def night_visit(self, t: float) -> None:
        rng = self.rng
        in_bath = rng.uniform(2, 8) * MINUTE
        self.tl.add(t, self.dev["bed_sensor"], "bed_exit")
        self.tl.add(t + rng.uniform(5, 30), self.dev["motion_bedroom"], "motion", 1)
        self.bathroom_visit(t + MINUTE, in_bath)
        back = t + MINUTE + in_bath + rng.uniform(1, 3) * MINUTE
        self.tl.add(back - 20, self.dev["motion_bedroom"], "motion", 1)
        self.tl.add(back, self.dev["bed_sensor"], "bed_entry")

    def restless_turn(self, t: float) -> None:
        self.tl.add(t, self.dev["bed_sensor"], "bed_exit")
        self.tl.add(t + 15, self.dev["motion_bedroom"], "motion", 1)
        self.tl.add(t + self.rng.uniform(1, 4) * MINUTE, self.dev["bed_sensor"], "bed_entry")

    def door_visit(self, t: float, duration_s: float) -> None:
        door, hall = self.dev["door_entrance"], self.dev["motion_hall"]
        self.tl.add(t, door, "door_open")
        self.tl.add(t + self.rng.uniform(10, 40), door, "door_closed")
        self.tl.add(t + 45, hall, "motion", 1)
        self.tl.add(t + duration_s - 30, hall, "motion", 1)
        self.tl.add(t + duration_s, door, "door_open")
        self.tl.add(t + duration_s + self.rng.uniform(10, 30), door, "door_closed")

    def active_period(self, a: float, b: float, door_a: float, door_b: float) -> None:
        """Moving about between a and b: motion, camera sightings, bathroom visits, a home-care visit."""
        rng = self.rng
        t = a + rng.expovariate(1 / (10 * MINUTE))
        while t < b:
            if not overlaps(self.plan.occupied, t, t, MINUTE):
                room = "motion_hall" if rng.random() < 0.55 else "motion_bedroom"
                self.tl.add(t, self.dev[room], "motion", 1)
                if rng.random() < 0.1:
                    self.tl.add(t + 2, self.dev["camera"], "camera_person_detected", attrs={"zone": "living"})
            t += rng.expovariate(1 / (10 * MINUTE))
        t = a + rng.expovariate(1 / (150 * MINUTE))
        while t < b - 15 * MINUTE:
            duration_s = rng.uniform(3, 12) * MINUTE
            if self.place(t, t + duration_s + MINUTE):
                self.bathroom_visit(t, duration_s)
            t += rng.expovariate(1 / (150 * MINUTE))
        door_a, door_b = max(a, door_a), min(b, door_b) - 40 * MINUTE
        if door_b > door_a and rng.random() < 0.7:
            t = rng.uniform(door_a, door_b)
            duration_s = rng.uniform(10, 30) * MINUTE
            if self.place(t, t + duration_s + MINUTE):
                self.door_visit(t, duration_s)

    def doses(self) -> None:
        robot = self.dev.get("medication_robot")
        if robot is None:
            return
        for label, t in dose_times(self.day, self.wake):
            if label in self.plan.missed_doses:
                continue
            taken = t + self.rng.uniform(1, 6) * MINUTE
            self.tl.add(t, robot, "robot_task", attrs={"task": "dose", "status": "started", "dose": label})
            self.tl.add(t + 1, robot, "robot_state", attrs={"state": "dispensing"})
            self.tl.add(taken, robot, "medication_taken", attrs={"dose": label})
            self.tl.add(taken + 1, robot, "robot_task", attrs={"task": "dose", "status": "finished", "dose": label})
            self.tl.add(taken + 2, robot, "robot_state", attrs={"state": "idle"})

    def night(self) -> None:
        rng, day = self.rng, self.day
        bed = self.dev["bed_sensor"]
        routine = self.bedtime - rng.uniform(12, 25) * MINUTE
        if self.place(routine, self.bedtime):
            self.bathroom_visit(routine, rng.uniform(3, 8) * MINUTE)
        self.tl.add(self.bedtime - 40, self.dev["motion_bedroom"], "motion", 1)
        self.tl.add(self.bedtime, bed, "bed_entry")
        first = self.bedtime + 20 * MINUTE
        last = (day.evening(5, 30) if self.plan.quiet_morning else self.wake) - 25 * MINUTE
        visits = poisson(rng, NIGHT_VISITS_MEAN) + (3 if self.restless else 0)
        for i in range(visits):
            for _ in range(20):
                t = day.uniform(rng, first, last)
                short = self.restless and i >= visits - 3
                if self.place(t, t + (5 if short else 16) * MINUTE, 5 * MINUTE):
                    (self.restless_turn if short else self.night_visit)(t)
                    break
        if self.res.number % 2 == 0:  # digital night check-ins by camera for half the residents
            for hour, minute in ((0, 30), (4, 0)):
                t = day.evening(hour, minute)
                self.tl.add(t, self.dev["camera"], "camera_check_in", attrs={"outcome": "ok", "duration_s": 30})

    def morning(self) -> None:
        rng, w = self.rng, self.wake
        self.tl.add(w, self.dev["bed_sensor"], "bed_exit")
        self.tl.add(w + 20, self.dev["motion_bedroom"], "motion", 1)
        visit = w + rng.uniform(2, 5) * MINUTE
        duration_s = rng.uniform(4, 10) * MINUTE
        if self.place(visit, visit + duration_s + MINUTE):
            self.bathroom_visit(visit, duration_s)
        self.tl.add(w + 15 * MINUTE, self.dev["camera"], "camera_person_detected", attrs={"zone": "living"})

    def build(self) -> Timeline:
        day, rng = self.day, self.rng
        self.night()
        self.morning()
        self.doses()
        if rng.random() < 0.25:
            nap = rng.uniform(day.at(13, 30), day.at(14, 30))
            if self.place(nap, nap + 50 * MINUTE):
                self.tl.add(nap, self.dev["bed_sensor"], "bed_entry")
                self.tl.add(nap + rng.uniform(20, 50) * MINUTE, self.dev["bed_sensor"], "bed_exit")
        self.active_period(day.start, self.bedtime - 30 * MINUTE, day.start, day.at(20, 30))
        self.active_period(self.wake + 25 * MINUTE, day.end - 5 * MINUTE, day.evening(8, 30), day.end)
        return self.tl


def ordinary_day(res: SimResident, day: CareDay, sk: Skeleton, plan: DayPlan, seed: int) -> Timeline:
    """The ordinary messages of one resident on one care day, around the incidents in `plan`."""
    rng = random.Random(f"{seed}:{res.id}:{day.day.isoformat()}:behaviour")
    return _Day(res, day, sk, plan, rng).build()
