"""Staff login sessions: in memory (the staff page never waits for the database to check a cookie) and in
`staff_sessions` (so a hub restart does not log the night patrol out). Only the SHA-256 of a session token is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from hub.model import VakaError
from hub.people.staff import StaffMember
from hub.store.db import DATABASE_AWAY
from hub.store.files import write_whole
from hub.store.staff import member_from_row

if TYPE_CHECKING:
    from hub.runtime.tasks import Spawner
    from hub.store.pool import Database

logger = logging.getLogger(__name__)

_LAST_SEEN_WRITE_S = 60.0
_DB_CHECK_TIMEOUT_S = 1.0


@dataclass(slots=True)
class Session:
    """A logged-in browser: who, its CSRF token and when it was last used (wall time, seconds)."""

    staff: StaffMember
    csrf_token: str
    created_s: float
    last_seen_s: float
    written_s: float = field(default=0.0)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_key(token: str) -> str:
    """What a session is stored and known under: the SHA-256 of its cookie token (never the token itself)."""
    return _token_hash(token)


class SessionStore:
    """Login sessions in memory, mirrored to `staff_sessions`; a session idle longer than `idle_s` is gone."""

    def __init__(self, db: Database, idle_s: float, *, spawner: Spawner, local_path: Path | None = None) -> None:
        self._db = db
        self._spawner = spawner
        self._idle_s = idle_s
        self._sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        # the hub's own copy (token hashes, never tokens): a restart while the database is away logs nobody out
        self._local_path = local_path
        self._local: dict[str, Session] | None = None

    async def create(self, staff: StaffMember) -> tuple[str, Session]:
        """Start a session; returns the cookie token (never stored in clear) and the session."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(staff, secrets.token_urlsafe(32), now, now, now)
        self._sessions[_token_hash(token)] = session
        self._save_local()
        async with self._db.acquire() as conn:
            await conn.execute(
                "INSERT INTO staff_sessions (token_sha256, staff_id, csrf_token, created_at, last_seen)"
                " VALUES ($1, $2, $3, $4, $4)",
                _token_hash(token),
                staff.id,
                session.csrf_token,
                datetime.fromtimestamp(now, UTC),
            )
        return token, session

    async def get(self, token: str | None, *, check_db: bool = True) -> Session | None:
        """The live session for a cookie token, touching its idle timer; None when unknown, revoked or idle too long.

        With `check_db` the stored session is touched and must still exist (a password change or logout elsewhere
        ends it); when the database is away the in-memory session stands, so nobody is logged out by an outage.
        """
        if not token:
            return None
        key = _token_hash(token)
        session = self._sessions.get(key)
        loaded = False
        if session is None:
            session = await self._load(key)
            if session is None:
                return None
            self._sessions[key] = session
            loaded = True
        now = time.time()
        if now - session.last_seen_s > self._idle_s:
            await self.delete(token)
            return None
        session.last_seen_s = now
        if check_db and not loaded:
            if await self._touch(key, now) is False:
                self._sessions.pop(key, None)
                return None
            session.written_s = now
        elif now - session.written_s > _LAST_SEEN_WRITE_S:
            session.written_s = now
            self._spawn(self._touch(key, now))
        return session

    def live(self, key: str) -> Session | None:
        """The in-memory session stored under `key` (see `session_key`) while it is neither ended nor idle too long.

        No database and no touch: the staff pages' WebSockets ask this before every delivery.
        """
        session = self._sessions.get(key)
        if session is None or time.time() - session.last_seen_s > self._idle_s:
            return None
        return session

    def staff_changed(self, staff_id: int, member: StaffMember | None, keys: set[str]) -> int:
        """Apply an account change read from the database: sessions of `staff_id` not in `keys` (all of them when
        the account is gone or disabled) end here too; the others carry the new `member`. Returns sessions ended."""
        ended = 0
        for key, session in list(self._sessions.items()):
            if session.staff.id != staff_id:
                continue
            if member is None or key not in keys:
                del self._sessions[key]
                ended += 1
            else:
                session.staff = member
        if ended:
            self._save_local()
        return ended

    async def drop_idle(self) -> int:
        """End every session idle longer than allowed, in memory and in the database; returns how many."""
        now = time.time()
        idle = [k for k, s in self._sessions.items() if now - s.last_seen_s > self._idle_s]
        for key in idle:
            del self._sessions[key]
        if idle:
            async with self._db.acquire() as conn:
                await conn.execute("DELETE FROM staff_sessions WHERE token_sha256 = ANY($1::text[])", idle)
        return len(idle)

    async def delete(self, token: str) -> None:
        """Log out."""
        key = _token_hash(token)
        self._sessions.pop(key, None)
        if self._local is not None:
            self._local.pop(key, None)
        self._save_local()
        async with self._db.acquire() as conn:
            await conn.execute("DELETE FROM staff_sessions WHERE token_sha256 = $1", key)

    async def _load(self, key: str) -> Session | None:
        try:
            return await self._load_stored(key)
        except DATABASE_AWAY:
            return await self._load_local(key)

    async def _load_local(self, key: str) -> Session | None:
        """A session from the hub's own copy while the database is away (a restart during an outage)."""
        if self._local_path is None:
            return None
        if self._local is None:
            self._local = await asyncio.to_thread(_read_local, self._local_path)
        return self._local.pop(key, None)

    def _save_local(self) -> None:
        if self._local_path is not None:
            self._spawn(self._write_local(self._local_path))

    async def _write_local(self, path: Path) -> None:
        """Sessions of this run and those of earlier runs not yet used since, without the idle ones."""
        if self._local is None:
            self._local = await asyncio.to_thread(_read_local, path)
        now = time.time()
        known = {k: s for k, s in {**self._local, **self._sessions}.items() if now - s.last_seen_s <= self._idle_s}
        await asyncio.to_thread(_write_local, path, known)

    async def _load_stored(self, key: str) -> Session | None:
        async with self._db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT s.*, extract(epoch FROM ss.created_at) AS created_s, extract(epoch FROM ss.last_seen) AS seen_s,"
                " ss.csrf_token FROM staff_sessions ss JOIN staff s ON s.id = ss.staff_id"
                " WHERE ss.token_sha256 = $1 AND s.active",
                key,
            )
            if row is None:
                return None
            unit_rows = await conn.fetch("SELECT site, unit FROM staff_units WHERE staff_id = $1", row["id"])
        staff = member_from_row(row, ((u["site"], u["unit"]) for u in unit_rows))
        seen = float(row["seen_s"])
        return Session(staff, row["csrf_token"], float(row["created_s"]), seen, seen)

    async def _touch(self, key: str, now: float) -> bool | None:
        """Record use; False when the stored session is gone, None when the database did not answer."""
        try:
            async with asyncio.timeout(_DB_CHECK_TIMEOUT_S), self._db.acquire() as conn:
                found = await conn.fetchval(
                    "UPDATE staff_sessions SET last_seen = $2 WHERE token_sha256 = $1 RETURNING true",
                    key,
                    datetime.fromtimestamp(now, UTC),
                )
        except (TimeoutError, OSError, VakaError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None
        return bool(found)

    async def aclose(self) -> None:
        """Wait (at most a second) for last-seen writes in flight, then cancel what is left (shutdown)."""
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=_DB_CHECK_TIMEOUT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[Any] = self._spawner.spawn(coro, name="vaka.staff.session.touch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _write_local(path: Path, sessions: dict[str, Session]) -> None:
    """Write the sessions (token hashes, who, CSRF token, times) whole or not at all; a full disk is logged only."""
    rows = [
        (
            key,
            s.staff.as_row(),
            s.csrf_token,
            s.created_s,
            s.last_seen_s,
        )
        for key, s in sessions.items()
    ]  # fmt: skip
    try:
        write_whole(path, msgspec.msgpack.encode(rows), mode=0o600)
    except OSError as exc:
        logger.warning("staff sessions' local copy not written: %s", exc)


def _read_local(path: Path) -> dict[str, Session]:
    try:
        rows = msgspec.msgpack.decode(path.read_bytes())
        sessions = {}
        for key, member, csrf, created_s, seen_s in rows:
            staff = StaffMember.from_row(member)
            sessions[str(key)] = Session(staff, str(csrf), float(created_s), float(seen_s), float(seen_s))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, msgspec.DecodeError) as exc:
        logger.warning("staff sessions' local copy cannot be read: %s", exc)
        return {}
    return sessions
