"""The check-in tasks' life: created at each slot for the resident's unit, looked at by camera or visited, turned into
a physical visit when the look is not enough, and raised as an alarm (the desk's escalation) when overdue.

Every task and every step is written to the database before it is shown or published (the task survives a restart);
every look is one row in `checkin_looks` and one in `resident_access_log`; refused looks are logged too.

A resident marked away or in hospital (`vaka resident away`, the admin page) gets no check-in: no task is created
while the mark is set, the next tick closes the open ones with the outcome `away`, and a look or an outcome for one
is refused and logged.

An overdue task does not stay on the list for ever: a person may close it with what truly happened (visited instead,
not needed, other with a note), and at the end of its night (`desk.night_end`, or when its window closed if that is
later) the hub closes it as `missed`, with the staff on duty for its unit when the window closed. An overdue second
look becomes a visit at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import asyncpg

from hub.checkins.gateway import CameraGateway, GatewayError
from hub.checkins.plan import Plan
from hub.checkins.schedule import due
from hub.model import AlarmCategory, AlarmDecision, DecisionAction, Severity, VakaError
from hub.people.staff import StaffMember
from hub.store.db import DatabaseUnavailableError

logger = logging.getLogger(__name__)

OUTCOMES = ("seen_calm", "seen_needs_visit", "not_visible", "camera_not_working")
PHYSICAL_OUTCOMES = ("visited", "visited_needs_help")
# an overdue task, closed by a person with what truly happened ("other" needs a note)
OVERDUE_OUTCOMES = ("visited_instead", "not_needed", "other")
NOTE_MAX = 200
VISIT_MIN = 30
SECOND_LOOK_MIN = 20
LOOK_TTL_S = 45
OVERDUE_RULE = "checkin_overdue"
SIMULATED_STEP_S = 60.0  # a simulated clock faster than the wall's: tick at least every simulated minute
MIN_TICK_S = 0.02


class CheckinError(VakaError):
    """A check-in action that is not allowed now (refused and logged); `code` names a refused look's reason."""

    def __init__(self, msg: str, code: str = "") -> None:
        super().__init__(msg)
        self.code = code


# why a look is refused: the code the page translates, the text the log keeps
REFUSALS = {
    "not_yours": "not a check-in of your units",
    "not_open_camera": "only an open camera check-in can be looked at",
    "outside_slot": "outside the planned slot",
    "no_consent": "no live camera consent",
    "no_gateway": "no camera gateway is configured (checkins.gateway_url)",
    "gateway_failed": "the camera gateway gave no view",
    "away": "the resident is marked away or in hospital",
}


class Clock(Protocol):
    def now(self) -> datetime: ...


class Publish(Protocol):
    def __call__(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None: ...


class Lane(Protocol):
    def tick(self) -> datetime: ...
    def apply(self, decision: AlarmDecision) -> Any: ...


class OpenAlarms(Protocol):
    def device_faults(self, site: str) -> set[str]: ...


class Desk(Protocol):
    """What the check-ins need of the desk (hub.desk.build.DeskParts): its lane and its open alarms."""

    @property
    def lane(self) -> Lane: ...
    @property
    def machine(self) -> OpenAlarms: ...


class Pool(Protocol):
    def acquire(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class Task:
    """One check-in task as the page shows it."""

    id: str
    site: str
    unit: str | None
    resident_id: str
    camera_device_id: str | None
    mode: str
    attempt: int
    reason: str
    state: str
    outcome: str | None
    due_at: datetime
    window_start: datetime
    window_end: datetime

    def overdue(self, now: datetime) -> bool:
        """Still open after its window closed."""
        return self.state == "open" and now >= self.window_end

    def public(self) -> dict[str, Any]:
        """What integrations get on `vaka/v1/{site}/checkins/{id}` (pseudonymous, no image, no name)."""
        return {"id": self.id, "resident_id": self.resident_id, "mode": self.mode, "attempt": self.attempt,
                "state": self.state, "outcome": self.outcome, "reason": self.reason,
                "due_at": self.due_at.isoformat(), "window_end": self.window_end.isoformat()}  # fmt: skip


def _task(row: asyncpg.Record) -> Task:
    return Task(**{f: row[f] for f in Task.__dataclass_fields__})


_COLUMNS = ", ".join(Task.__dataclass_fields__)
_C_COLUMNS = ", ".join(f"c.{column}" for column in Task.__dataclass_fields__)


class CheckinService:
    """Creates due tasks on each tick and carries out the patrol's actions."""

    def __init__(self, db: Pool, desk: Desk, publish: Publish, clock: Clock, gateway: CameraGateway | None,
                 *, overdue_after_s: float = 0.0, night_end: time = time(7, 0),
                 owns: Callable[[str], bool] | None = None) -> None:  # fmt: skip
        self.db = db
        self.desk = desk
        self.publish = publish
        self.clock = clock
        self.gateway = gateway
        self.overdue_after = timedelta(seconds=overdue_after_s)
        self.night_end = night_end
        # the pages' version of the task list: new with every hub start, moved on by every change a page shows
        # the HA profile (hub/ownership/): the sites this hub acts for; a task of another hub's site is that hub's to
        # create and to raise when overdue (marking it here would swallow its alarm)
        self.owns: Callable[[str], bool] = owns or (lambda site: True)
        self._epoch = secrets.token_hex(4)
        self._serial = 0
        self._change = asyncio.Event()
        self._overdue: int | None = None

    # --- the pages' live wire -------------------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """Changes whenever a task is created, changed or done, or one becomes overdue, and with every hub start:
        an open list fetches itself again when it sees a new one."""
        return f"{self._epoch}.{self._serial}"

    async def changed(self, since: str | None, timeout_s: float) -> str:
        """The version as soon as it differs from `since`, else after `timeout_s` (or `wake`) as it is."""
        change = self._change
        if since == self.version:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await change.wait()
        return self.version

    def wake(self) -> None:
        """Let every waiter in `changed` return now (the web server is shutting down)."""
        self._change.set()
        self._change = asyncio.Event()

    def _moved_on(self) -> None:
        self._serial += 1
        self.wake()

    # --- plans ----------------------------------------------------------------------------------------------------

    async def save_plans(self, plans: list[Plan]) -> None:
        """Store plans (replacing a resident's earlier plan), checking each resident and camera is in the inventory."""
        async with self.db.acquire() as conn:
            await save_plans(conn, plans)

    # --- the clock ------------------------------------------------------------------------------------------------

    async def tick(self) -> list[Task]:
        """Create the tasks whose window opened, physical at once where the camera is down; make an open camera task
        a visit once its camera is known to be down; alarm the overdue ones. Returns the tasks created or changed.

        The cameras are judged in step with the alarm lane, at one instant: the lane ticks first (every silence due
        by now is at the desk), then the open faults are read and the tasks stamped with that time, before any await
        lets the clock run on. At 1200x a tick writing thirty tasks lasts simulated minutes, and a camera back
        after its slot must not make that slot a look, nor a camera silent from a minute ago a visit.
        """
        async with self.db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT p.resident_id, p.site, p.consent_ref, p.care_decision_ref, p.camera_device_id, p.travel_minutes, "
                "p.opt_out_nights, p.slots, r.unit, r.away, s.timezone FROM checkin_plans p JOIN residents r ON r.id = p.resident_id "
                "JOIN sites s ON s.id = p.site ORDER BY p.resident_id"
            )  # fmt: skip
            rows = [row for row in rows if self.owns(row["site"])]
            now = self.desk.lane.tick()
            down = {site: self.desk.machine.device_faults(site) for site in {row["site"] for row in rows}}
            changed: list[Task] = []
            changed += await self._close_away(conn, now)
            for row in rows:
                if row["away"]:
                    continue
                plan = plan_of(row)
                for slot in due(plan, now, ZoneInfo(row["timezone"])):
                    mode, reason = slot.slot.mode, ""
                    if mode == "camera" and plan.camera in down[row["site"]]:
                        mode, reason = "physical", "camera_down"
                    task = await self._create(conn, slot.id, row["site"], row["unit"], plan.resident, plan.camera, mode,
                                              1, None, reason, slot.due_at, slot.window_start, slot.window_end, now)  # fmt: skip
                    if task is not None:
                        changed.append(task)
            cameras_down = {row["camera_device_id"] for row in rows if row["camera_device_id"] in down[row["site"]]}
            changed += await self._camera_down(conn, now, cameras_down)
            overdue = await conn.fetch(
                f"SELECT {_COLUMNS} FROM checkins WHERE state = 'open' AND NOT overdue_alarmed AND window_end <= $1",
                now - self.overdue_after,
            )
            for row in overdue:
                task = _task(row)
                if not self.owns(task.site):
                    continue
                await conn.execute("UPDATE checkins SET overdue_alarmed = true WHERE id = $1", task.id)
                await self._log(conn, task.id, now, "hub", "overdue", f"window closed {task.window_end.isoformat()}")
                self.desk.lane.apply(AlarmDecision(
                    action=DecisionAction.RAISE, key=f"{OVERDUE_RULE}:{task.id}", rule_id=OVERDUE_RULE,
                    category=AlarmCategory.CARE, severity=Severity.HIGH, site=task.site, at=now,
                    reason=f"{task.mode} check-in not done in its window", resident_id=task.resident_id,
                    device_id=task.camera_device_id,
                ))  # fmt: skip
                if task.mode == "camera" and task.attempt > 1:
                    changed += await self._second_look_overdue(conn, task, now)
            changed += await self._close_missed(conn, now)
            overdue_now = await conn.fetchval(
                "SELECT count(*) FROM checkins WHERE state = 'open' AND window_end <= $1", now
            )
        if self._overdue is not None and overdue_now != self._overdue:
            self._moved_on()  # an overdue mark to show: a window closed, or a simulation's clock began after a start
        self._overdue = overdue_now
        for task in changed:
            self._publish(task)
        return changed

    async def _second_look_overdue(self, conn: asyncpg.Connection, task: Task, now: datetime) -> list[Task]:
        """A second look nobody took in its window: missed, and a visit now (the resident was not seen)."""
        async with conn.transaction():
            missed = await self._miss(conn, task, now)
            visit = await self._create(conn, f"{task.id.removesuffix('-2')}-visit", task.site, task.unit,
                                       task.resident_id, None, "physical", task.attempt + 1, task.id,
                                       "second_look_overdue", now, now, now + timedelta(minutes=VISIT_MIN), now)  # fmt: skip
        return [missed] if visit is None else [missed, visit]

    def _night_over(self, task: Task, zone: ZoneInfo) -> datetime:
        """When the night the task belongs to has ended (not before its window closed and the overdue grace)."""
        night = (task.due_at.astimezone(zone) - timedelta(hours=12)).date()
        end = datetime.combine(night + timedelta(days=1), self.night_end, tzinfo=zone)
        return max(end, task.window_end + self.overdue_after)

    async def _close_missed(self, conn: asyncpg.Connection, now: datetime) -> list[Task]:
        """Overdue tasks whose night is over: closed as `missed`, with who was on duty (they leave the list)."""
        rows = await conn.fetch(
            f"SELECT {_C_COLUMNS}, s.timezone FROM checkins c JOIN sites s ON s.id = c.site "
            "WHERE c.state = 'open' AND c.window_end <= $1",
            now,
        )
        over = [_task(row) for row in rows if now >= self._night_over(_task(row), ZoneInfo(row["timezone"]))]
        closed = []
        for task in sorted(over, key=lambda t: (t.due_at, t.id)):
            async with conn.transaction():
                closed.append(await self._miss(conn, task, now))
        return closed

    async def _miss(self, conn: asyncpg.Connection, task: Task, now: datetime) -> Task:
        on_duty = await conn.fetchval(
            "SELECT coalesce(array_agg(DISTINCT d.staff_id ORDER BY d.staff_id), '{}') FROM staff_duty d "
            "JOIN staff_units u ON u.staff_id = d.staff_id WHERE d.since <= $1 AND d.until > $1 AND u.site = $2 "
            "AND ($3::text IS NULL OR u.unit IN ($3, '*'))",
            task.window_end, task.site, task.unit,
        )  # fmt: skip
        row = await conn.fetchrow(
            f"UPDATE checkins SET state = 'done', outcome = 'missed', done_at = $2, on_duty = $3 WHERE id = $1 "
            f"RETURNING {_COLUMNS}",
            task.id, now, on_duty,
        )  # fmt: skip
        assert row is not None  # the task is open and this transaction holds it
        who = ",".join(f"staff:{i}" for i in on_duty) or "nobody"
        await self._log(conn, task.id, now, "hub", "done", f"missed: not done in its window; on duty: {who}")
        logger.info("CHECKIN id=%s closed: missed (on duty: %s)", task.id, who)
        return _task(row)

    async def _close_away(self, conn: asyncpg.Connection, now: datetime) -> list[Task]:
        """Open tasks of residents marked away or in hospital: closed as `away` (nobody is home to look at)."""
        async with conn.transaction():
            rows = await conn.fetch(
                "UPDATE checkins c SET state = 'done', outcome = 'away', done_at = $1 FROM residents r "
                f"WHERE r.id = c.resident_id AND r.away AND c.state = 'open' RETURNING {_C_COLUMNS}",
                now,
            )
            closed = sorted(map(_task, rows), key=lambda t: (t.due_at, t.id))
            for task in closed:
                await self._log(conn, task.id, now, "hub", "done", "away: the resident is marked away or in hospital")
        for task in closed:
            logger.info("CHECKIN id=%s closed: resident away", task.id)
        return closed

    async def _camera_down(self, conn: asyncpg.Connection, now: datetime, cameras: set[str]) -> list[Task]:
        """Open camera tasks in their window whose camera is down (silent, offline): a visit now, the same task."""
        if not cameras:
            return []
        async with conn.transaction():
            rows = await conn.fetch(
                f"UPDATE checkins SET mode = 'physical', reason = 'camera_down' WHERE state = 'open' AND mode = 'camera' "
                f"AND window_start <= $1 AND window_end > $1 AND camera_device_id = ANY($2::text[]) RETURNING {_COLUMNS}",
                now, sorted(cameras),
            )  # fmt: skip
            turned = sorted(map(_task, rows), key=lambda t: (t.due_at, t.id))
            for task in turned:
                await self._log(
                    conn, task.id, now, "hub", "camera_down", f"camera={task.camera_device_id}: a visit now"
                )
        for task in turned:
            logger.info("CHECKIN id=%s camera down: mode=physical reason=camera_down", task.id)
        return turned

    async def _create(self, conn: asyncpg.Connection, task_id: str, site: str, unit: str | None, resident: str,
                      camera: str | None, mode: str, attempt: int, parent: str | None, reason: str, due_at: datetime,
                      window_start: datetime, window_end: datetime, now: datetime) -> Task | None:  # fmt: skip
        row = await conn.fetchrow(
            f"INSERT INTO checkins (id, site, unit, resident_id, camera_device_id, mode, attempt, parent_id, reason, "
            "state, due_at, window_start, window_end, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10, $11, $12, $13) "
            f"ON CONFLICT (id) DO NOTHING RETURNING {_COLUMNS}",
            task_id, site, unit, resident, camera, mode, attempt, parent, reason, due_at, window_start, window_end, now,
        )  # fmt: skip
        if row is None:
            return None
        await self._log(conn, task_id, now, "hub", "created", f"mode={mode} attempt={attempt} {reason}".strip())
        logger.info("CHECKIN id=%s created mode=%s attempt=%s reason=%s", task_id, mode, attempt, reason or "-")
        return _task(row)

    # --- the patrol -----------------------------------------------------------------------------------------------

    async def open_for(self, staff: StaffMember) -> list[Task]:
        """Open tasks of my units, earliest due first."""
        async with self.db.acquire() as conn:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM checkins WHERE state = 'open' ORDER BY due_at, id")
        return [t for t in map(_task, rows) if staff.sees(t.site, t.unit)]

    async def get(self, task_id: str, staff: StaffMember) -> Task:
        """One task of my units (CheckinError otherwise)."""
        async with self.db.acquire() as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM checkins WHERE id = $1", task_id)
        if row is None or not staff.sees(row["site"], row["unit"]):
            msg = "no such check-in in your units"
            raise CheckinError(msg)
        return _task(row)

    async def look(self, task_id: str, staff: StaffMember, address: str | None = None) -> tuple[Task, str, datetime]:
        """A viewing URL for the task's camera, for this staff member, for LOOK_TTL_S; refused (and logged) outside
        the slot's window, without a live consent, for another unit's camera or a physical task."""
        now = self.clock.now()
        async with self.db.acquire() as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM checkins WHERE id = $1", task_id)
            refusal = None
            if row is None or not staff.sees(row["site"], row["unit"]):
                refusal = "not_yours"
            else:
                task = _task(row)
                plan = await conn.fetchrow(
                    "SELECT p.consent_ref, p.camera_device_id, p.opt_out_nights, s.timezone FROM checkin_plans p "
                    "JOIN sites s ON s.id = p.site WHERE p.resident_id = $1",
                    task.resident_id,
                )
                away = await _is_away(conn, task.resident_id)
                night = (
                    (task.due_at.astimezone(ZoneInfo(plan["timezone"])) - timedelta(hours=12)).date() if plan else None
                )
                consented = (
                    plan is not None
                    and plan["camera_device_id"] == task.camera_device_id
                    and night not in plan["opt_out_nights"]
                )
                if away:
                    refusal = "away"
                elif task.state != "open" or task.mode != "camera":
                    refusal = "not_open_camera"
                elif not task.window_start <= now < task.window_end:
                    refusal = "outside_slot"
                elif not consented:
                    refusal = "no_consent"
                elif self.gateway is None:
                    refusal = "no_gateway"
            if refusal is not None:
                await self._log(conn, task_id, now, f"staff:{staff.id}", "look_refused", REFUSALS[refusal])
                logger.warning("CHECKIN id=%s look refused staff=%s: %s", task_id, staff.id, REFUSALS[refusal])
                raise CheckinError(REFUSALS[refusal], refusal)
            assert self.gateway is not None
            assert task.camera_device_id is not None
            try:
                grant = await self.gateway.issue(task.camera_device_id, f"staff:{staff.id}", LOOK_TTL_S)
            except GatewayError as exc:
                await self._log(conn, task_id, now, "hub", "gateway_failed", str(exc))
                msg = f"{exc}: mark it 'camera not working' to turn it into a visit"
                raise CheckinError(msg, "gateway_failed") from exc
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO checkin_looks (checkin_id, staff_id, resident_id, camera_device_id, started_at, expires_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6)",
                    task_id, staff.id, task.resident_id, task.camera_device_id, now, grant.expires_at,
                )  # fmt: skip
                await conn.execute(
                    "INSERT INTO resident_access_log (at, staff_id, role, site, resident_id, purpose, address) "
                    "VALUES ($1, $2, $3, $4, $5, 'camera_look', $6)",
                    now, staff.id, staff.role.value, task.site, task.resident_id, address,
                )  # fmt: skip
                await self._log(conn, task_id, now, f"staff:{staff.id}", "look", f"camera={task.camera_device_id} "
                                f"until={grant.expires_at.isoformat()}")  # fmt: skip
        return task, grant.url, grant.expires_at

    async def record(self, task_id: str, staff: StaffMember, outcome: str, note: str = "") -> tuple[Task, Task | None]:
        """The outcome of a look or a visit, with an optional short note; an overdue task may instead be closed with
        what truly happened (OVERDUE_OUTCOMES, "other" with a note). Returns the task and its follow-up, if any."""
        now = self.clock.now()
        task = await self.get(task_id, staff)
        note = " ".join(note.split())
        allowed = OUTCOMES if task.mode == "camera" else PHYSICAL_OUTCOMES
        if task.overdue(now):
            allowed = (*allowed, *OVERDUE_OUTCOMES)
        if task.state != "open" or outcome not in allowed:
            msg = f"outcome {outcome!r} does not fit this check-in"
            raise CheckinError(msg)
        if len(note) > NOTE_MAX:
            msg = f"the note is longer than {NOTE_MAX} characters"
            raise CheckinError(msg, "note_long")
        if outcome == "other" and not note:
            msg = "say in a note what happened"
            raise CheckinError(msg, "note_needed")
        follow: Task | None = None
        async with self.db.acquire() as conn:
            if await _is_away(conn, task.resident_id):
                await self._log(conn, task_id, now, f"staff:{staff.id}", "outcome_refused", REFUSALS["away"])
                logger.warning("CHECKIN id=%s outcome refused staff=%s: resident away", task_id, staff.id)
                raise CheckinError(REFUSALS["away"], "away")
        async with self.db.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE checkins SET state = 'done', outcome = $2, done_at = $3, done_by = $4, note = $5 WHERE id = $1",
                task_id, outcome, now, staff.id, note or None,
            )  # fmt: skip
            await conn.execute(
                "UPDATE checkin_looks SET outcome = $2 WHERE checkin_id = $1 AND outcome IS NULL", task_id, outcome
            )
            await self._log(conn, task_id, now, f"staff:{staff.id}", "done", f"{outcome}: {note}" if note else outcome)
            if outcome == "not_visible" and task.attempt == 1:
                window = timedelta(minutes=SECOND_LOOK_MIN)
                follow = await self._create(conn, f"{task_id}-2", task.site, task.unit, task.resident_id,
                                            task.camera_device_id, "camera", 2, task_id, "second_look", now, now,
                                            now + window, now)  # fmt: skip
            elif outcome in ("not_visible", "camera_not_working", "seen_needs_visit"):
                reason = {"not_visible": "not_visible_twice", "camera_not_working": "camera_not_working",
                          "seen_needs_visit": "needs_visit"}[outcome]  # fmt: skip
                follow = await self._create(conn, f"{task_id.removesuffix('-2')}-visit", task.site, task.unit,
                                            task.resident_id, None, "physical", task.attempt + 1, task_id, reason, now,
                                            now, now + timedelta(minutes=30), now)  # fmt: skip
        done = await self.get(task_id, staff)
        self._publish(done)
        if follow is not None:
            self._publish(follow)
        return done, follow

    # --- helpers --------------------------------------------------------------------------------------------------

    async def _log(
        self, conn: asyncpg.Connection, task_id: str, at: datetime, actor: str, action: str, detail: str
    ) -> None:
        await conn.execute(
            "INSERT INTO checkin_log (checkin_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)",
            task_id, at, actor, action, detail[:500],
        )  # fmt: skip

    def _publish(self, task: Task) -> None:
        self._moved_on()
        try:
            self.publish(f"vaka/v1/{task.site}/checkins/{task.id}", json.dumps(task.public()).encode(), qos=1)
        except Exception:  # the broker connection is the integration's, not the patrol's: never stop a check-in
            logger.exception("check-in %s not published", task.id)


async def _is_away(conn: asyncpg.Connection, resident_id: str) -> bool:
    away: bool | None = await conn.fetchval("SELECT away FROM residents WHERE id = $1", resident_id)
    return bool(away)


def plan_of(row: asyncpg.Record) -> Plan:
    """A stored plan."""
    return Plan(resident=row["resident_id"], consent_ref=row["consent_ref"], care_decision_ref=row["care_decision_ref"],
                camera=row["camera_device_id"], travel_minutes=row["travel_minutes"],
                opt_out_nights=list(row["opt_out_nights"]), slots=json.loads(row["slots"]))  # fmt: skip


async def save_plans(conn: asyncpg.Connection, plans: list[Plan]) -> None:
    """Store plans in one transaction; CheckinError naming a resident or camera not in the inventory."""
    async with conn.transaction():
        for plan in plans:
            site = await conn.fetchval("SELECT site FROM residents WHERE id = $1", plan.resident)
            if site is None:
                msg = f"resident {plan.resident!r} is not in the inventory (vaka site load)"
                raise CheckinError(msg)
            if plan.camera is not None:
                owner = await conn.fetchrow("SELECT resident, kind FROM devices WHERE id = $1", plan.camera)
                if owner is None or owner["resident"] != plan.resident:
                    msg = f"camera {plan.camera!r} is not a device of resident {plan.resident!r}"
                    raise CheckinError(msg)
            await conn.execute(
                "INSERT INTO checkin_plans (resident_id, site, consent_ref, care_decision_ref, camera_device_id, "
                "travel_minutes, opt_out_nights, slots, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) "
                "ON CONFLICT (resident_id) DO UPDATE SET site = EXCLUDED.site, consent_ref = EXCLUDED.consent_ref, "
                "care_decision_ref = EXCLUDED.care_decision_ref, camera_device_id = EXCLUDED.camera_device_id, "
                "travel_minutes = EXCLUDED.travel_minutes, opt_out_nights = EXCLUDED.opt_out_nights, "
                "slots = EXCLUDED.slots, updated_at = now()",
                plan.resident, site, plan.consent_ref, plan.care_decision_ref, plan.camera, plan.travel_minutes,
                plan.opt_out_nights, json.dumps([s.model_dump(mode="json") for s in plan.slots]),
            )  # fmt: skip


async def run_loop(service: CheckinService, interval_s: float = 5.0, rate: Callable[[], float] | None = None) -> None:
    """Tick the check-ins forever, every `interval_s` and at least every simulated minute when the hub's clock runs
    faster than the wall clock (`rate`: a simulation at 1200x); a failed tick is logged and tried again (a task is
    never lost: the next tick creates whatever is still due, by its stable id)."""
    while True:
        try:
            await service.tick()
        except DatabaseUnavailableError:
            logger.warning("check-ins waiting for the database; the due tasks are created when it is back")
        except Exception:
            logger.exception("check-in tick failed; trying again in %.0f s", interval_s)
        speed = rate() if rate is not None else 1.0
        wait_s = min(interval_s, SIMULATED_STEP_S / speed) if speed > 1 else interval_s
        await asyncio.sleep(max(MIN_TICK_S, wait_s))
