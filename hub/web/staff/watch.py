"""Follows staff accounts in the database so a change ends what it revokes within seconds, wherever it was made.

Every change to an account, its units or its sessions bumps `staff.generation` (migration 105, by trigger, so
`vaka staff add --update` in another process and an administrator's SQL count too). `watch_loop()` compares the
generations every `poll_s` and, for each account that changed or vanished, re-reads it and its live sessions:
sessions no longer in the database end in memory, open staff pages of a disabled, removed or re-assigned person
close, and the desk's staff directory (recipients of alarms and escalations) is replaced. Each pass also reads who is
on duty (`staff_duty`, a handful of rows) and applies what changed since the last pass, so a roster or
`vaka staff duty X off` in another process reaches escalation within `poll_s`, not at the next inventory refresh.
Each pass also ends idle
sessions and closes the pages of sessions that ended here (logout). With the database away nothing is revoked
(nobody is logged out by an outage) and idle expiry still applies.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from hub.model import VakaError
from hub.people.staff import StaffMember
from hub.store.staff import load_staff

if TYPE_CHECKING:
    from hub.desk.build import DeskParts
    from hub.store.pool import Database
    from hub.web.staff.sessions import SessionStore

logger = logging.getLogger(__name__)

POLL_S = 1.0
_DB_TIMEOUT_S = 2.0


class StaffWatch:
    """Keeps sessions, open staff pages and the desk's staff directory in step with the database."""

    def __init__(self, db: Database, sessions: SessionStore, desk: DeskParts, *, poll_s: float = POLL_S) -> None:
        self._db = db
        self._sessions = sessions
        self._desk = desk
        self._poll_s = poll_s
        self._generations: dict[int, int] | None = None
        self._duty: dict[int, datetime] | None = None
        self._db_failing = False

    async def watch_loop(self) -> None:
        """Check every `poll_s` until cancelled."""
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("staff watch pass failed")
            await asyncio.sleep(self._poll_s)

    async def check(self) -> None:
        """One pass: idle sessions end, account changes are applied, pages of ended sessions close."""
        try:
            async with asyncio.timeout(_DB_TIMEOUT_S):
                ended = await self._sessions.drop_idle()
                if ended:
                    logger.info("staff sessions idled out n=%s", ended)
                await self._apply_changes()
            if self._db_failing:
                logger.info("staff watch: database answers again")
            self._db_failing = False
        except (TimeoutError, OSError, VakaError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if not self._db_failing:
                logger.warning("staff watch: database away, account changes wait for it: %s", exc)
            self._db_failing = True
        self._desk.pages.close_ended_sessions()

    async def _apply_changes(self) -> None:
        async with self._db.acquire() as conn:
            duty = {r["staff_id"]: r["until"] for r in await conn.fetch("SELECT staff_id, until FROM staff_duty")}
            self._apply_duty(duty)
            rows = await conn.fetch("SELECT id, generation FROM staff")
            now = {r["id"]: r["generation"] for r in rows}
            before, self._generations = self._generations, now
            if before is None:
                return
            changed = {i for i, g in now.items() if before.get(i) != g} | (before.keys() - now.keys())
            if not changed:
                return
            members = {m.id: m for m in await load_staff(conn)}
            key_rows = await conn.fetch(
                "SELECT staff_id, token_sha256 FROM staff_sessions WHERE staff_id = ANY($1::int[])", list(changed)
            )
        keys: dict[int, set[str]] = {}
        for r in key_rows:
            keys.setdefault(r["staff_id"], set()).add(r["token_sha256"])
        for staff_id in sorted(changed):
            member: StaffMember | None = members.get(staff_id)
            sessions_ended = self._sessions.staff_changed(staff_id, member, keys.get(staff_id, set()))
            pages_closed = self._desk.pages.staff_changed(staff_id, member)
            logger.info(
                "staff account changed staff=%s active=%s sessions_ended=%s pages_closed=%s",
                staff_id,
                member is not None,
                sessions_ended,
                pages_closed,
            )
        self._desk.restorer.set_staff(members.values())

    def _apply_duty(self, duty: dict[int, datetime]) -> None:
        """Apply the duty rows that changed since the last pass (a sign-on on the page, kept in memory before it is
        stored, is not undone by a pass that read the table a moment before)."""
        before, self._duty = self._duty, duty
        if before is None:
            before = dict(self._desk.directory.duty)  # the first pass: what the desk read at start
        if before == duty:
            return
        shifts = self._desk.directory.duty
        for staff_id in before.keys() | duty.keys():
            until = duty.get(staff_id)
            if until == before.get(staff_id):
                continue
            if until is None:
                shifts.pop(staff_id, None)
            else:
                shifts[staff_id] = until
            logger.info("staff duty changed staff=%s until=%s", staff_id, until.isoformat() if until else "off")
