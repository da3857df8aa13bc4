"""Relative accounts: invitations (one-time links valid 72 h, only their hash stored), passwords (argon2id, the
same hashing as staff), login sessions (checked against the database on every request) and passkeys.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from hub.people.staff import StaffError
from hub.relatives import RelativesError
from hub.relatives.consent import relative_id_for, resident_known
from hub.store.staff import check_password, hash_password

logger = logging.getLogger(__name__)

INVITATION_VALID = timedelta(hours=72)
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def token_hash(token: str) -> str:
    """SHA-256 of a link or session token: what is stored instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Relative:
    """A relative's account."""

    id: int
    email: str
    lang: str


@dataclass(frozen=True, slots=True)
class RelativeSession:
    """A logged-in relative's browser."""

    relative: Relative
    csrf_token: str


def _relative(row: asyncpg.Record) -> Relative:
    return Relative(row["id"], row["email"], row["lang"])


async def has_live_consent(conn: asyncpg.Connection, email: str, resident_id: str, at: datetime) -> bool:
    """True when the relative of this e-mail has a live consent for the resident (a nurse invites only then)."""
    return bool(
        await conn.fetchval(
            "SELECT true FROM consents c JOIN relatives r ON r.id = c.relative_id WHERE lower(r.email) = lower($1)"
            " AND c.resident_id = $2 AND c.revoked_at IS NULL AND (c.valid_until IS NULL OR c.valid_until > $3)"
            " LIMIT 1",
            email.strip(),
            resident_id,
            at,
        )
    )


async def has_password(conn: asyncpg.Connection, email: str) -> bool:
    """True when an account of this e-mail is in use (its invitation links ask its owner to sign in, never set a
    password)."""
    return bool(
        await conn.fetchval(
            "SELECT true FROM relatives WHERE lower(email) = lower($1) AND password_hash IS NOT NULL", email.strip()
        )
    )


async def invite(
    conn: asyncpg.Connection, *, email: str, resident_id: str, created_by: str, at: datetime
) -> tuple[str, int]:
    """A one-time invitation token for the relative (created if new); only its hash is stored. For an account that
    already has a password the link only asks its owner to sign in and accept it (`accept_link`): no link ever sets
    the password of an account in use."""
    if not await resident_known(conn, resident_id):
        msg = f"no resident {resident_id!r} in the inventory (see `vaka site load`)"
        raise RelativesError(msg)
    token = secrets.token_urlsafe(32)
    async with conn.transaction():
        relative_id = await relative_id_for(conn, email, create=True)
        assert relative_id is not None
        await conn.execute(
            "INSERT INTO relative_invitations (token_sha256, relative_id, resident_id, created_by, created_at,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            token_hash(token),
            relative_id,
            resident_id,
            created_by,
            at,
            at + INVITATION_VALID,
        )
    logger.info("relative invited relative=%s", relative_id)
    return token, relative_id


async def invitation_usable(conn: asyncpg.Connection, token: str, at: datetime) -> str:
    """`ok` (choose a password), `account` (the account is in use: its owner signs in to accept), `used`, `expired`
    or `unknown` for an invitation link."""
    row = await conn.fetchrow(
        "SELECT i.used_at, i.expires_at, r.password_hash IS NOT NULL AS in_use FROM relative_invitations i"
        " JOIN relatives r ON r.id = i.relative_id WHERE i.token_sha256 = $1",
        token_hash(token),
    )
    if row is None:
        return "unknown"
    if row["used_at"] is not None:
        return "used"
    if at >= row["expires_at"]:
        return "expired"
    return "account" if row["in_use"] else "ok"


async def _use(conn: asyncpg.Connection, token: str, at: datetime, relative_id: int | None = None) -> int:
    """Mark the link used (once, in time, and for `relative_id` when given); its relative's id."""
    used = await conn.fetchval(
        "UPDATE relative_invitations SET used_at = $2 WHERE token_sha256 = $1 AND used_at IS NULL"
        " AND expires_at > $2 AND ($3::bigint IS NULL OR relative_id = $3) RETURNING relative_id",
        token_hash(token),
        at,
        relative_id,
    )
    if used is None:
        state = await invitation_usable(conn, token, at)
        msg = f"invitation {'for another account' if state in ('ok', 'account') else state}"
        raise RelativesError(msg)
    return int(used)


async def accept_link(conn: asyncpg.Connection, token: str, relative: Relative, at: datetime) -> None:
    """The signed-in owner of an account in use accepts a link to it (the password stays hers); RelativesError when
    the link is for another account, used, expired or unknown."""
    async with conn.transaction():
        await _use(conn, token, at, relative.id)
    logger.info("relative invitation accepted by its signed-in owner relative=%s", relative.id)


async def accept_invitation(conn: asyncpg.Connection, token: str, password: str, at: datetime) -> Relative:
    """Use the link once: set the password of a new account; RelativesError when used, expired, unknown, too short
    or when the account already has a password (then only its owner, signed in, accepts the link)."""
    try:
        password_hash = await asyncio.to_thread(hash_password, password)
    except StaffError as exc:
        raise RelativesError(str(exc)) from exc
    async with conn.transaction():
        relative_id = await _use(conn, token, at)
        row = await conn.fetchrow(
            "UPDATE relatives SET password_hash = $2, active = true WHERE id = $1 AND password_hash IS NULL"
            " RETURNING *",
            relative_id,
            password_hash,
        )
        if row is None:  # rolls the link's use back with the transaction
            msg = "invitation account"
            raise RelativesError(msg)
        await conn.execute("DELETE FROM relative_sessions WHERE relative_id = $1", relative_id)
    logger.info("relative invitation accepted relative=%s", relative_id)
    return _relative(row)


async def authenticate(conn: asyncpg.Connection, email: str, password: str) -> Relative | None:
    """The relative when e-mail and password match, else None (in about the same time either way)."""
    row = await conn.fetchrow(
        "SELECT * FROM relatives WHERE lower(email) = lower($1) AND active AND password_hash IS NOT NULL", email
    )
    ok = await asyncio.to_thread(check_password, row["password_hash"] if row else _DUMMY_HASH, password)
    return _relative(row) if row is not None and ok else None


async def relative_by_id(conn: asyncpg.Connection, relative_id: int) -> Relative | None:
    """An active relative's account."""
    row = await conn.fetchrow("SELECT * FROM relatives WHERE id = $1 AND active", relative_id)
    return _relative(row) if row else None


async def disable(conn: asyncpg.Connection, email: str) -> bool:
    """Close a relative's account: no login, every session ended at once; False when there is no such account."""
    async with conn.transaction():
        relative_id = await conn.fetchval(
            "UPDATE relatives SET active = false WHERE lower(email) = lower($1) RETURNING id", email.strip()
        )
        if relative_id is None:
            return False
        await conn.execute("DELETE FROM relative_sessions WHERE relative_id = $1", relative_id)
        await conn.execute(
            "UPDATE relative_invitations SET used_at = now() WHERE relative_id = $1 AND used_at IS NULL", relative_id
        )
    logger.info("relative account closed relative=%s", relative_id)
    return True


async def set_lang(conn: asyncpg.Connection, relative_id: int, lang: str) -> None:
    """Remember the relative's language."""
    await conn.execute("UPDATE relatives SET lang = $2 WHERE id = $1", relative_id, lang)


async def create_session(conn: asyncpg.Connection, relative_id: int, at: datetime) -> str:
    """A new login session; returns the cookie token (stored only as its hash)."""
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO relative_sessions (token_sha256, relative_id, csrf_token, created_at, last_seen)"
        " VALUES ($1, $2, $3, $4, $4)",
        token_hash(token),
        relative_id,
        secrets.token_urlsafe(32),
        at,
    )
    return token


async def session(conn: asyncpg.Connection, token: str | None, at: datetime, idle_s: float) -> RelativeSession | None:
    """The live session of a cookie token, touched; None when unknown, ended or idle longer than `idle_s`."""
    if not token:
        return None
    row = await conn.fetchrow(
        "UPDATE relative_sessions ss SET last_seen = $2 FROM relatives r WHERE ss.token_sha256 = $1"
        " AND r.id = ss.relative_id AND r.active AND ss.last_seen > $2::timestamptz - make_interval(secs => $3::float8)"
        " RETURNING r.id, r.email, r.lang, ss.csrf_token",
        token_hash(token),
        at,
        idle_s,
    )
    return RelativeSession(_relative(row), row["csrf_token"]) if row else None


async def end_session(conn: asyncpg.Connection, token: str) -> None:
    """Log out."""
    await conn.execute("DELETE FROM relative_sessions WHERE token_sha256 = $1", token_hash(token))
