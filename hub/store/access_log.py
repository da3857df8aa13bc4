"""The resident access log: one row per read of a resident's data by a person (staff or relative).

Relative reads are written in the same transaction as the read itself (no row, no data); staff page reads go
through the desk's persistence queue (`hub.desk.persistence`), which never makes the alarm path wait. The table is
append-only for the hub (docs/privacy.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hub.store.audit import operator

_INSERT = (
    "INSERT INTO resident_access_log (at, staff_id, relative_id, role, site, resident_id, purpose, address)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)


@dataclass(frozen=True, slots=True)
class AccessRow:
    """One read, as the resident sees it in `vaka access-log`."""

    at: datetime
    who: str
    role: str
    resident_id: str
    what: str
    address: str | None


async def record_relative_read(
    conn: asyncpg.Connection, *, at: datetime, relative_id: int, resident_id: str, what: str, address: str | None
) -> None:
    """Log one relative's read of one resident (call inside the transaction that reads)."""
    site = await conn.fetchval("SELECT site FROM residents WHERE id = $1", resident_id)
    await conn.execute(_INSERT, at, None, relative_id, "relative", site or "", resident_id, what, address)


async def record_read(
    conn: asyncpg.Connection,
    *,
    at: datetime,
    role: str,
    site: str,
    resident_id: str,
    what: str,
    address: str | None,
    staff_id: int | None = None,
) -> None:
    """Log one read by staff (`staff_id`) or an operator at the command line (no id; `address` says who)."""
    await conn.execute(_INSERT, at, staff_id, None, role, site, resident_id, what, address)


async def record_operator_read(conn: asyncpg.Connection, *, at: datetime, resident_id: str, what: str) -> None:
    """Log a read at the command line (`vaka consent list`, `vaka access-log`) as role `operator`, from
    `cli:<login name>`; nothing when there is no such resident (nothing of anyone was read)."""
    site = await conn.fetchval("SELECT site FROM residents WHERE id = $1", resident_id)
    if site is not None:
        await record_read(
            conn,
            at=at,
            role="operator",
            site=site,
            resident_id=resident_id,
            what=what,
            address=operator(),
        )


async def access_log(
    conn: asyncpg.Connection, resident_id: str, start: datetime | None = None, end: datetime | None = None
) -> list[AccessRow]:
    """Every logged read of the resident in [start, end), oldest first, with who read (user name or e-mail)."""
    rows = await conn.fetch(
        "SELECT l.at, l.role, l.resident_id, l.purpose, l.address,"
        " coalesce(s.username, 'staff#' || l.staff_id::text, r.email, 'relative#' || l.relative_id::text, l.address)"
        " AS who"
        " FROM resident_access_log l LEFT JOIN staff s ON s.id = l.staff_id"
        " LEFT JOIN relatives r ON r.id = l.relative_id"
        " WHERE l.resident_id = $1 AND ($2::timestamptz IS NULL OR l.at >= $2) AND ($3::timestamptz IS NULL OR l.at < $3)"
        " ORDER BY l.at, l.seq",
        resident_id,
        start,
        end,
    )
    return [AccessRow(r["at"], r["who"], r["role"], r["resident_id"], r["purpose"], r["address"]) for r in rows]
