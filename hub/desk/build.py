"""The desk assembled: the lane and the parts staff work with, each built once and handed its collaborators.

    DeskParts
      lane       events and ticks in, engine, machine, outputs (hub.desk.lane.Desk)
      actions    a person's take / on the way / there / close (hub.desk.actions)
      duty       signing on and off (hub.desk.duty)
      restorer   open alarms, staff and duty back at a start, kept current (hub.desk.restore)
      machine    the open alarms, read by the pages (hub.desk.machine)
      directory  sites, residents, staff, who sees what (hub.desk.directory)

The hub (hub/app.py) and the tests build a desk with `build_desk`; nothing is assigned to a part afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alarms.gate import Gate
from hub.desk.actions import StaffActions
from hub.desk.alarm import Alarm
from hub.desk.directory import DeskDirectory
from hub.desk.duty import DutyBoard
from hub.desk.fanout import Output, Publish, ResidentReads, alarm_view, standard_outputs
from hub.desk.lane import SHUTDOWN_FLUSH_S, TICK_S, Desk, RuleEngine
from hub.desk.local_state import LocalCopy
from hub.desk.machine import DeskMachine
from hub.desk.persistence import DeskJournal, DeskStore
from hub.desk.restore import DeskRestore
from hub.metrics import Metrics
from hub.notify import Dispatcher, Notifier
from hub.notify.channels import build_notifiers
from hub.notify.websocket import WebSocketHub
from hub.people.staff import StaffMember
from hub.runtime.clock import Clock, clock_rate
from hub.runtime.tasks import Spawner
from hub.settings import Settings
from hub.store.pool import Database


@dataclass(frozen=True)
class DeskParts:
    """The desk as the hub, the pages and the tests hold it (see the module docstring)."""

    lane: Desk
    actions: StaffActions
    duty: DutyBoard
    restorer: DeskRestore
    machine: DeskMachine
    directory: DeskDirectory
    pages: WebSocketHub
    reads: ResidentReads
    clock: Clock
    spawner: Spawner

    def view(self, alarm: Alarm) -> dict[str, Any]:
        """The alarm as the staff page shows it, with the hub's now and clock times in the site's zone."""
        return alarm_view(alarm, self.directory, self.clock.now())

    def log_resident_reads(
        self, staff: StaffMember, residents: Iterable[tuple[str, str]], purpose: str, address: str | None = None
    ) -> None:
        """Record that a person saw these residents' data (`(site, resident_id)`), from `address`; in the background."""
        self.reads.record(staff, residents, purpose, self.clock.now(), address)

    def clock_rate(self) -> float:
        """How fast the hub's clock runs against the wall clock (1 in production; the simulation's speed in a demo)."""
        return clock_rate(self.clock)

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """Every forever-loop of the desk by task name (the hub runs them in its one TaskGroup)."""
        return {**self.lane.loops(), **self.restorer.loops()}

    async def aclose(self) -> None:
        """After the loops: the desk's own copy, then what is queued for the database, channels and pages."""
        await self.restorer.save_local()
        await self.lane.aclose()

    async def run_loop(self) -> None:
        """The loops (as the spawner's tasks) and `aclose` after them: a desk running without the hub (tests)."""
        tasks = [self.spawner.spawn(loop, name=name) for name, loop in self.loops().items()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.aclose()


def build_desk(
    settings: Settings,
    db: Database,
    metrics: Metrics,
    *,
    publish: Publish,
    clock: Clock,
    spawner: Spawner,
    engine: RuleEngine | None = None,
    gate: Gate | None = None,
    notifiers: Iterable[Notifier] | None = None,
    tick_s: float = TICK_S,
    journal_dir: Path | None = None,
    local_dir: Path | None = None,
    shutdown_deadline_s: float = SHUTDOWN_FLUSH_S,
    outputs: Callable[[list[Output]], Sequence[Output]] | None = None,
    session_alive: Callable[[str], bool] | None = None,
    acts_for: Callable[[str, str | None], bool] | None = None,
    fence: Callable[[str], int | None] | None = None,
    on_fenced: Callable[[str, str], None] | None = None,
) -> DeskParts:
    """Build every part once, in order, each with what it needs. `outputs` may wrap or reorder the standard outputs
    (tests); `session_alive` tells the pages whether a page's session still stands (the staff sessions). The HA
    profile (hub/ownership/): `acts_for(site, rule_id)` whether this hub may act for a site now, `fence(site)` the
    token its rows carry, `on_fenced(site, kind)` when the database refused one for it."""
    lane: Desk | None = None

    def the_lane() -> Desk:  # for the faults of parts built before the lane: they report once it runs
        assert lane is not None
        return lane

    directory = DeskDirectory()
    machine = DeskMachine(settings.desk, directory, settings.patrol)
    local = LocalCopy(local_dir)
    pages = WebSocketHub(
        metrics,
        spawner=spawner,
        session_alive=session_alive,
        clock_info=lambda: {"now": clock.now().isoformat(), "rate": clock_rate(clock)},
    )
    chosen = list(notifiers) if notifiers is not None else build_notifiers(settings, db)
    dispatcher = Dispatcher(chosen, metrics, spawner=spawner)
    store = DeskStore(
        db,
        DeskJournal(journal_dir) if journal_dir is not None else None,
        on_journal_failed=lambda exc: the_lane().local_write_failed("desk_journal", exc),
        on_row_refused=lambda kind: the_lane().row_refused(kind),
        fence=fence,
        on_fenced=on_fenced,
    )
    standard = standard_outputs(
        directory=directory,
        pages=pages,
        publish=publish,
        dispatcher=dispatcher,
        store=store,
        metrics=metrics,
        unreached_log_interval_s=settings.patrol.unreached_log_interval_s,
    )
    reads = ResidentReads(store, metrics)
    lane = Desk(
        settings,
        metrics,
        clock=clock,
        directory=directory,
        machine=machine,
        outputs=outputs(standard) if outputs is not None else standard,
        reads=reads,
        store=store,
        pages=pages,
        dispatcher=dispatcher,
        local=local,
        engine=engine,
        gate=gate,
        tick_s=tick_s,
        shutdown_deadline_s=shutdown_deadline_s,
        acts_for=acts_for,
    )
    restorer = DeskRestore(
        db,
        directory,
        machine,
        store,
        lane.fanout,
        clock,
        local,
        refresh_s=settings.desk.inventory_refresh_s,
        shutdown_deadline_s=shutdown_deadline_s,
        on_local_write_failed=lane.local_write_failed,
    )
    return DeskParts(
        lane=lane,
        actions=StaffActions(machine, lane.deliver, clock),
        duty=DutyBoard(directory, store, clock, local, shift_hours=settings.patrol.shift_hours),
        restorer=restorer,
        machine=machine,
        directory=directory,
        pages=pages,
        reads=reads,
        clock=clock,
        spawner=spawner,
    )
