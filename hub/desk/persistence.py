"""The desk's persistence queue: alarm snapshots, the append-only alarm log and the resident access log.

`save()` and `access()` only append to an in-memory queue; `write_loop()` writes it in order, in one transaction
per batch, and when the database is away it keeps everything and retries with backoff. Nothing here is ever
awaited on the alarm path.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from hub.desk.alarm import Alarm
from hub.model import AlarmCategory, AlarmState, Outcome, Severity, VakaError

if TYPE_CHECKING:
    from hub.store.pool import Database

logger = logging.getLogger(__name__)

_BATCH_MAX = 500
_BACKOFF_MAX_S = 10.0

_UPSERT = """
INSERT INTO desk_alarms (id, key, rule_id, category, severity, site, unit, resident_id, device_id, reason,
    unregistered, state, outcome, note, count, raised_at, updated_at, accepted_at, accepted_by, closed_at,
    next_tier, next_escalation_at, version, condition_ended_at, condition_note, ringing_since, accepted_by_id,
    incidents, unreached)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
    $24, $25, $26, $27, $28, $29)
ON CONFLICT (id) DO UPDATE SET severity = EXCLUDED.severity, reason = EXCLUDED.reason, state = EXCLUDED.state,
    outcome = EXCLUDED.outcome, note = EXCLUDED.note, count = EXCLUDED.count, updated_at = EXCLUDED.updated_at,
    accepted_at = EXCLUDED.accepted_at, accepted_by = EXCLUDED.accepted_by, closed_at = EXCLUDED.closed_at,
    next_tier = EXCLUDED.next_tier, next_escalation_at = EXCLUDED.next_escalation_at, version = EXCLUDED.version,
    condition_ended_at = EXCLUDED.condition_ended_at, condition_note = EXCLUDED.condition_note,
    ringing_since = EXCLUDED.ringing_since, accepted_by_id = EXCLUDED.accepted_by_id,
    incidents = EXCLUDED.incidents, unreached = EXCLUDED.unreached
WHERE desk_alarms.version <= EXCLUDED.version
"""
_LOG = "INSERT INTO desk_alarm_log (alarm_id, at, actor, action, state, detail) VALUES ($1, $2, $3, $4, $5, $6)"
_ACCESS = (
    "INSERT INTO resident_access_log (at, staff_id, role, site, resident_id, purpose) VALUES ($1, $2, $3, $4, $5, $6)"
)

_DUTY = (
    "INSERT INTO staff_duty (staff_id, since, until) VALUES ($1, $2, $3)"
    " ON CONFLICT (staff_id) DO UPDATE SET since = EXCLUDED.since, until = EXCLUDED.until"
)


def _snapshot(a: Alarm) -> tuple[Any, ...]:
    return (
        a.id,
        a.key,
        a.rule_id,
        a.category.value,
        int(a.severity),
        a.site,
        a.unit,
        a.resident_id,
        a.device_id,
        a.reason[:1000],
        a.unregistered,
        a.state.value,
        a.outcome.value if a.outcome else None,
        a.note,
        a.count,
        a.raised_at,
        a.updated_at,
        a.accepted_at,
        a.accepted_by,
        a.closed_at,
        a.next_tier,
        a.next_escalation_at,
        a.version,
        a.condition_ended_at,
        a.condition_note,
        a.ringing_since,
        a.accepted_by_id,
        a.incidents,
        a.unreached,
    )


class DeskStore:
    """Ordered, never-blocking persistence for the desk."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: deque[tuple[str, tuple[Any, ...]]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def backlog(self) -> int:
        """Writes waiting for the database."""
        return len(self._queue)

    def save(self, alarm: Alarm, actor: str, action: str, detail: str, at: datetime) -> None:
        """Queue the alarm's current state and one alarm log line."""
        self._queue.append(("alarm", _snapshot(alarm)))
        self._queue.append(("log", (alarm.id, at, actor, action, alarm.state.value, detail[:1000])))
        self._kick()

    def access(self, at: datetime, staff_id: int, role: str, site: str, resident_id: str, purpose: str) -> None:
        """Queue one resident access log row."""
        self._queue.append(("access", (at, staff_id, role, site, resident_id, purpose)))
        self._kick()

    def duty(self, staff_id: int, at: datetime, until: datetime | None) -> None:
        """Queue a sign-on (until the shift's end) or a sign-off (`until` None)."""
        self._queue.append(("duty", (staff_id, at, until)))
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def flushed(self, timeout_s: float = 10.0) -> None:
        """Wait until everything queued so far is in the database (tests, shutdown)."""
        async with asyncio.timeout(timeout_s):
            await self._idle.wait()

    async def write_loop(self) -> None:
        """Write the queue in order, retrying with backoff while the database is away; runs until cancelled."""
        backoff_s = 0.1
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue[i] for i in range(min(len(self._queue), _BATCH_MAX))]
            try:
                await self._write(batch)
            except (TimeoutError, OSError, VakaError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("desk persistence waiting for database backlog=%s error=%s", len(self._queue), exc)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, _BACKOFF_MAX_S)
                continue
            backoff_s = 0.1
            for _ in batch:
                self._queue.popleft()

    async def _write(self, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        latest: dict[str, tuple[Any, ...]] = {}
        logs: list[tuple[Any, ...]] = []
        accesses: list[tuple[Any, ...]] = []
        duty: list[tuple[Any, ...]] = []
        for kind, row in batch:
            if kind == "alarm":
                latest[row[0]] = row
            elif kind == "log":
                logs.append(row)
            elif kind == "duty":
                duty.append(row)
            else:
                accesses.append(row)
        async with self._db.acquire() as conn, conn.transaction():
            if latest:
                await conn.executemany(_UPSERT, list(latest.values()))
            if logs:
                await conn.executemany(_LOG, logs)
            if accesses:
                await conn.executemany(_ACCESS, accesses)
            for staff_id, at, until in duty:
                if until is None:
                    await conn.execute("DELETE FROM staff_duty WHERE staff_id = $1", staff_id)
                else:
                    await conn.execute(_DUTY, staff_id, at, until)

    async def load_open(self) -> list[asyncpg.Record]:
        """Open alarms as stored."""
        async with self._db.acquire() as conn:
            return list(await conn.fetch("SELECT * FROM desk_alarms WHERE closed_at IS NULL ORDER BY raised_at"))


def alarm_from_row(row: asyncpg.Record) -> Alarm:
    """An alarm as stored in `desk_alarms` (restore after a restart)."""
    return Alarm(
        id=row["id"],
        key=row["key"],
        rule_id=row["rule_id"],
        category=AlarmCategory(row["category"]),
        severity=Severity(row["severity"]),
        site=row["site"],
        unit=row["unit"],
        resident_id=row["resident_id"],
        device_id=row["device_id"],
        reason=row["reason"],
        unregistered=row["unregistered"],
        raised_at=row["raised_at"],
        updated_at=row["updated_at"],
        state=AlarmState(row["state"]),
        count=row["count"],
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        note=row["note"],
        accepted_at=row["accepted_at"],
        accepted_by=row["accepted_by"],
        accepted_by_id=row["accepted_by_id"],
        condition_ended_at=row["condition_ended_at"],
        condition_note=row["condition_note"],
        ringing_since=row["ringing_since"],
        incidents=row["incidents"],
        unreached=row["unreached"],
        next_tier=row["next_tier"],
        next_escalation_at=row["next_escalation_at"],
        version=row["version"],
    )
