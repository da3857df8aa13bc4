"""The desk's memory across restarts: open alarms, staff and duty back from the database, or from the desk's own
copy while the database is away (issue 22.3), and kept current afterwards (the staff refresh, the local copy)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

import asyncpg

from hub.desk import local_state
from hub.desk.directory import DeskDirectory
from hub.desk.fanout import FanOut
from hub.desk.local_state import LocalCopy
from hub.desk.machine import DeskMachine
from hub.desk.persistence import DeskStore, alarm_from_row, snapshot_row
from hub.model import Site, VakaError
from hub.people.staff import StaffMember
from hub.runtime.clock import Clock
from hub.store.inventory import fetch_sites
from hub.store.pool import Database
from hub.store.staff import load_duty, load_staff

logger = logging.getLogger(__name__)

LOCAL_SAVE_EVERY_S = 1.0  # the desk's own copy is written at most this often while it changes
_RESTORE_RETRY_S = 2.0
_DATABASE_AWAY = (TimeoutError, OSError, VakaError, asyncpg.PostgresError)


class DeskRestore:
    """Brings the desk's open alarms, staff and duty back at a start and keeps them current while it runs."""

    def __init__(
        self,
        db: Database,
        directory: DeskDirectory,
        machine: DeskMachine,
        store: DeskStore,
        fanout: FanOut,
        clock: Clock,
        local: LocalCopy,
        *,
        refresh_s: float,
        shutdown_deadline_s: float,
        on_local_write_failed: Any,
    ) -> None:
        self._db = db
        self._directory = directory
        self._machine = machine
        self._store = store
        self._fanout = fanout
        self._clock = clock
        self._local = local
        self._refresh_s = refresh_s
        self._shutdown_deadline_s = shutdown_deadline_s
        self._on_local_write_failed = on_local_write_failed
        self._pending = False
        self._late = False

    # --- inventory and staff ----------------------------------------------------------------------------------

    def set_sites(self, sites: Iterable[Site]) -> None:
        """Replace the inventory the desk resolves units, rooms and safety devices from."""
        self._directory.set_sites(sites)

    def set_staff(self, staff: Iterable[StaffMember]) -> None:
        """Replace the staff directory used for recipients."""
        self._directory.set_staff(staff)

    async def refresh(self, *, sites: bool = False) -> None:
        """Re-read the staff (and with `sites`, the inventory) from the database.

        After start the hub hands inventory changes over with `set_sites`; it is the one place that re-reads them.
        """
        async with self._db.acquire() as conn:
            if sites:
                self.set_sites(await fetch_sites(conn))
            staff = await load_staff(conn)
            duty = await load_duty(conn)
        self.set_staff(staff)
        self._directory.set_duty(duty)
        self._local.dirty.set()

    # --- a start ------------------------------------------------------------------------------------------------

    async def restore(self, sites: list[Site] | None = None) -> None:
        """Load inventory (unless given), staff and open alarms (with escalation state) from the database.

        When the database is away, the desk starts from its own copy (new alarms flow from memory) and the refresh
        loop brings the database's open alarms back as soon as it answers.
        """
        if sites is not None:
            self.set_sites(sites)
        staff_loaded = True
        try:
            await self.refresh(sites=sites is None)
        except _DATABASE_AWAY as exc:
            logger.warning("desk could not load inventory/staff: %s", exc)
            staff_loaded = False
        try:
            await self._store.drain_journal()  # alarms raised during an outage are in the journal, not yet stored
            rows = await self._store.load_open()
        except _DATABASE_AWAY as exc:
            logger.warning("desk could not restore open alarms yet, retrying in the background: %s", exc)
            if not self._pending:
                await self._resume_locally(staff_loaded=staff_loaded)
            self._pending = True
            return
        self._pending = False
        restored = 0
        for row in rows:
            alarm = alarm_from_row(row)
            if alarm.id in self._local.closed_here:
                continue  # closed here while the database was away: its closing row follows in the queue
            held = self._machine.get_open_by_key(alarm.key)
            if held is not None and held.id != alarm.id:
                logger.warning(
                    "desk restore: %s open twice (%s here, %s stored); keeping both", alarm.key, held.id, alarm.id
                )
            if not self._machine.restore(alarm):
                continue
            restored += 1
            self._fanout.count_open(alarm)
            if self._late:
                self._fanout.show(alarm, closed=False, read_at=self._clock.now())
        logger.info(
            "desk restored open_alarms=%s staff=%s sites=%s",
            restored,
            len(self._directory.staff),
            self._directory.site_count,
        )

    async def _resume_locally(self, *, staff_loaded: bool) -> None:
        """A start with the database away: open alarms, staff and duty from the desk's own copy and its journal, so
        nothing is raised twice and escalation reaches the people on duty (issue 22.3)."""
        if self._local.directory is None:
            return
        state = await asyncio.to_thread(local_state.load, self._local.directory) or local_state.DeskState()
        try:
            state.take_newer(await self._store.journaled_alarms())
        except (OSError, ValueError, TypeError) as exc:
            logger.warning("desk journal cannot be read for the local restore: %s", exc)
        if not staff_loaded and state.staff:
            self.set_staff(state.staff)
            self._directory.set_duty(state.duty)
        restored = 0
        for alarm in state.alarms.values():
            if self._machine.restore(alarm):
                restored += 1
                self._fanout.count_open(alarm)
        logger.info(
            "desk resumed from its local copy (database away): open_alarms=%s staff=%s on_duty=%s",
            restored,
            len(self._directory.staff),
            len(self._directory.duty),
        )

    async def settle_recovery(self) -> None:
        """After start-up recovery and before the hub takes events: what recovery changed is written (or journaled)
        now, not once the loops run a second or two later; a second crash in that window lost the rows, and the
        next start applied the same decisions again (`tests/hub/test_crash_recovery.py`)."""
        await self._store.close(self._shutdown_deadline_s)
        await self.save_local()

    # --- the desk's own copy ------------------------------------------------------------------------------------

    async def save_local(self) -> None:
        """Write the desk's own copy now (open alarms, staff, duty); a refused write is counted and raised."""
        if self._local.directory is None:
            return
        self._local.dirty.clear()
        data = local_state.encode(
            [snapshot_row(a) for a in self._machine.open_alarms()], self._directory.staff, self._directory.duty
        )
        try:
            await asyncio.to_thread(local_state.save, self._local.directory, data)
        except OSError as exc:
            self._on_local_write_failed("desk_state", exc)

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The staff refresh (after a late restore) and the local copy's writer, by task name."""
        return {"vaka.desk.refresh": self._refresh_loop(), "vaka.desk.local_state": self._local_state_loop()}

    async def _local_state_loop(self) -> None:
        while True:
            await self._local.dirty.wait()
            await self.save_local()
            await asyncio.sleep(LOCAL_SAVE_EVERY_S)

    async def _refresh_loop(self) -> None:
        while self._pending:
            await asyncio.sleep(_RESTORE_RETRY_S)
            self._late = True
            await self.restore()
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except _DATABASE_AWAY as exc:
                logger.warning("desk refresh failed: %s", exc)
