"""Who is on duty, written by a roster: `vaka staff duty USER on|off [--hours H] [--from ISO]`.

The staff page signs a person on when they sign in and off when they sign out; a roster (or a team lead at the
command line) can write the same `staff_duty` rows ahead, e.g. for the nurse on call from home. The running hub
applies a change within a second (hub/web/staff/watch.py reads `staff_duty` on every pass).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import asyncpg


def add_duty_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vaka staff duty`."""
    parser.add_argument("username", help="login name")
    parser.add_argument(
        "state", choices=["on", "off"], help="on: on duty for --hours from --from; off: off duty now (applies at once)"
    )
    parser.add_argument("--hours", type=float, default=10.0, help="length of the shift (default %(default)s)")
    parser.add_argument(
        "--from", dest="start", default=None, help="start of the shift, ISO 8601 with offset (default: now)"
    )


async def set_duty(conn: asyncpg.Connection, username: str, on: bool, start: datetime, hours: float) -> str | None:
    """Sign `username` on for `hours` from `start`, or off; the shift's end as text, "" when off, None: no account."""
    staff_id = await conn.fetchval("SELECT id FROM staff WHERE username = $1 AND active", username)
    if staff_id is None:
        return None
    if not on:
        await conn.execute("DELETE FROM staff_duty WHERE staff_id = $1", staff_id)
        return ""
    until = start + timedelta(hours=hours)
    await conn.execute(
        "INSERT INTO staff_duty (staff_id, since, until) VALUES ($1, $2, $3)"
        " ON CONFLICT (staff_id) DO UPDATE SET since = EXCLUDED.since, until = EXCLUDED.until",
        staff_id,
        start,
        until,
    )
    return until.isoformat(timespec="minutes")


def shift_start(text: str | None) -> datetime:
    """`--from` as an aware datetime (now when absent); ValueError for a time without an offset."""
    if not text:
        return datetime.now(UTC)
    start = datetime.fromisoformat(text)
    if start.tzinfo is None:
        msg = f"--from {text!r}: give the offset, e.g. 2026-11-27T22:00+01:00"
        raise ValueError(msg)
    return start
