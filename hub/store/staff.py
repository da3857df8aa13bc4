"""Staff accounts in the database: argon2id password hashes, create, update, load and log in."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hub.people.staff import Role, StaffError, StaffMember

logger = logging.getLogger(__name__)

_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
# verified against when the user name is unknown, so a wrong name costs as long as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


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


def member_from_row(row: asyncpg.Record, units: Iterable[tuple[str, str]]) -> StaffMember:
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


_INSERT_SQL = (
    "INSERT INTO staff (username, display_name, role, password_hash, phone, lang)"
    " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *"
)
_REPLACE_SQL = (
    "UPDATE staff SET display_name = $2, role = $3, password_hash = $4, phone = $5, lang = $6, active = true"
    " WHERE username = $1 RETURNING *"
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
    replace: bool = False,
) -> StaffMember:
    """Create a staff account with its unit membership (StaffError when the name is taken); with `replace`, replace
    an existing account's password, role, units and details instead, and end its stored sessions (log in again)."""
    unit_set, password_hash = await _units_and_hash(units, password)
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                _REPLACE_SQL if replace else _INSERT_SQL, username, display_name, role.value, password_hash, phone, lang
            )
        except asyncpg.UniqueViolationError as exc:
            msg = f"staff user name {username!r} is taken"
            raise StaffError(msg) from exc
        if row is None:
            msg = f"no staff member {username!r}"
            raise StaffError(msg)
        if replace:
            await conn.execute("DELETE FROM staff_units WHERE staff_id = $1", row["id"])
            await conn.execute("DELETE FROM staff_sessions WHERE staff_id = $1", row["id"])
        await _set_units(conn, row["id"], unit_set)
    logger.info(
        "staff %s id=%s role=%s units=%s", "updated" if replace else "created", row["id"], role.value, len(unit_set)
    )
    return member_from_row(row, unit_set)


async def load_staff(conn: asyncpg.Connection) -> list[StaffMember]:
    """Every active staff member with their units."""
    rows = await conn.fetch("SELECT * FROM staff WHERE active ORDER BY id")
    unit_rows = await conn.fetch("SELECT staff_id, site, unit FROM staff_units")
    units: dict[int, set[tuple[str, str]]] = {}
    for u in unit_rows:
        units.setdefault(u["staff_id"], set()).add((u["site"], u["unit"]))
    return [member_from_row(r, units.get(r["id"], ())) for r in rows]


async def load_duty(conn: asyncpg.Connection) -> dict[int, datetime]:
    """Who is signed on to a shift: staff id -> when it ends."""
    return {r["staff_id"]: r["until"] for r in await conn.fetch("SELECT staff_id, until FROM staff_duty")}


async def staff_member(conn: asyncpg.Connection, username: str) -> StaffMember | None:
    """The active staff member of this user name with her units, or None."""
    row = await conn.fetchrow("SELECT * FROM staff WHERE username = $1 AND active", username)
    if row is None:
        return None
    unit_rows = await conn.fetch("SELECT site, unit FROM staff_units WHERE staff_id = $1", row["id"])
    return member_from_row(row, ((u["site"], u["unit"]) for u in unit_rows))


async def authenticate(conn: asyncpg.Connection, username: str, password: str) -> StaffMember | None:
    """The staff member when user name and password match, else None (in about the same time either way)."""
    row = await conn.fetchrow("SELECT * FROM staff WHERE username = $1 AND active", username)
    ok = await asyncio.to_thread(check_password, row["password_hash"] if row else _DUMMY_HASH, password)
    if row is None or not ok:
        return None
    unit_rows = await conn.fetch("SELECT site, unit FROM staff_units WHERE staff_id = $1", row["id"])
    return member_from_row(row, ((u["site"], u["unit"]) for u in unit_rows))
