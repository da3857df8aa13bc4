"""The desk's persistence: alarm snapshots, the append-only alarm log, the resident access log and duty sign-ons.

`save()`, `access()` and `duty()` only append to an in-memory queue; `write_loop()` writes it in order, one
transaction per batch. When the database does not take a batch, everything queued goes to the desk's journal on
local disk (fsynced, one file per batch) and is written from there, oldest first, once the database answers again;
on shutdown what is still queued is written (or journaled) within a deadline. So nothing the desk owes is kept in
memory only for longer than one failed attempt, and a restart during a database outage loses none of it. Rows carry
the id they were given when they happened: one written twice (a crash between commit and cleanup) is stored once.
Nothing here is ever awaited on the alarm path.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from hub.desk.alarm import Alarm
from hub.model import AlarmCategory, AlarmState, Outcome, Severity, VakaError
from hub.runtime.backoff import Backoff
from hub.store.db import is_connection_error
from hub.store.files import write_whole
from hub.store.spool import frame, parse_segment

if TYPE_CHECKING:
    from hub.store.pool import Database

logger = logging.getLogger(__name__)

_BATCH_MAX = 500
_BACKOFF_MAX_S = 10.0

_UPSERT = """
INSERT INTO desk_alarms (id, key, rule_id, category, severity, site, unit, resident_id, device_id, reason,
    unregistered, state, outcome, note, count, raised_at, updated_at, accepted_at, accepted_by, closed_at,
    next_tier, next_escalation_at, version, condition_ended_at, condition_note, ringing_since, accepted_by_id,
    incidents, unreached, fence)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
    $24, $25, $26, $27, $28, $29, $30)
ON CONFLICT (id) DO UPDATE SET severity = EXCLUDED.severity, reason = EXCLUDED.reason, state = EXCLUDED.state,
    outcome = EXCLUDED.outcome, note = EXCLUDED.note, count = EXCLUDED.count, updated_at = EXCLUDED.updated_at,
    accepted_at = EXCLUDED.accepted_at, accepted_by = EXCLUDED.accepted_by, closed_at = EXCLUDED.closed_at,
    next_tier = EXCLUDED.next_tier, next_escalation_at = EXCLUDED.next_escalation_at, version = EXCLUDED.version,
    condition_ended_at = EXCLUDED.condition_ended_at, condition_note = EXCLUDED.condition_note,
    ringing_since = EXCLUDED.ringing_since, accepted_by_id = EXCLUDED.accepted_by_id,
    incidents = EXCLUDED.incidents, unreached = EXCLUDED.unreached, fence = EXCLUDED.fence
WHERE desk_alarms.version <= EXCLUDED.version
"""
_LOG = (
    "INSERT INTO desk_alarm_log (alarm_id, at, actor, action, state, detail, entry_id, site, fence)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7::uuid, $8, $9) ON CONFLICT (entry_id) DO NOTHING"
)
_ACCESS = (
    "INSERT INTO resident_access_log (at, staff_id, role, site, resident_id, purpose, entry_id, address)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7::uuid, $8) ON CONFLICT (entry_id) DO NOTHING"
)
_REFUSED = "INSERT INTO desk_refused_rows (kind, row_text, error) VALUES ($1, $2, $3)"
_DB_ERRORS = (TimeoutError, OSError, VakaError, asyncpg.PostgresError, asyncpg.InterfaceError)
_JOURNAL_SUFFIX = ".jnl"
Row = tuple[str, Any]

_DUTY = (
    "INSERT INTO staff_duty (staff_id, since, until) VALUES ($1, $2, $3)"
    " ON CONFLICT (staff_id) DO UPDATE SET since = EXCLUDED.since, until = EXCLUDED.until"
)


FENCED = "VK409"  # migration 380: the row's site is held by another hub now (docs/ha.md)


def _refused_for_content(exc: Exception) -> bool:
    """True when the database (or asyncpg's encoder) refused a row for what it holds, not for being away."""
    if is_connection_error(exc):
        return False
    return isinstance(exc, asyncpg.PostgresError | ValueError)


# the columns of `desk_alarms` in the order of `snapshot_row` (the journal's and the desk's local copy's rows)
SNAPSHOT_COLUMNS = (
    "id", "key", "rule_id", "category", "severity", "site", "unit", "resident_id", "device_id", "reason",
    "unregistered", "state", "outcome", "note", "count", "raised_at", "updated_at", "accepted_at", "accepted_by",
    "closed_at", "next_tier", "next_escalation_at", "version", "condition_ended_at", "condition_note",
    "ringing_since", "accepted_by_id", "incidents", "unreached",
)  # fmt: skip


def snapshot_row(a: Alarm) -> tuple[Any, ...]:
    """The alarm as one `desk_alarms` row, in the columns' order (the journal and the desk's local copy keep it)."""
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


class DeskJournal:
    """What the database did not take yet, on local disk: one fsynced file per batch, written back oldest first.

    A file is written to a temporary name, fsynced and renamed, so a crash leaves either the whole batch or none.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for stray in directory.glob("*.tmp"):
            stray.unlink(missing_ok=True)
        self._files = sorted(directory.glob(f"*{_JOURNAL_SUFFIX}"))
        self._next = int(self._files[-1].stem) + 1 if self._files else 1
        self._encoder = msgspec.msgpack.Encoder()

    @property
    def files(self) -> list[Path]:
        """Batches waiting for the database, oldest first."""
        return list(self._files)

    async def append(self, batch: list[Row]) -> None:
        """Write one batch to disk; returns once it is on stable storage (raises OSError, leaving nothing)."""
        path = self.directory / f"{self._next:012d}{_JOURNAL_SUFFIX}"
        data = frame(self._encoder.encode(batch), len(batch), time.time())
        await asyncio.to_thread(write_whole, path, data)
        self._next += 1
        self._files.append(path)

    async def read(self, path: Path) -> list[Row]:
        """The rows of one batch file (a torn file reads as the records before the tear)."""
        data = await asyncio.to_thread(path.read_bytes)
        records, _ = parse_segment(data)
        rows: list[Row] = []
        for record in records:
            rows.extend((str(kind), tuple(row)) for kind, row in msgspec.msgpack.decode(record.payload))
        return rows

    def remove(self, path: Path) -> None:
        """Forget a batch that is in the database."""
        path.unlink(missing_ok=True)
        if path in self._files:
            self._files.remove(path)


class DeskStore:
    """Ordered, never-blocking, durable persistence for the desk (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        journal: DeskJournal | None = None,
        on_journal_failed: Callable[[OSError], None] | None = None,
        on_row_refused: Callable[[str], None] | None = None,
        fence: Callable[[str], int | None] | None = None,
        on_fenced: Callable[[str, str], None] | None = None,
    ) -> None:
        self._db = db
        # the HA profile (hub/ownership/): each alarm and log row carries its site's fencing token, taken when the
        # row is written; a row the database refuses for it is dropped and its site reported lost
        self._fence = fence or _no_fence
        self._on_fenced = on_fenced
        self._journal = journal
        self._on_journal_failed = on_journal_failed
        self._on_row_refused = on_row_refused
        self._queue: deque[Row] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = asyncio.Lock()

    def forget_site(self, site: str) -> int:
        """The HA profile: drop the queued alarm and log rows of a site another hub holds now (its rows are that hub's
        to write; written later under a token this hub held again, they would pass the fence). Returns how many."""
        kept = deque(row for row in self._queue if _site_of(row) != site)
        dropped = len(self._queue) - len(kept)
        self._queue = kept
        return dropped

    @property
    def backlog(self) -> int:
        """Writes waiting for the database: queued in memory and journaled on disk (in batches)."""
        return len(self._queue) + (len(self._journal.files) if self._journal is not None else 0)

    @property
    def journaled(self) -> bool:
        """Whether batches wait in the journal."""
        return self._journal is not None and bool(self._journal.files)

    def save(self, alarm: Alarm, actor: str, action: str, detail: str, at: datetime) -> None:
        """Queue the alarm's current state and one alarm log line."""
        self._queue.append(("alarm", snapshot_row(alarm)))
        log = (alarm.id, at, actor, action, alarm.state.value, detail[:1000], str(uuid.uuid4()), alarm.site)
        self._queue.append(("log", log))
        self._kick()

    def access(
        self,
        at: datetime,
        staff_id: int,
        role: str,
        site: str,
        resident_id: str,
        purpose: str,
        address: str | None = None,
    ) -> None:
        """Queue one resident access log row (`address`: where the reading page was opened from, when known)."""
        self._queue.append(("access", (at, staff_id, role, site, resident_id, purpose, str(uuid.uuid4()), address)))
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

    async def write_remaining(self, timeout_s: float) -> None:
        """On shutdown: write what is still queued, within `timeout_s` (what does not make it is logged as lost)."""
        if not self._queue:
            return
        try:
            async with asyncio.timeout(timeout_s):
                while self._queue:
                    batch = [self._queue[i] for i in range(min(len(self._queue), _BATCH_MAX))]
                    await self._write(batch)
                    for _ in batch:
                        self._queue.popleft()
        except (TimeoutError, OSError, VakaError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.warning("desk persistence lost at shutdown backlog=%s error=%s", len(self._queue), exc)

    async def write_loop(self) -> None:
        """Write the journal, then the queue, in order; journal the queue while the database is away. Until
        cancelled."""
        backoff = Backoff(0.1, _BACKOFF_MAX_S)
        while True:
            if not self._queue and not self.journaled:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self.drain_journal()
                if self._queue:
                    batch = [self._queue[i] for i in range(min(len(self._queue), _BATCH_MAX))]
                    await self._write(batch)
                    for _ in batch:
                        self._queue.popleft()
            except _DB_ERRORS as exc:
                journaled = await self._to_journal()
                logger.warning(
                    "desk persistence waiting for database backlog=%s journaled=%s error=%s",
                    self.backlog,
                    journaled,
                    exc,
                )
                await backoff.sleep()
                continue
            backoff.reset()

    async def journaled_alarms(self) -> list[tuple[Any, ...]]:
        """The alarm snapshot rows waiting in the journal, oldest first (a start with the database away)."""
        if self._journal is None:
            return []
        rows: list[tuple[Any, ...]] = []
        for path in self._journal.files:
            rows.extend(tuple(row) for kind, row in await self._journal.read(path) if kind == "alarm")
        return rows

    async def drain_journal(self) -> None:
        """Write the journaled batches to the database, oldest first; raises when it does not answer."""
        if self._journal is None:
            return
        async with self._draining:
            for path in self._journal.files:
                rows = await self._journal.read(path)
                if rows:
                    await self._write(rows)
                self._journal.remove(path)
                logger.info("desk journal written back file=%s rows=%s", path.name, len(rows))

    async def _to_journal(self) -> int:
        """Move everything queued to the journal (fsynced); returns how many rows moved. A disk that refuses it
        (full) leaves the rows queued for the next attempt: counted, raised to operations, never a crash."""
        if self._journal is None or not self._queue:
            return 0
        batch = list(self._queue)
        try:
            await self._journal.append(batch)
        except OSError as exc:
            logger.error("desk journal not written rows=%s: %s (kept queued; free the disk)", len(batch), exc)
            if self._on_journal_failed is not None:
                self._on_journal_failed(exc)
            return 0
        for _ in batch:
            self._queue.popleft()
        return len(batch)

    async def close(self, deadline_s: float = 3.0) -> None:
        """Shutdown (and the end of start-up recovery, `Desk.settle_recovery`): what is still queued goes to the
        database within half the deadline, else to the journal."""
        if not self._queue:
            return
        try:
            if self.journaled:
                msg = "journal first"
                raise TimeoutError(msg)
            async with asyncio.timeout(deadline_s / 2):
                await self._write(list(self._queue))
            self._queue.clear()
            return
        except _DB_ERRORS:
            pass
        try:
            async with asyncio.timeout(deadline_s / 2):
                moved = await self._to_journal()
        except (TimeoutError, OSError) as exc:
            logger.error("desk persistence lost rows=%s at shutdown: %s", len(self._queue), exc)
            return
        if moved:
            logger.warning("desk persistence journaled rows=%s at shutdown (database away)", moved)
        elif self._queue:
            logger.error("desk persistence lost rows=%s at shutdown: no journal", len(self._queue))

    async def _write(self, batch: list[Row]) -> None:
        """Write the batch in one transaction; when PostgreSQL refuses it for its content (not its absence), row by
        row, setting aside each row it refuses (desk_refused_rows), so one bad row never holds the rest back."""
        try:
            await self._write_rows(batch)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if not _refused_for_content(exc):
                raise
            logger.error("desk persistence batch refused (%s): writing its %s rows one by one", exc, len(batch))
            for row in batch:
                try:
                    await self._write_rows([row])
                except (asyncpg.PostgresError, asyncpg.InterfaceError) as row_exc:
                    if not _refused_for_content(row_exc):
                        raise
                    if getattr(row_exc, "sqlstate", None) == FENCED:
                        self._fenced(row)
                        continue
                    await self._set_aside(row, row_exc)

    def _fenced(self, row: Row) -> None:
        """A row of a site this hub no longer holds: not written, not set aside (the site's owner has its own)."""
        kind, _ = row
        site = _site_of(row)
        logger.warning("desk row fenced kind=%s site=%s: another hub holds the site; dropped", kind, site)
        if self._on_fenced is not None and site is not None:
            self._on_fenced(str(site), kind)

    async def _set_aside(self, row: Row, exc: Exception) -> None:
        kind, values = row
        text = repr(values).replace("\x00", "\\x00")
        async with self._db.acquire() as conn:
            await conn.execute(_REFUSED, kind, text[:20000], f"{type(exc).__name__}: {exc}"[:1000])
        logger.error("desk persistence row set aside kind=%s error=%s (table desk_refused_rows)", kind, exc)
        if self._on_row_refused is not None:
            self._on_row_refused(kind)

    async def _write_rows(self, batch: list[Row]) -> None:
        latest: dict[str, tuple[Any, ...]] = {}
        logs: list[tuple[Any, ...]] = []
        accesses: list[tuple[Any, ...]] = []
        duty: list[tuple[Any, ...]] = []
        fence = self._fence
        for kind, row in batch:
            if kind == "alarm":
                latest[row[0]] = (*row, fence(row[5]))
            elif kind == "log":  # rows journaled before the site was kept have 7 fields
                site = row[7] if len(row) > 7 else None
                logs.append((*row[:7], site, fence(site) if site is not None else None))
            elif kind == "duty":
                duty.append(row)
            else:  # rows journalled before the address was kept have 7 fields
                accesses.append(row if len(row) == 8 else (*row, None))
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


def _no_fence(site: str) -> int | None:
    return None


def _site_of(row: Row) -> str | None:
    """The site of a queued alarm or log row (None for the others, and for log rows journaled without it)."""
    kind, values = row
    if kind == "alarm":
        return str(values[5])
    if kind == "log" and len(values) > 7:
        return str(values[7])
    return None


def alarm_from_row(row: asyncpg.Record | Mapping[str, Any]) -> Alarm:
    """An alarm as stored in `desk_alarms` (restore after a restart), or a snapshot row by column name."""
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
        closed_at=row["closed_at"],
    )
