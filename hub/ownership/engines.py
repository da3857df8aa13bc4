"""One rule engine and one gate per owned site, so a site's state moves between hubs whole.

A hub of the HA profile owns sites one at a time and a site changes hands with its state: the engine snapshot of one
site is written to the database and read back by the next owner. The engine's state (timers, windows, open alarms
per rule) is one whole per Engine, so each owned site gets an Engine of its own, built over that site's part of the
inventory, and a Gate of its own (the per-device high-water marks travel with the snapshot). `SiteEngines` is what the
desk sees as its rule engine; `SiteGates` as its gate. An event of a site this hub does not hold reaches neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from alarms.directory import Directory
from alarms.engine import Engine, HeldAlarm
from alarms.gate import Gate, Verdict
from hub.model import AlarmDecision, Event, EventKind


class SiteEngines:
    """The rule engines of the owned sites, as one engine for the desk (the `RuleEngine` of hub/desk/lane.py)."""

    def __init__(self, directory_for: Callable[[str], Directory], freshness_s: Mapping[str, float]) -> None:
        self._directory_for = directory_for
        self.freshness_s = dict(freshness_s)
        self.offline_grace_s = 120.0
        self._suspended = False
        self.engines: dict[str, Engine] = {}

    def add(self, site: str, engine: Engine) -> None:
        """Start evaluating `site` with `engine` (restored from its snapshot, or new)."""
        engine.freshness_s = self.freshness_s
        engine.offline_grace_s = self.offline_grace_s
        engine.supervision_suspended = self._suspended
        self.engines[site] = engine

    def remove(self, site: str) -> Engine | None:
        """Stop evaluating `site` (lost or released); its engine, if it had one."""
        return self.engines.pop(site, None)

    def directory_for(self, site: str) -> Directory:
        """The engine's view of one site of the inventory, with the residents' rule profiles."""
        return self._directory_for(site)

    def set_directory(self, now: datetime) -> None:
        """The inventory or the rule profiles changed: each site's engine gets its part again."""
        for site, engine in self.engines.items():
            engine.set_directory(self._directory_for(site), now)

    # --- the desk's RuleEngine ---------------------------------------------------------------------------------

    def feed(self, event: Event, now: datetime, *, late_s: float = 0.0) -> Sequence[AlarmDecision]:
        """As Engine.feed, by the engine of the event's site (none: not this hub's site)."""
        engine = self.engines.get(event.site)
        return () if engine is None else engine.feed(event, now, late_s=late_s)

    def tick(self, now: datetime) -> Sequence[AlarmDecision]:
        """As Engine.tick, for every owned site."""
        out: list[AlarmDecision] = []
        for engine in list(self.engines.values()):
            out += engine.tick(now)
        return out

    def alarm_closed(self, key: str, at: datetime) -> None:
        """As Engine.alarm_closed: keys name a resident or device, which belongs to one site."""
        for engine in self.engines.values():
            engine.alarm_closed(key, at)

    def next_deadline(self) -> datetime | None:
        """The earliest timer of any site."""
        deadlines = [d for d in (e.next_deadline() for e in self.engines.values()) if d is not None]
        return min(deadlines, default=None)

    @property
    def pending_timers(self) -> int:
        """Timers of all sites."""
        return sum(e.pending_timers for e in self.engines.values())

    # --- the hub's sight (hub/supervision.py) ------------------------------------------------------------------

    @property
    def supervision_suspended(self) -> bool:
        """Whether silence is not judged (the hub cannot see its devices)."""
        return self._suspended

    @supervision_suspended.setter
    def supervision_suspended(self, value: bool) -> None:
        self._suspended = value
        for engine in self.engines.values():
            engine.supervision_suspended = value

    def resume_supervision(self, now: datetime) -> None:
        """As Engine.resume_supervision, for every site."""
        self._suspended = False
        for engine in self.engines.values():
            engine.resume_supervision(now)

    def reconcile(self, site: str, held: Iterable[HeldAlarm], at: datetime) -> list[AlarmDecision]:
        """As Engine.reconcile, for one site."""
        engine = self.engines.get(site)
        return [] if engine is None else engine.reconcile(held, at)

    def snapshot(self, site: str) -> dict[str, Any] | None:
        """One site's engine snapshot (taken on the loop, where `feed` runs)."""
        engine = self.engines.get(site)
        return None if engine is None else engine.snapshot()


class SiteGates(Gate):
    """The gates of the owned sites, as one gate for the desk: each site's high-water marks move with its snapshot."""

    def __init__(self, freshness_s: Mapping[EventKind, float]) -> None:
        super().__init__(freshness_s)
        self.gates: dict[str, Gate] = {}

    def new(self, data: Mapping[str, Any] | None) -> Gate:
        """A gate for one site, restored from its snapshot's part (or empty)."""
        gate = Gate(self.freshness_s)
        gate.restore(data)
        return gate

    def admit(self, event: Event, received_at: datetime) -> Verdict:
        """As Gate.admit, by the gate of the event's site; an event of a site not held here is a duplicate (dropped)."""
        gate = self.gates.get(event.site)
        verdict = Verdict.DUPLICATE if gate is None else gate.admit(event, received_at)
        self.counts[verdict] += 1
        return verdict
