"""Staff accounts: argon2id passwords, roles, unit membership, login sessions and `vaka staff add`.

A session lives in memory (the staff page never waits for the database to check a cookie) and in `staff_sessions`
(so a hub restart does not log the night patrol out). Only the SHA-256 of a session token is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import getpass
import hashlib
import logging
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hub.model import VakaError

if TYPE_CHECKING:
    from hub.settings import Settings

logger = logging.getLogger(__name__)

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
# verified against when the user name is unknown, so a wrong name costs as long as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
ALL_UNITS = "*"
_LAST_SEEN_WRITE_S = 60.0
_DB_CHECK_TIMEOUT_S = 1.0


class StaffError(VakaError):
    """A staff account cannot be created or changed as asked."""


class Database(Protocol):
    """What the desk and the staff pages need from hub.store: a connection with the schema on its search path."""

    def acquire(self) -> AbstractAsyncContextManager[asyncpg.Connection]: ...


class Role(enum.StrEnum):
    """What a person may do: staff answer alarms, nurses are escalated to, admins lead the team."""

    STAFF = "staff"
    NURSE = "nurse"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class StaffMember:
    """One person who answers alarms, with the care units they work in (`(site, unit)`, unit `*` for all)."""

    id: int
    username: str
    role: Role
    units: frozenset[tuple[str, str]]
    display_name: str = ""
    phone: str | None = None
    lang: str = "sv"

    @property
    def label(self) -> str:
        """The name other staff see on an alarm they have taken."""
        return self.display_name or self.username

    def sees(self, site: str, unit: str | None) -> bool:
        """True when an alarm or resident of this site and unit is theirs; unit None means the whole site."""
        if unit is None:
            return any(s == site for s, _ in self.units)
        return (site, unit) in self.units or (site, ALL_UNITS) in self.units

    @property
    def sites(self) -> frozenset[str]:
        """Sites this person works at."""
        return frozenset(s for s, _ in self.units)


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    if len(password) < 8:
        msg = "password must have at least 8 characters"
        raise StaffError(msg)
    return _hasher.hash(password)


def check_password(password_hash: str, password: str) -> bool:
    """True when `password` matches; slow on purpose (argon2id), so call it off the event loop."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _member(row: asyncpg.Record, units: Iterable[tuple[str, str]]) -> StaffMember:
    return StaffMember(
        id=row["id"],
        username=row["username"],
        role=Role(row["role"]),
        units=frozenset(units),
        display_name=row["display_name"],
        phone=row["phone"],
        lang=row["lang"],
    )


async def _units_and_hash(units: Iterable[tuple[str, str]], password: str) -> tuple[frozenset[tuple[str, str]], str]:
    """The units as a set (at least one) and the argon2id hash of the password (off the loop)."""
    unit_set = frozenset(units)
    if not unit_set:
        msg = "a staff member needs at least one unit (site/unit)"
        raise StaffError(msg)
    return unit_set, await asyncio.to_thread(hash_password, password)


async def _set_units(conn: asyncpg.Connection, staff_id: int, units: frozenset[tuple[str, str]]) -> None:
    await conn.executemany(
        "INSERT INTO staff_units (staff_id, site, unit) VALUES ($1, $2, $3)",
        [(staff_id, site, unit) for site, unit in sorted(units)],
    )


async def create_staff(
    conn: asyncpg.Connection,
    *,
    username: str,
    password: str,
    role: Role,
    units: Iterable[tuple[str, str]],
    display_name: str = "",
    phone: str | None = None,
    lang: str = "sv",
) -> StaffMember:
    """Create a staff account with its unit membership; StaffError when the name is taken."""
    unit_set, password_hash = await _units_and_hash(units, password)
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                "INSERT INTO staff (username, display_name, role, password_hash, phone, lang)"
                " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
                username,
                display_name,
                role.value,
                password_hash,
                phone,
                lang,
            )
        except asyncpg.UniqueViolationError as exc:
            msg = f"staff user name {username!r} is taken"
            raise StaffError(msg) from exc
        assert row is not None
        await _set_units(conn, row["id"], unit_set)
    logger.info("staff created id=%s role=%s units=%s", row["id"], role.value, len(unit_set))
    return _member(row, unit_set)


async def update_staff(
    conn: asyncpg.Connection,
    *,
    username: str,
    password: str,
    role: Role,
    units: Iterable[tuple[str, str]],
    display_name: str = "",
    phone: str | None = None,
    lang: str = "sv",
) -> StaffMember:
    """Replace an account's password, role, units and details; its stored sessions end (log in again)."""
    unit_set, password_hash = await _units_and_hash(units, password)
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE staff SET display_name = $2, role = $3, password_hash = $4, phone = $5, lang = $6, active = true"
            " WHERE username = $1 RETURNING *",
            username,
            display_name,
            role.value,
            password_hash,
            phone,
            lang,
        )
        if row is None:
            msg = f"no staff member {username!r}"
            raise StaffError(msg)
        await conn.execute("DELETE FROM staff_units WHERE staff_id = $1", row["id"])
        await _set_units(conn, row["id"], unit_set)
        await conn.execute("DELETE FROM staff_sessions WHERE staff_id = $1", row["id"])
    logger.info("staff updated id=%s role=%s units=%s", row["id"], role.value, len(unit_set))
    return _member(row, unit_set)


async def load_staff(conn: asyncpg.Connection) -> list[StaffMember]:
    """Every active staff member with their units."""
    rows = await conn.fetch("SELECT * FROM staff WHERE active ORDER BY id")
    unit_rows = await conn.fetch("SELECT staff_id, site, unit FROM staff_units")
    units: dict[int, set[tuple[str, str]]] = {}
    for u in unit_rows:
        units.setdefault(u["staff_id"], set()).add((u["site"], u["unit"]))
    return [_member(r, units.get(r["id"], ())) for r in rows]


async def authenticate(conn: asyncpg.Connection, username: str, password: str) -> StaffMember | None:
    """The staff member when user name and password match, else None (in about the same time either way)."""
    row = await conn.fetchrow("SELECT * FROM staff WHERE username = $1 AND active", username)
    ok = await asyncio.to_thread(check_password, row["password_hash"] if row else _DUMMY_HASH, password)
    if row is None or not ok:
        return None
    unit_rows = await conn.fetch("SELECT site, unit FROM staff_units WHERE staff_id = $1", row["id"])
    return _member(row, ((u["site"], u["unit"]) for u in unit_rows))


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


class SessionStore:
    """Login sessions in memory, mirrored to `staff_sessions`; a session idle longer than `idle_s` is gone."""

    def __init__(self, db: Database, idle_s: float) -> None:
        self._db = db
        self._idle_s = idle_s
        self._sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def create(self, staff: StaffMember) -> tuple[str, Session]:
        """Start a session; returns the cookie token (never stored in clear) and the session."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(staff, secrets.token_urlsafe(32), now, now, now)
        self._sessions[_token_hash(token)] = session
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

    def peek(self, token: str | None) -> Session | None:
        """The in-memory session without touching it (WebSocket upgrade checks)."""
        if not token:
            return None
        session = self._sessions.get(_token_hash(token))
        if session is None or time.time() - session.last_seen_s > self._idle_s:
            return None
        return session

    async def delete(self, token: str) -> None:
        """Log out."""
        key = _token_hash(token)
        self._sessions.pop(key, None)
        async with self._db.acquire() as conn:
            await conn.execute("DELETE FROM staff_sessions WHERE token_sha256 = $1", key)

    async def _load(self, key: str) -> Session | None:
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
        staff = _member(row, ((u["site"], u["unit"]) for u in unit_rows))
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

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class PlainDatabase:
    """A minimal Database on one asyncpg pool, for `vaka staff add` and tests when hub.store is not wired."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection."""
        async with self._pool.acquire() as conn:
            yield conn  # type: ignore[misc]


def _unit(text: str) -> tuple[str, str]:
    site, sep, unit = text.partition("/")
    if not sep or not site or not unit:
        msg = f"unit {text!r}: expected SITE/UNIT (UNIT may be *)"
        raise argparse.ArgumentTypeError(msg)
    return site, unit


def add_staff_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vaka staff add`."""
    parser.add_argument("username", help="login name")
    parser.add_argument("--role", choices=[r.value for r in Role], default=Role.STAFF.value)
    parser.add_argument(
        "--unit", action="append", type=_unit, required=True, metavar="SITE/UNIT", help="repeatable; UNIT * for all"
    )
    parser.add_argument("--name", default="", help="name shown to colleagues on alarms they take")
    parser.add_argument("--phone", default=None, help="number for the SMS gateway channel")
    parser.add_argument("--lang", choices=["sv", "en"], default="sv")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    parser.add_argument("--update", action="store_true", help="replace an existing account (password, role, units)")


async def staff_add_main(args: argparse.Namespace, settings: Settings) -> int:
    """Create one staff account; returns the process exit code."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if password != getpass.getpass("again: "):
            print("passwords differ", file=sys.stderr)
            return 2
    try:
        conn = await asyncpg.connect(
            settings.db.dsn.get_secret_value(),
            server_settings={"search_path": settings.db.db_schema},
            timeout=settings.db.connect_timeout_s,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"database: {exc}", file=sys.stderr)
        return 1
    try:
        member = await (update_staff if args.update else create_staff)(
            conn,
            username=args.username,
            password=password,
            role=Role(args.role),
            units=args.unit,
            display_name=args.name,
            phone=args.phone,
            lang=args.lang,
        )
    except StaffError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        await conn.close()
    print(f"staff {member.username} (id {member.id}, {member.role.value}) {'updated' if args.update else 'created'}")
    return 0
