"""Changes made at the command line, in the append-only `admin_audit_log` beside the admin page's (docs/staff.md)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import asyncpg

_INSERT = "INSERT INTO admin_audit_log (at, staff_id, actor, action, target, detail) VALUES ($1, NULL, $2, $3, $4, $5)"


def operator() -> str:
    """Who runs the command: `cli:<login name>` (the same name the access log gives a command-line read)."""
    return f"cli:{getpass.getuser()}"


async def record_cli_change(conn: asyncpg.Connection, *, action: str, target: str, detail: str = "") -> None:
    """One row for one change (call in the transaction that makes it); `action` as the admin page names it."""
    await conn.execute(_INSERT, datetime.now(UTC), operator(), action, target, detail[:500])
