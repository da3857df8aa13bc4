"""The HA profile's parts, built and wired for hub/app.py in one place (`ha.enabled`; docs/ha.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from aiohttp import web

from alarms.directory import Directory
from alarms.rules import RuleSet
from hub.desk.lane import Desk
from hub.metrics import Metrics
from hub.model import DecisionAction, Event, EventKind, hub_alarm
from hub.ownership.engines import SiteEngines, SiteGates
from hub.ownership.keeper import UNOWNED_RULE, Ownership
from hub.ownership.leases import LeaseConnection
from hub.ownership.takeover import SiteKeeping
from hub.runtime.clock import Clock
from hub.runtime.tasks import Spawner
from hub.settings import Settings
from hub.store.pool import Database

logger = logging.getLogger(__name__)


class HaProfile:
    """Per-site engines and gates, the lease keeper and the site keeping of one hub of the HA profile."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        metrics: Metrics,
        *,
        spawner: Spawner,
        rules: RuleSet,
        clock: Clock,
        directory_for: Callable[[str], Directory],
        rule_freshness: Mapping[str, float],
        gate_freshness: Mapping[EventKind, float],
        inventory: Callable[[], list[str]],
    ) -> None:
        self.settings = settings
        self.db = db
        self.rules = rules
        self.clock = clock
        self.engines = SiteEngines(directory_for, rule_freshness)
        self.engines.offline_grace_s = settings.reliability.offline_grace_s
        self.gates = SiteGates(gate_freshness)
        self._desk: Desk | None = None
        self._keeping: SiteKeeping | None = None
        self._lease_db = LeaseConnection(
            settings.db.dsn.get_secret_value(), settings.db.db_schema, settings.db.connect_timeout_s
        )
        self.keeper = Ownership(
            settings.ha,
            self._lease_db,
            metrics,
            spawner=spawner,
            inventory=inventory,
            feed=self._feed,
            restore=self._restore,
            drop=self._drop,
            unowned=self._unowned,
            held_elsewhere=self._held_elsewhere,
        )

    def attach(self, desk: Desk, flush_store: Callable[[], Awaitable[None]]) -> None:
        """The desk's lane, built with the keeper's `acts_for`, `fence` and `fenced_row` (hub/desk/build.py): a site
        taken is restored into it, a site lost forgotten there."""
        self._desk = desk
        self._keeping = SiteKeeping(
            self.db,
            desk,
            self.engines,
            self.gates,
            self.rules,
            self.clock,
            flush_store=flush_store,
            replay_margin_s=self.settings.reliability.replay_margin_s,
        )

    def feed(self, event: Event) -> None:
        """The alarm lane's entry (hub/intake's `alarm_lane`): only events of the sites this hub acts for."""
        self.keeper.feed(event)

    def add_routes(self, app: web.Application) -> None:
        """`GET /ha/sites`: the sites this hub acts for; 200 while it holds one, else 503. A load balancer in front of
        the hubs' staff pages checks it, so a page goes to a hub that holds sites (docs/ha.md)."""

        async def sites(request: web.Request) -> web.Response:
            held = sorted(site for site, h in self.keeper.held.items() if h.active and self.keeper.acts_for(site))
            body = {"hub": self.settings.ha.hub_id, "sites": held}
            return web.json_response(body, status=200 if held else 503)

        app.router.add_get("/ha/sites", sites)

    def loops(self) -> dict[str, Coroutine[Any, Any, None]]:
        """The profile's forever-loops by task name."""
        return {"vaka.ha.leases": self.keeper.lease_loop(), "vaka.ha.snapshots": self._snapshot_loop()}

    async def leave(self) -> None:
        """On shutdown, after the desk wrote what it owed: the snapshots saved, the leases let go."""
        if self._keeping is not None:
            await self._keeping.save({site: held.token for site, held in self.keeper.held.items() if held.active})
        await self.keeper.release()
        await self._lease_db.close()

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.ha.snapshot_s)
            if self._keeping is None:
                continue
            active = {
                site: held.token
                for site, held in self.keeper.held.items()
                if held.active and self.keeper.acts_for(site)
            }
            try:
                await self._keeping.save(active)
            except Exception as exc:  # the database away: the next round tries again
                logger.warning("ha: snapshots not saved: %s", exc)

    def _feed(self, event: Event) -> None:
        assert self._desk is not None
        self._desk.feed(event)

    async def _restore(self, site: str, token: int) -> None:
        assert self._keeping is not None
        await self._keeping.restore(site, token)

    def _drop(self, site: str) -> None:
        if self._keeping is not None:
            self._keeping.drop(site)

    def _unowned(self, site: str) -> None:
        """The outside watch: no hub holds `site`; 'supervision lost' goes out from here (pages, channels, MQTT)."""
        if self._desk is None:
            return
        reason = "supervision lost: no hub holds this site (its hub stopped or cannot reach the database)"
        self._desk.apply(hub_alarm(DecisionAction.RAISE, UNOWNED_RULE, site, self.clock.now(), reason))

    def _held_elsewhere(self, site: str) -> None:
        """Another hub holds `site`: whatever this hub still has of it (the watch's alarm) is its owner's now."""
        if self._desk is not None and any(True for _ in self._desk.machine.open_for_site(site)):
            self._drop(site)
