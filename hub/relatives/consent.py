"""The residents' consents: which relative may see which scope of a resident's status, from when, until when.

A consent is one row per (resident, relative, scope) grant; revoking sets `revoked_at` and keeps the row, so the
record of what was allowed survives. A scope is *live* at time `t` when it was recorded at or before `t`, is not
revoked at `t` and has not ended (`valid_until`) at `t`. Every read of a relative's view checks this against the
database on that request, so a revocation holds for the next request of every open page.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hub.relatives import RelativesError

logger = logging.getLogger(__name__)


class Scope(enum.StrEnum):
    """What a relative may see, each as little as serves its purpose."""

    NIGHT_SUMMARY = "night_summary"
    """calm / restless / alarms handled (with time and category), per night"""
    ALARM_NOTICE = "alarm_notice"
    """that an alarm was handled, when, and its category; never while open, never what it was about"""
    DEVICE_HEALTH = "device_health"
    """the home's technology works or needs service"""


class GivenBy(enum.StrEnum):
    """Who gave the consent."""

    RESIDENT = "resident"
    REPRESENTATIVE = "representative"


@dataclass(frozen=True, slots=True)
class Consent:
    """One consented scope for one relative, as recorded."""

    id: int
    resident_id: str
    relative_id: int
    relative_email: str
    scope: Scope
    given_by: GivenBy
    recorded_by: str
    recorded_at: datetime
    text_version: str
    valid_until: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    def live(self, at: datetime) -> bool:
        """True when this consent allows reading its scope at `at`."""
        if self.recorded_at > at:
            return False
        if self.revoked_at is not None and self.revoked_at <= at:
            return False
        return self.valid_until is None or at < self.valid_until

    def status(self, at: datetime) -> str:
        """live, revoked, ended or future, as staff and the resident read it."""
        if self.revoked_at is not None and self.revoked_at <= at:
            return "revoked"
        if self.valid_until is not None and at >= self.valid_until:
            return "ended"
        return "live" if self.recorded_at <= at else "future"


_SELECT = "SELECT c.*, r.email AS relative_email FROM consents c JOIN relatives r ON r.id = c.relative_id"


def _consent(row: asyncpg.Record) -> Consent:
    return Consent(
        id=row["id"],
        resident_id=row["resident_id"],
        relative_id=row["relative_id"],
        relative_email=row["relative_email"],
        scope=Scope(row["scope"]),
        given_by=GivenBy(row["given_by"]),
        recorded_by=row["recorded_by"],
        recorded_at=row["recorded_at"],
        text_version=row["text_version"],
        valid_until=row["valid_until"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
    )


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Scopes from their names, in a stable order; RelativesError naming the wrong one and the right ones."""
    scopes: list[Scope] = []
    for value in values:
        try:
            scope = Scope(value)
        except ValueError:
            msg = f"unknown scope {value!r}: use {', '.join(s.value for s in Scope)}"
            raise RelativesError(msg) from None
        if scope not in scopes:
            scopes.append(scope)
    if not scopes:
        msg = f"name at least one scope: {', '.join(s.value for s in Scope)}"
        raise RelativesError(msg)
    return scopes


async def resident_known(conn: asyncpg.Connection, resident_id: str) -> bool:
    """True when the resident is in the inventory."""
    return bool(await conn.fetchval("SELECT true FROM residents WHERE id = $1", resident_id))


async def relative_id_for(conn: asyncpg.Connection, email: str, *, create: bool = False) -> int | None:
    """The relative account of `email` (case-insensitive); created without a password when `create`."""
    email = email.strip()
    if "@" not in email or len(email) > 254:
        msg = f"{email!r} is not an e-mail address"
        raise RelativesError(msg)
    found: int | None = await conn.fetchval("SELECT id FROM relatives WHERE lower(email) = lower($1)", email)
    if found is None and create:
        found = await conn.fetchval(
            "INSERT INTO relatives (email) VALUES ($1) ON CONFLICT ((lower(email))) DO UPDATE SET email = relatives.email"
            " RETURNING id",
            email,
        )
    return found


async def grant(
    conn: asyncpg.Connection,
    *,
    resident_id: str,
    relative_email: str,
    scopes: Sequence[Scope],
    given_by: GivenBy,
    recorded_by: str,
    text_version: str,
    at: datetime,
    valid_until: datetime | None = None,
) -> list[Consent]:
    """Record consent to `scopes` for the relative (created if new); a scope already live is left as it is."""
    if not await resident_known(conn, resident_id):
        msg = f"no resident {resident_id!r} in the inventory (see `vaka site load`)"
        raise RelativesError(msg)
    if valid_until is not None and valid_until <= at:
        msg = "the consent would end before it starts (--until is in the past)"
        raise RelativesError(msg)
    if not recorded_by.strip():
        msg = "say who recorded the consent (--recorded-by)"
        raise RelativesError(msg)
    async with conn.transaction():
        relative_id = await relative_id_for(conn, relative_email, create=True)
        assert relative_id is not None
        current = {c.scope: c for c in await consents_for(conn, resident_id, relative_id=relative_id) if c.live(at)}
        made: list[Consent] = []
        for scope in scopes:
            if scope in current and current[scope].valid_until == valid_until:
                made.append(current[scope])
                continue
            if scope in current:  # a new end date replaces the live consent: the old one is ended by this grant
                await _revoke_ids(conn, [current[scope].id], recorded_by, at)
            row = await conn.fetchrow(
                "INSERT INTO consents (resident_id, relative_id, scope, given_by, recorded_by, recorded_at,"
                " text_version, valid_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                resident_id,
                relative_id,
                scope.value,
                given_by.value,
                recorded_by,
                at,
                text_version,
                valid_until,
            )
            assert row is not None
            made.extend(c for c in await consents_for(conn, resident_id, relative_id=relative_id) if c.id == row["id"])
    logger.info("consent granted consents=%s scopes=%s", [c.id for c in made], [s.value for s in scopes])
    return made


async def _revoke_ids(conn: asyncpg.Connection, ids: list[int], by: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE consents SET revoked_at = $2, revoked_by = $3 WHERE id = ANY($1::bigint[]) AND revoked_at IS NULL",
        ids,
        at,
        by,
    )


async def revoke(
    conn: asyncpg.Connection,
    *,
    resident_id: str,
    relative_email: str,
    scopes: Sequence[Scope] | None,
    recorded_by: str,
    at: datetime,
) -> list[Consent]:
    """Revoke the relative's live consents to `scopes` (all when None); returns what was revoked."""
    if not recorded_by.strip():
        msg = "say who recorded the revocation (--recorded-by)"
        raise RelativesError(msg)
    relative_id = await relative_id_for(conn, relative_email)
    if relative_id is None:
        msg = f"no relative {relative_email!r}"
        raise RelativesError(msg)
    async with conn.transaction():
        live = [
            c
            for c in await consents_for(conn, resident_id, relative_id=relative_id)
            if c.live(at) and (scopes is None or c.scope in scopes)
        ]
        await _revoke_ids(conn, [c.id for c in live], recorded_by, at)
    logger.info("consent revoked consents=%s", [c.id for c in live])
    return live


async def consents_for(conn: asyncpg.Connection, resident_id: str, *, relative_id: int | None = None) -> list[Consent]:
    """Every consent recorded for the resident (for one relative when given), oldest first."""
    if relative_id is None:
        rows = await conn.fetch(_SELECT + " WHERE c.resident_id = $1 ORDER BY c.id", resident_id)
    else:
        rows = await conn.fetch(
            _SELECT + " WHERE c.resident_id = $1 AND c.relative_id = $2 ORDER BY c.id", resident_id, relative_id
        )
    return [_consent(r) for r in rows]


async def consents_of_relative(conn: asyncpg.Connection, relative_id: int) -> list[Consent]:
    """Every consent ever recorded for this relative, oldest first."""
    rows = await conn.fetch(_SELECT + " WHERE c.relative_id = $1 ORDER BY c.id", relative_id)
    return [_consent(r) for r in rows]
