"""Incidents injected into the simulated days, and the ground truth of what the hub should raise for each.

Each incident is built so that only its own rule should fire: a resident who falls at night is helped back to bed
within 20 min, a wandering resident comes back in before the bed-exit rule would trip, a camera is back online
before its supervision interval runs out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hub.simulation.behaviour import DayPlan, dose_times, poisson
from hub.simulation.config import SimConfig
from hub.simulation.devices import SimDevice, SimResident
from hub.simulation.timeline import (
    HOUR,
    MINUTE,
    CareDay,
    Skeleton,
    Timeline,
    care_days,
    overlaps,
    skeleton_for,
)

WARMUP_S = 20 * MINUTE
SILENT_KINDS = (
    "motion_bedroom", "motion_bathroom", "motion_hall", "door_entrance", "water_sensor", "smoke_detector",
    "alarm_button", "fall_radar", "thermometer", "camera", "medication_robot",
)  # fmt: skip
BATTERY_REPORT_S = HOUR


@dataclass(frozen=True, slots=True)
class Incident:
    """One injected incident: `expected` is the rule id that must raise by `must_raise_by`, or None."""

    incident: str
    resident_id: str
    device_id: str
    at: float
    expected: str | None
    must_raise_by: float

    def truth(self, site: str) -> dict[str, str | None]:
        """The ground-truth line for this incident."""
        return {
            "incident": self.incident,
            "site": site,
            "resident_id": self.resident_id,
            "device_id": self.device_id,
            "at": _iso(self.at),
            "expected": self.expected,
            "must_raise_by": _iso(self.must_raise_by),
        }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


@dataclass(slots=True)
class _Ctx:
    res: SimResident
    day: CareDay
    sk: Skeleton
    plan: DayPlan
    rng: random.Random


# a builder returns (incident, its messages, span it occupies the resident or None, what to change once accepted)
# or None when it does not fit
_Effect = Callable[[], None] | None
_Built = tuple[Incident, Timeline, tuple[float, float] | None, _Effect]


@dataclass(slots=True)
class IncidentPlan:
    """All incidents of a run, planned up front: day plans, muted devices, battery failures, the truth."""

    config: SimConfig
    start: float
    end: float
    days: dict[tuple[str, str], DayPlan] = field(default_factory=dict)
    mutes: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # only status passes
    quiet_thermometers: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    # device id -> (time it first reports < 15 %, time the battery is replaced)
    battery_failures: dict[str, tuple[float, float]] = field(default_factory=dict)
    incidents: list[Incident] = field(default_factory=list)
    busy: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def plan_day(self, res: SimResident, day: CareDay) -> None:
        """Draw and place the incidents of one resident's care day."""
        seed = self.config.seed
        rng = random.Random(f"{seed}:{res.id}:{day.day.isoformat()}:incidents")
        plan = DayPlan()
        ctx = _Ctx(res, day, skeleton_for(seed, res.id, day), plan, rng)
        rates = self.config.rates
        builders: list[tuple[float, Callable[[_Ctx], _Built | None]]] = [
            (rates.no_morning_activity, self._no_morning_activity),
            (rates.bed_exits_no_return, self._bed_exit_no_return),
            (rates.wandering, self._wandering),
            (rates.falls, self._fall),
            (rates.long_bathroom_visits, self._long_bathroom_visit),
            (rates.cancelled_falls, self._cancelled_fall),
            (rates.alarm_buttons, self._single("alarm_button", "alarm_button", "alarm_button")),
            (rates.water_leaks, self._single("water_leak", "water_sensor", "water_leak")),
            (rates.smoke, self._single("smoke", "smoke_detector", "smoke")),
            (rates.missed_medication, self._missed_medication),
            (rates.low_temperature, self._low_temperature),
            (rates.temperature_blips, self._temperature_blip),
            (rates.camera_offline, self._camera_offline),
            (rates.silent_devices, self._silent_device),
            (rates.low_batteries, self._low_battery),
        ]
        for rate, build in builders:
            for _ in range(poisson(rng, rate)):
                for _attempt in range(10):
                    built = build(ctx)
                    if built is not None and self._accept(ctx, *built):
                        break
        if plan.timeline.msgs or plan.wake is not None or plan.missed_doses:
            self.days[(res.id, day.day.isoformat())] = plan

    def _accept(
        self, ctx: _Ctx, incident: Incident, tl: Timeline, span: tuple[float, float] | None, effect: _Effect
    ) -> bool:
        times = [m.t for m in tl.msgs] or [incident.at]
        first, last = min(times), max(times)
        if first < self.start + WARMUP_S or incident.must_raise_by > self.end or last >= ctx.day.end - MINUTE:
            return False
        if first < ctx.day.start:
            return False
        if span is not None and overlaps(ctx.plan.occupied, *span, 20 * MINUTE):
            return False
        used: dict[str, tuple[float, float]] = {}
        for m in tl.msgs:
            a, b = used.get(m.device.id, (m.t, m.t))
            used[m.device.id] = (min(a, m.t), max(b, m.t))
        used.setdefault(incident.device_id, (incident.at, incident.must_raise_by))
        for dev_id, (a, b) in used.items():
            if overlaps(self.busy.get(dev_id, []), a, b, 10 * MINUTE):
                return False
            if overlaps(self.mutes.get(dev_id, []), a, b, 10 * MINUTE):
                return False
        for dev_id, (a, b) in used.items():
            self.busy.setdefault(dev_id, []).append((a, b))
        if span is not None:
            ctx.plan.occupied.append(span)
        ctx.plan.timeline.extend(tl)
        self.incidents.append(incident)
        if effect is not None:
            effect()
        return True

    def _window(self, ctx: _Ctx, a: float, b: float) -> float:
        return ctx.day.uniform(ctx.rng, max(a, ctx.day.start + MINUTE), min(b, ctx.day.end - 2 * HOUR))

    def _awake_time(self, ctx: _Ctx) -> float:
        """A time the resident is up: afternoon or late morning."""
        wake = ctx.plan.wake or ctx.sk.wake
        if ctx.rng.random() < 0.6:
            return ctx.day.uniform(ctx.rng, ctx.day.start + 10 * MINUTE, ctx.sk.bedtime - HOUR)
        return ctx.day.uniform(ctx.rng, wake + 40 * MINUTE, ctx.day.end - 40 * MINUTE)

    def _incident(self, ctx: _Ctx, name: str, device: SimDevice, at: float, rule: str | None, by: float) -> Incident:
        return Incident(name, ctx.res.id, device.id, round(at, 3), rule, round(by + self.config.grace_s, 3))

    # --- care incidents --------------------------------------------------------------------------------------

    def _no_morning_activity(self, ctx: _Ctx) -> _Built | None:
        if ctx.res.has_robot or ctx.plan.wake is not None:
            return None
        day, bed = ctx.day, ctx.res.devices["bed_sensor"]
        at = day.evening(10)
        incident = self._incident(ctx, "no_morning_activity", bed, at, "no_morning_activity", at)
        if at < self.start + WARMUP_S or incident.must_raise_by > self.end:
            return None
        wake = day.uniform(ctx.rng, day.evening(10, 20), day.evening(11))

        def effect() -> None:
            ctx.plan.wake = wake
            ctx.plan.quiet_morning = True

        return incident, Timeline(), (day.evening(5, 30), wake), effect

    def _bed_exit_no_return(self, ctx: _Ctx) -> _Built | None:
        day, rng, dev = ctx.day, ctx.rng, ctx.res.devices
        t = day.uniform(rng, max(ctx.sk.bedtime + 30 * MINUTE, day.evening(22, 30)), day.evening(5))
        away_s = rng.uniform(35, 60) * MINUTE
        tl = Timeline()
        tl.add(t, dev["bed_sensor"], "bed_exit")
        tl.add(t + 30, dev["motion_bedroom"], "motion", 1)
        tl.add(t + 5 * MINUTE, dev["camera"], "camera_person_detected", attrs={"zone": "living"})
        s = t + 60
        while s < t + away_s - MINUTE:
            tl.add(s, dev["motion_hall"], "motion", 1)
            s += rng.uniform(5, 10) * MINUTE
        tl.add(t + away_s - 30, dev["motion_bedroom"], "motion", 1)
        tl.add(t + away_s, dev["bed_sensor"], "bed_entry")
        incident = self._incident(
            ctx, "bed_exit_no_return", dev["bed_sensor"], t, "bed_exit_no_return", t + 20 * MINUTE
        )
        return incident, tl, (t, t + away_s), None

    def _wandering(self, ctx: _Ctx) -> _Built | None:
        day, rng, dev = ctx.day, ctx.rng, ctx.res.devices
        t = day.uniform(rng, max(ctx.sk.bedtime + 30 * MINUTE, day.evening(23)), day.evening(5))
        door, hall = dev["door_entrance"], dev["motion_hall"]
        out = t + 2 * MINUTE
        back = out + rng.uniform(7, 10) * MINUTE
        tl = Timeline()
        tl.add(t, dev["bed_sensor"], "bed_exit")
        tl.add(t + 20, dev["motion_bedroom"], "motion", 1)
        tl.add(t + MINUTE, hall, "motion", 1)
        tl.add(out, door, "door_open")
        tl.add(out + 30, door, "door_closed")
        tl.add(back, door, "door_open")
        tl.add(back + 30, door, "door_closed")
        tl.add(back + 60, hall, "motion", 1)
        tl.add(back + 2 * MINUTE, dev["motion_bedroom"], "motion", 1)
        tl.add(back + rng.uniform(2.5, 4) * MINUTE, dev["bed_sensor"], "bed_entry")
        incident = self._incident(ctx, "wandering", door, out, "entrance_door_night", out)
        return incident, tl, (t, back + 5 * MINUTE), None

    def _fall(self, ctx: _Ctx) -> _Built | None:
        rng, dev = ctx.rng, ctx.res.devices
        radar, tl = dev["fall_radar"], Timeline()
        ref = f"{radar.id}-{rng.getrandbits(32):08x}"
        at_night = rng.random() < 0.5
        if at_night:  # at night, on the way to the bathroom; helped back to bed within 20 min
            wake = ctx.plan.wake or ctx.sk.wake
            t = ctx.day.uniform(rng, ctx.sk.bedtime + 30 * MINUTE, min(wake, ctx.day.evening(5, 30)) - 45 * MINUTE)
            fall = t + rng.uniform(1.5, 3) * MINUTE
            tl.add(t, dev["bed_sensor"], "bed_exit")
            tl.add(t + 20, dev["motion_bedroom"], "motion", 1)
            tl.add(t + 60, dev["motion_bathroom"], "motion", 1)
            tl.add(t + 65, dev["presence_bathroom"], "presence", 1)
            span = (t, fall + 15 * MINUTE)
        else:
            fall = self._awake_time(ctx)
            tl.add(fall - 30, dev["motion_hall"], "motion", 1)
            span = (fall - 2 * MINUTE, fall + 15 * MINUTE)
        confirmed = fall + rng.uniform(20, 60)
        tl.add(fall, radar, "fall_detected", 1, ref=ref, attrs={"posture": "lying"})
        tl.add(confirmed, radar, "fall_confirmed", 1, ref=ref, attrs={"posture": "lying"})
        tl.add(fall + rng.uniform(9, 11) * MINUTE, dev["motion_hall"], "motion", 1)
        if at_night:
            tl.add(fall + 12 * MINUTE, dev["presence_bathroom"], "presence", 0)
            tl.add(fall + 12.5 * MINUTE, dev["motion_bedroom"], "motion", 1)
            tl.add(fall + 13 * MINUTE, dev["bed_sensor"], "bed_entry")
        return self._incident(ctx, "fall", radar, fall, "fall", confirmed), tl, span, None

    def _cancelled_fall(self, ctx: _Ctx) -> _Built | None:
        radar, rng = ctx.res.devices["fall_radar"], ctx.rng
        t = self._window(ctx, ctx.day.start, ctx.day.end)
        cancelled = t + rng.uniform(5, 30)
        ref = f"{radar.id}-{rng.getrandbits(32):08x}"
        tl = Timeline()
        tl.add(t, radar, "fall_detected", 1, ref=ref, attrs={"posture": "lying"})
        tl.add(cancelled, radar, "fall_cancelled", 0, ref=ref, attrs={"reason": "person_moved"})
        return self._incident(ctx, "fall_cancelled", radar, t, None, cancelled), tl, None, None

    def _long_bathroom_visit(self, ctx: _Ctx) -> _Built | None:
        dev, rng = ctx.res.devices, ctx.rng
        t = self._awake_time(ctx)
        stay_s = rng.uniform(50, 70) * MINUTE
        presence = dev["presence_bathroom"]
        tl = Timeline()
        tl.add(t - 30, dev["motion_hall"], "motion", 1)
        tl.add(t, dev["motion_bathroom"], "motion", 1)
        tl.add(t + 5, presence, "presence", 1)
        tl.add(t + 5 + stay_s, presence, "presence", 0)
        tl.add(t + 25 + stay_s, dev["motion_hall"], "motion", 1)
        incident = self._incident(
            ctx, "long_bathroom_visit", presence, t + 5, "long_bathroom_visit", t + 5 + 45 * MINUTE
        )
        return incident, tl, (t - MINUTE, t + stay_s + MINUTE), None

    def _single(self, name: str, kind: str, event: str) -> Callable[[_Ctx], _Built | None]:
        def build(ctx: _Ctx) -> _Built | None:
            device = ctx.res.devices[kind]
            t = self._window(ctx, ctx.day.start, ctx.day.end)
            tl = Timeline()
            tl.add(t, device, event, 1)
            return self._incident(ctx, name, device, t, name, t), tl, None, None

        return build

    def _missed_medication(self, ctx: _Ctx) -> _Built | None:
        robot = ctx.res.devices.get("medication_robot")
        if robot is None:
            return None
        label, t = ctx.rng.choice(dose_times(ctx.day, ctx.plan.wake or ctx.sk.wake))
        if label in ctx.plan.missed_doses:
            return None
        missed = t + 30 * MINUTE
        tl = Timeline()
        tl.add(t, robot, "robot_task", attrs={"task": "dose", "status": "started", "dose": label})
        tl.add(t + 1, robot, "robot_state", attrs={"state": "waiting"})
        tl.add(missed, robot, "medication_missed", attrs={"dose": label})
        tl.add(missed + 1, robot, "robot_task", attrs={"task": "dose", "status": "failed", "dose": label})
        tl.add(missed + 2, robot, "robot_state", attrs={"state": "idle"})
        incident = self._incident(ctx, "medication_missed", robot, missed, "medication_missed", missed)
        if missed < self.start + WARMUP_S or incident.must_raise_by > self.end:
            return None
        return incident, tl, None, lambda: ctx.plan.missed_doses.add(label)

    # --- technical incidents ---------------------------------------------------------------------------------

    def _low_temperature(self, ctx: _Ctx) -> _Built | None:
        thermo, rng = ctx.res.devices["thermometer"], ctx.rng
        a = self._window(ctx, ctx.day.start, ctx.day.end - HOUR)
        lows = [round(rng.uniform(14.2, 15.6), 1) for _ in range(rng.randint(11, 16))]
        values = [19.2, 18.0, 16.8, *lows, 16.5, 18.0, 19.5]
        tl = Timeline()
        for k, value in enumerate(values):
            tl.add(a + k * 300, thermo, "temperature", value, unit="Cel")
            tl.add(a + k * 300 + 1, thermo, "humidity", round(rng.uniform(35, 45)), unit="%")
        quiet = (a - 16 * MINUTE, a + len(values) * 300)
        at = a + 3 * 300
        incident = self._incident(ctx, "low_temperature", thermo, at, "low_room_temperature", at + 30 * MINUTE)
        return incident, tl, None, lambda: self.quiet_thermometers.setdefault(thermo.id, []).append(quiet)

    def _temperature_blip(self, ctx: _Ctx) -> _Built | None:
        thermo = ctx.res.devices["thermometer"]
        t = self._window(ctx, ctx.day.start, ctx.day.end)
        tl = Timeline()
        tl.add(t, thermo, "temperature", round(ctx.rng.uniform(14.5, 15.8), 1), unit="Cel")
        return self._incident(ctx, "temperature_blip", thermo, t, None, t + 30 * MINUTE), tl, None, None

    def _camera_offline(self, ctx: _Ctx) -> _Built | None:
        camera = ctx.res.devices["camera"]
        t = self._window(ctx, ctx.day.start, ctx.day.end)
        back = t + ctx.rng.uniform(5, 15) * MINUTE
        if overlaps(self.busy.get(camera.id, []), t, back, 10 * MINUTE):
            return None
        tl = Timeline()
        tl.add(t, camera, "device_offline", status="offline")
        tl.add(back, camera, "device_online", status="online")
        incident = self._incident(ctx, "camera_offline", camera, t, "camera_offline", t)
        if t < self.start + WARMUP_S or incident.must_raise_by > self.end:
            return None
        return incident, tl, None, lambda: self.mutes.setdefault(camera.id, []).append((t, back))

    def _silent_device(self, ctx: _Ctx) -> _Built | None:
        kinds = [k for k in SILENT_KINDS if k in ctx.res.devices]
        device = ctx.res.devices[ctx.rng.choice(kinds)]
        t = self._window(ctx, ctx.day.start, ctx.day.end)
        supervision_s = device.kind.supervision_interval_s
        silent_until = t + supervision_s + ctx.rng.uniform(30, 90) * MINUTE
        incident = self._incident(ctx, "device_silent", device, t, "device_silent", t + supervision_s)
        if t < self.start + WARMUP_S or incident.must_raise_by > self.end:
            return None
        if overlaps(self.busy.get(device.id, []), t, silent_until, 10 * MINUTE):
            return None
        if overlaps(self.mutes.get(device.id, []), t, silent_until, 10 * MINUTE):
            return None

        def effect() -> None:
            self.mutes.setdefault(device.id, []).append((t, silent_until))
            self.busy.setdefault(device.id, []).append((t, silent_until))

        return incident, Timeline(), None, effect

    def _low_battery(self, ctx: _Ctx) -> _Built | None:
        kinds = [d for d in ctx.res.devices.values() if d.kind.battery and d.id not in self.battery_failures]
        if not kinds:
            return None
        device = ctx.rng.choice(kinds)
        first, _period = periodic_phase(self.config.seed, device, BATTERY_REPORT_S, self.start)
        t = self._window(ctx, ctx.day.start, ctx.day.end)
        t = first + max(0, round((t - first) / BATTERY_REPORT_S)) * BATTERY_REPORT_S
        incident = self._incident(ctx, "battery_low", device, t, "battery_low", t)
        if t < self.start + WARMUP_S or incident.must_raise_by > self.end:
            return None
        replaced = t + ctx.rng.uniform(1, 3) * HOUR

        def effect() -> None:
            self.battery_failures[device.id] = (t, replaced)

        return incident, Timeline(), None, effect


def periodic_phase(seed: int, device: SimDevice, period_s: float, start: float) -> tuple[float, float]:
    """First report time after `start` and the period of a device's periodic stream (deterministic per device)."""
    rng = random.Random(f"{seed}:{device.id}:{period_s}:phase")
    return start + rng.uniform(0, period_s), period_s


def plan_incidents(
    config: SimConfig,
    residents: list[SimResident],
    start: float,
    end: float,
    *,
    reserve: Callable[[IncidentPlan], None] | None = None,
) -> IncidentPlan:
    """Plan every incident of the run; the truth is `plan.incidents`, sorted by time.

    `reserve` runs first: it may mute devices, mark them busy and add incidents (the simulated check-ins do).
    """
    zone = ZoneInfo(config.timezone)
    plan = IncidentPlan(config, start, end)
    if reserve is not None:
        reserve(plan)
    for day in care_days(start, end, zone):
        for res in residents:
            plan.plan_day(res, day)
    plan.incidents.sort(key=lambda i: (i.at, i.resident_id, i.incident))
    return plan
