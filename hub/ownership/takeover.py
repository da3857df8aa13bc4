"""A site changes hands: the new owner restores it from the database and goes on; each owner saves it there.

Taking a site (`SiteKeeping.restore`), in this order:
1. the store lane flushes: every event this hub received before now is in the database (every hub stores every event
   it hears, owned or not, and acknowledges it only once it is there: the store's key keeps one row of each);
2. the site's engine snapshot (rule windows, timers, the gate's high-water marks) and its open desk alarms are read;
3. the open alarms go back on the desk, where each stood in its escalation: they go on ringing and escalating;
4. the events stored since the snapshot (less the replay margin) are replayed through the site's gate and engine,
   and the desk gets what it has not seen (hub/recovery.py: nothing rung twice, nothing lost in between);
5. the engine and the desk agree by key (`reconcile`), and a 'supervision lost' for the site, raised while nobody
   held it, is closed.
Events of the site that arrive meanwhile wait in the keeper (keeper.py) and follow. Losing a site (`drop`) forgets its
engine, gate and open alarms here at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from alarms.engine import Engine
from alarms.rules import RuleSet
from hub.desk.lane import Desk
from hub.desk.persistence import alarm_from_row
from hub.model import DecisionAction, hub_alarm
from hub.ownership.engines import SiteEngines, SiteGates
from hub.ownership.keeper import UNOWNED_RULE
from hub.recovery import replay as recovery
from hub.runtime.clock import Clock
from hub.store.pool import Database

logger = logging.getLogger(__name__)

_OLDEST_TS = timedelta(days=1)
_SAVE = """
INSERT INTO site_engine_state (site, saved_at, replay_from, fence, snapshot) VALUES ($1, now(), $2, $3, $4::jsonb)
ON CONFLICT (site) DO UPDATE SET saved_at = EXCLUDED.saved_at, replay_from = EXCLUDED.replay_from,
    fence = EXCLUDED.fence, snapshot = EXCLUDED.snapshot
"""
_EVENTS = (
    "SELECT ts, site, device_id, resident_id, kind, value, unit, attrs::text, seq, ref, received_at FROM events"
    " WHERE site = $3 AND ts >= $1 AND received_at >= $2 ORDER BY received_at, ts, seq"
)
_HISTORY = "SELECT key, raised_at, closed_at FROM desk_alarms WHERE site = $1 AND raised_at >= $2"


class SiteKeeping:
    """Restore a site taken, save the owned sites' snapshots, forget a site lost (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        desk: Desk,
        engines: SiteEngines,
        gates: SiteGates,
        rules: RuleSet,
        clock: Clock,
        *,
        flush_store: Callable[[], Any],
        replay_margin_s: float,
    ) -> None:
        self.db = db
        self.desk = desk
        self.engines = engines
        self.gates = gates
        self.rules = rules
        self.clock = clock
        self._flush_store = flush_store
        self._margin = timedelta(seconds=replay_margin_s)

    async def restore(self, site: str, token: int) -> None:
        """Take `site` over: steps 1–5 of the module docstring."""
        started = time.monotonic()
        await self._flush_store()
        async with self.db.acquire() as conn:
            saved = await conn.fetchrow(
                "SELECT snapshot::text AS snapshot, replay_from FROM site_engine_state WHERE site = $1", site
            )
            rows = await conn.fetch(
                "SELECT * FROM desk_alarms WHERE closed_at IS NULL AND site = $1 ORDER BY raised_at", site
            )
            snapshot: dict[str, Any] | None = msgspec.json.decode(saved["snapshot"]) if saved is not None else None
            now = self.clock.now()
            replay_from: datetime = saved["replay_from"] if saved is not None else now
            since = replay_from - self._margin
            events = [recovery.event_from_row(r) for r in await conn.fetch(_EVENTS, since - _OLDEST_TS, since, site)]
            history = recovery.DeskHistory(
                (r["key"], r["raised_at"], r["closed_at"]) for r in await conn.fetch(_HISTORY, site, since)
            )
        directory = self.engines.directory_for(site)
        engine = Engine.restore(self.rules, directory, snapshot) if snapshot else Engine(self.rules, directory)
        gate = self.gates.new(snapshot.get("gate") if snapshot else None)
        desk = self.desk
        desk.machine.forget_site(site)  # anything left from an earlier time this hub held it
        desk.store.forget_site(site)
        restored = 0
        for row in rows:
            alarm = alarm_from_row(row)
            if desk.machine.restore(alarm):
                restored += 1
                desk.fanout.count_open(alarm)
                desk.fanout.show(alarm, closed=False, read_at=now)
        # the site's engine and gate are in place before the replay's decisions reach the desk
        self.gates.gates[site] = gate
        self.engines.add(site, engine)
        view = recovery.DeskView(apply=desk.apply, open_alarm=self._open_alarm)
        report = recovery.replay(gate, engine, events, self.clock.now(), view, history.closed_since)
        held = list(desk.machine.open_for_site(site))
        for decision in self.engines.reconcile(site, held, self.clock.now()):
            desk.apply(decision)
        if desk.machine.has_open(f"{UNOWNED_RULE}:{site}"):
            reason = "a hub holds the site again"
            desk.apply(hub_alarm(DecisionAction.CLEAR, UNOWNED_RULE, site, self.clock.now(), reason))
        logger.info(
            "ha: site restored site=%s token=%s snapshot=%s open_alarms=%s replayed=%s raised=%s in %.3f s",
            site,
            token,
            "yes" if snapshot else "none",
            restored,
            report.replayed,
            report.raised + report.reconciled,
            time.monotonic() - started,
        )

    def _open_alarm(self, key: str) -> tuple[datetime, datetime] | None:
        alarm = self.desk.machine.get_open_by_key(key)
        return None if alarm is None else (alarm.raised_at, alarm.updated_at)

    def drop(self, site: str) -> None:
        """Another hub owns `site` now: its engine, gate and open alarms are forgotten here (no ring, no escalation)."""
        self.engines.remove(site)
        self.gates.gates.pop(site, None)
        gone = self.desk.machine.forget_site(site)
        for alarm in gone:
            self.desk.fanout.count_open(alarm, here=False)
        unwritten = self.desk.store.forget_site(site)
        stopped = self.desk.dispatcher.cancel(alarm.id for alarm in gone)
        pages = self.desk.pages.site_moved(site, (alarm.id for alarm in gone))
        if gone or unwritten or stopped or pages:
            logger.info(
                "ha: site dropped site=%s open_alarms_forgotten=%s rows_unwritten=%s deliveries_stopped=%s"
                " pages_closed=%s",
                site,
                len(gone),
                unwritten,
                stopped,
                pages,
            )

    def snapshot(self, site: str) -> bytes | None:
        """One owned site's snapshot for the database (taken on the loop)."""
        engine_state = self.engines.snapshot(site)
        gate = self.gates.gates.get(site)
        if engine_state is None or gate is None:
            return None
        engine_state["gate"] = gate.snapshot()
        return msgspec.json.encode(engine_state)

    async def save(self, sites: dict[str, int]) -> int:
        """Write the snapshots of `sites` (site -> fencing token) to the database; returns how many were written. A
        site whose token the database refuses is another hub's now: the keeper learns it at its next round."""
        replay_from = datetime.now(UTC)
        written = 0
        for site, token in sites.items():
            data = self.snapshot(site)
            if data is None:
                continue
            try:
                async with self.db.acquire() as conn:
                    await conn.execute(_SAVE, site, replay_from, token, data.decode())
                written += 1
            except asyncpg.PostgresError as exc:
                logger.warning("ha: snapshot of site=%s not saved: %s", site, exc)
        return written
