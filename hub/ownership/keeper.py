"""Which sites this hub owns now: the lease loop, the desk's question "may I act for this site?", and the watch.

Every `renew_s` the loop takes or renews, in one statement, the leases of the sites this hub holds, prefers, or may
take over (leases.py), then reads every lease: a site held elsewhere is forgotten here, a site nobody has held for
`unowned_alarm_after_s` gets 'supervision lost' from one hub (the outside watch). A site newly taken is restored
(takeover.py) while its events wait in a buffer here; a site lost is dropped at once: no ring, no escalation, no
publish for it from this hub, and its queued desk rows are refused by the database's fence.

What "acting for a site" needs (`acts_for`):
- the lease held (or being restored), and
- no stall of this hub longer than a lease since the last round that reached the database: a hub that was stopped
  (SIGSTOP, a paused VM, a long GC) checks its leases first, before it rings, escalates, publishes or writes again.
While the database is away and the hub runs on, it goes on acting for its sites past their expiry (alarms are
decided from memory; nobody can take a site without the database). Only a partition that leaves another hub with the
database and this one without makes both act for a while: an alarm rung twice, not missed; this hub's rows are
refused once the database answers. docs/ha.md says it as measured.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hub.metrics import Metrics
from hub.model import Event
from hub.ownership import leases
from hub.runtime.tasks import Spawner
from hub.settings import HaSettings
from hub.store.pool import Database

logger = logging.getLogger(__name__)

UNOWNED_RULE = "site_unowned"  # 'supervision lost' for a site no hub holds (the outside watch)
_ROUND_TIMEOUT_FACTOR = 0.8  # a round gives up after this share of the renewal interval... at least a second
_FAILURE_LOG_EVERY_S = 60.0
_BUFFER_MAX = 100_000  # events of a site being restored kept meanwhile; past it, the oldest go (they are stored)


@dataclass(slots=True)
class _Held:
    token: int
    active: bool = False  # restored: events go straight to the desk
    buffer: list[Event] = field(default_factory=list)


class Ownership:
    """The leases this hub holds and what it may do with them (see the module docstring)."""

    def __init__(
        self,
        settings: HaSettings,
        db: Database,
        metrics: Metrics,
        *,
        spawner: Spawner,
        inventory: Callable[[], list[str]],
        feed: Callable[[Event], None],
        restore: Callable[[str, int], Awaitable[None]],
        drop: Callable[[str], None],
        unowned: Callable[[str], None],
        held_elsewhere: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.db = db
        self.metrics = metrics
        self.spawner = spawner
        self.owner = f"{settings.hub_id}/{uuid.uuid4().hex[:8]}"  # this process: a restart is another owner
        self._inventory = inventory
        self._feed = feed
        self._restore = restore
        self._drop = drop
        self._unowned = unowned
        self._held_elsewhere = held_elsewhere
        self.held: dict[str, _Held] = {}
        self.unowned: set[str] = set()  # sites no hub has held for `unowned_alarm_after_s` (the staff pages' banner)
        self._beat = time.monotonic()  # the loop last ran
        self._check_first = False  # a stall past the lease was seen: act for no site until the database confirms
        self._confirmed_at: float | None = None  # monotonic start of the last round the database answered
        self._db_since: float | None = None  # the database answered every round since then
        self._started = time.monotonic()
        self._unconfirmed_logged = False
        self._failure_logged_at = -_FAILURE_LOG_EVERY_S
        self.rounds = 0

    # --- the desk's questions ----------------------------------------------------------------------------------

    def acts_for(self, site: str, rule_id: str | None = None) -> bool:
        """Whether this hub may ring, escalate, publish and write for `site` now (cheap: asked for every change)."""
        if rule_id == UNOWNED_RULE:
            return True  # the watch's own word about a site nobody holds
        if self._check_first:
            return False
        now = time.monotonic()
        if now - self._beat > self.settings.lease_s:
            self._stalled(now - self._beat)
            return False
        if not self.settings.act_without_database and (
            self._confirmed_at is None or now - self._confirmed_at > self.settings.lease_s - self.settings.renew_s
        ):
            return False  # the lease may have run out by the database's clock: never two hubs, at the price of none
        return site in self.held

    def fence(self, site: str) -> int | None:
        """The fencing token this hub holds for `site` (written with every desk row of it), or None."""
        held = self.held.get(site)
        return None if held is None else held.token

    def feed(self, event: Event) -> None:
        """The alarm lane's entry in the HA profile: an event of a site this hub acts for goes to the desk; of a site
        being restored (or held across a stall not yet checked), it waits; of any other site, the store has it."""
        held = self.held.get(event.site)
        if held is None:
            return
        if held.active and self.acts_for(event.site):
            self._feed(event)
            return
        held.buffer.append(event)
        if len(held.buffer) > _BUFFER_MAX:
            del held.buffer[: len(held.buffer) - _BUFFER_MAX]

    def _stalled(self, gap_s: float) -> None:
        if not self._check_first:
            self._check_first = True
            logger.warning(
                "ha: this hub stood still %.1f s, longer than its lease: acting for no site until the leases are"
                " checked",
                gap_s,
            )

    # --- the loop ----------------------------------------------------------------------------------------------

    async def lease_loop(self) -> None:
        """Forever: take and renew leases, drop lost sites, watch the others (module docstring)."""
        while True:
            await self.round()
            await asyncio.sleep(self.settings.renew_s)

    async def round(self) -> None:
        """One round: leases taken and renewed, lost sites dropped, new ones restored, the others watched."""
        started = time.monotonic()
        if started - self._beat > self.settings.lease_s:
            self._stalled(started - self._beat)
        self._beat = started
        self.rounds += 1
        try:
            async with asyncio.timeout(max(self.settings.renew_s * _ROUND_TIMEOUT_FACTOR, 1.0)):
                got, seen = await self._ask(started)
        except Exception as exc:  # the database away, slow or refusing: the hub runs on (module docstring)
            self.metrics.ha_lease_failures.inc()
            self._db_since = None
            if started - self._failure_logged_at >= _FAILURE_LOG_EVERY_S:  # one line a minute while it lasts
                self._failure_logged_at = started
                logger.warning("ha: lease round failed (%s: %s); held=%s", type(exc).__name__, exc, sorted(self.held))
            self._note_unconfirmed(started)
            return
        self._confirmed_at = started
        self._failure_logged_at = -_FAILURE_LOG_EVERY_S
        if self._db_since is None:
            self._db_since = started
        self._unconfirmed_logged = False
        self.metrics.ha_unconfirmed.set(0)
        for site in [s for s in self.held if s not in got]:
            self.lose(site, "another hub holds it")
        for site, token in got.items():
            held = self.held.get(site)
            if held is not None and held.token == token:
                continue
            if held is not None:
                self.lose(site, f"its token moved from {held.token} to {token}")
            self.held[site] = _Held(token)
            self.spawner.spawn(self._take(site, token), name="vaka.ha.takeover")
        if self._check_first:
            self._check_first = False
            logger.info("ha: leases checked after the stall: holding %s", sorted(self.held))
            for held in self.held.values():  # what waited meanwhile, for the sites still held
                if held.active:
                    buffered, held.buffer = held.buffer, []
                    for event in buffered:
                        self._feed(event)
        self.metrics.ha_sites_owned.set(len(self.held))
        await self._watch(seen)

    async def _ask(self, started: float) -> tuple[dict[str, int], list[leases.Lease]]:
        inventory = self._inventory()
        may = set(inventory) if self.settings.sites == "any" else set(self.settings.sites)
        wanted = set(self.held) | (set(self.settings.prefer) & may)
        # another hub's site only once this hub has had the database for a lease: after an outage of the database
        # every lease has run out, and each hub renews its own first
        if self._db_since is not None and started - self._db_since >= self.settings.lease_s:
            wanted |= may
        async with self.db.acquire() as conn:
            await leases.add_sites(conn, inventory)
            got = await leases.take(conn, sorted(wanted), self.settings.hub_id, self.owner, self.settings.lease_s)
            seen = await leases.read(conn)
        return got, seen

    async def _watch(self, seen: list[leases.Lease]) -> None:
        """The outside watch: sites held by another hub are forgotten here; one nobody holds is raised, once."""
        self.unowned = {
            lease.site
            for lease in seen
            if lease.site not in self.held and lease.overdue_s >= self.settings.unowned_alarm_after_s
        }
        for lease in seen:
            if lease.site in self.held:
                continue
            if lease.held:
                self._held_elsewhere(lease.site)
                continue
            if lease.overdue_s < self.settings.unowned_alarm_after_s:
                continue
            try:
                async with self.db.acquire() as conn:
                    claimed = await leases.claim_unowned_alarm(
                        conn, lease.site, self.settings.hub_id, self.settings.unowned_alarm_after_s
                    )
            except Exception as exc:
                logger.warning("ha: watch could not claim site=%s: %s", lease.site, exc)
                continue
            if claimed:
                logger.error(
                    "ha: site=%s held by no hub for %.1f s (last %s): supervision lost raised",
                    lease.site,
                    lease.overdue_s,
                    lease.hub_id or "none",
                )
                self._unowned(lease.site)

    def _note_unconfirmed(self, now: float) -> None:
        if self._confirmed_at is None or now - self._confirmed_at <= self.settings.lease_s or not self.held:
            return
        self.metrics.ha_unconfirmed.set(1)
        if not self._unconfirmed_logged:
            self._unconfirmed_logged = True
            logger.warning(
                "ha: leases unconfirmed for %.1f s (database away): acting for %s from memory",
                now - self._confirmed_at,
                sorted(self.held),
            )

    async def _take(self, site: str, token: int) -> None:
        started = time.monotonic()
        try:
            await self._restore(site, token)
        except Exception:
            logger.exception("ha: site=%s could not be restored; its lease is let go", site)
            self.metrics.ha_takeovers.labels("failed").inc()
            if self.held.get(site) is not None and self.held[site].token == token:
                self.lose(site, "its restore failed")
                await self._release([site])
            return
        held = self.held.get(site)
        if held is None or held.token != token:
            return  # lost while it was being restored
        buffered, held.buffer = held.buffer, []
        for event in buffered:
            self._feed(event)
        held.active = True
        self.metrics.ha_takeovers.labels("ok").inc()
        logger.info(
            "ha: site taken site=%s token=%s buffered=%s in %.3f s",
            site,
            token,
            len(buffered),
            time.monotonic() - started,
        )

    def lose(self, site: str, why: str) -> None:
        """Stop acting for `site` now and forget its state here (its owner restores it from the database)."""
        held = self.held.pop(site, None)
        if held is None:
            return
        self.metrics.ha_sites_lost.inc()
        self.metrics.ha_sites_owned.set(len(self.held))
        logger.warning("ha: site lost site=%s token=%s: %s", site, held.token, why)
        self._drop(site)

    def fenced(self, site: str) -> None:
        """The database refused a row of `site` for its token: another hub holds it."""
        if site in self.held:
            self.lose(site, "the database refused its token")

    def fenced_row(self, site: str, kind: str) -> None:
        """As `fenced`, as the desk's store reports it (hub/desk/persistence.py `on_fenced`)."""
        self.fenced(site)

    async def release(self) -> None:
        """On shutdown: the leases run out now, so the other hubs take the sites at their next round."""
        sites = sorted(self.held)
        await self._release(sites)
        if sites:
            logger.info("ha: leases released sites=%s", sites)

    async def _release(self, sites: list[str]) -> None:
        if not sites:
            return
        try:
            async with asyncio.timeout(2.0), self.db.acquire() as conn:
                await leases.release(conn, self.owner, sites)
        except Exception as exc:
            logger.warning("ha: leases not released (%s); they run out by themselves", exc)
