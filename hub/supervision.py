"""Whether the hub can see its devices, and what it owes the night staff when it cannot.

Pure: the broker connection's state and the time in, decisions out (hub/app.py feeds it every engine tick).

- Blind: while the hub's broker connection is down, and for `blind_grace_s` after it returns (the broker flushes
  what it queued; devices re-send), device silence cannot be judged: the engine's supervision is suspended and
  deferred silences are judged on their events' own times when sight returns. The same at start, until the first
  connection and its grace.
- Supervision lost: blind for longer than `blind_alarm_after_s` (or started after a downtime that long) raises one
  technical alarm per site, cleared (and closed, unless someone took it) when sight returns.
- Backlog: after a (re)connect the engine's timers wait until the broker's backlog has drained (no message for
  `quiet_s`, at most `hold_max_s`), so a timer never fires ahead of events that happened before it was due.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from alarms.engine import Engine
from hub.model import AlarmCategory, AlarmDecision, DecisionAction, Event, Severity

logger = logging.getLogger(__name__)


class Connection(Protocol):
    """What the sight needs of a broker connection (hub.mqtt.MqttConnection)."""

    @property
    def connected(self) -> bool: ...
    @property
    def generation(self) -> int: ...


RULE_ID = "supervision_lost"
REASON = "alarm system cannot see its devices: silence supervision paused, go to physical rounds"
CLEAR_REASON = "the hub sees its devices again"


@dataclass(slots=True)
class Sight:
    """The blindness state machine; see the module docstring. Times are monotonic seconds."""

    grace_s: float
    alarm_after_s: float
    sites: list[str]
    started_at: float = 0.0
    quiet_s: float = 0.5
    hold_max_s: float = 10.0
    blind_since: float | None = None  # None while the hub sees
    disconnected_since: float | None = None  # None while connected
    connected_at: float | None = None
    last_message_at: float = 0.0
    alarmed: bool = False
    downtime_s: float = 0.0
    _generation: int = -1
    _ever_connected: bool = False
    _updated: bool = False

    @classmethod
    def at_start(
        cls, grace_s: float, alarm_after_s: float, sites: Iterable[str], now_mono: float, downtime_s: float
    ) -> Sight:
        """Blind from start; the hub's own downtime counts as time without sight (it missed supervision windows),
        from the first `update` on (the hub's own start-up, before it tries the broker, does not count)."""
        sight = cls(grace_s, alarm_after_s, sorted(sites), started_at=now_mono, downtime_s=max(downtime_s, 0.0))
        sight.blind_since = now_mono
        return sight

    @property
    def blind(self) -> bool:
        """True while device silence cannot be judged."""
        return self.blind_since is not None

    def message(self, now_mono: float) -> None:
        """A message arrived from the broker."""
        self.last_message_at = now_mono

    def timers_held(self, now_mono: float) -> bool:
        """True while the broker's backlog may still be arriving: after start until the first connection, and after
        each (re)connect until no message came for `quiet_s` (each at most `hold_max_s`). A connection lost while
        running holds nothing: care timers go on, only silence waits (blind)."""
        if not self._ever_connected:
            return now_mono - self.started_at < self.hold_max_s
        if self.connected_at is None or now_mono - self.connected_at >= self.hold_max_s:
            return False
        return now_mono - max(self.connected_at, self.last_message_at) < self.quiet_s

    def update(self, connected: bool, generation: int, now_mono: float, now: datetime) -> list[AlarmDecision]:
        """Move the state machine; returns supervision-lost decisions to hand the desk."""
        out: list[AlarmDecision] = []
        if not self._updated:
            self._updated = True
            self.started_at = now_mono
            self.disconnected_since = now_mono - self.downtime_s
        if not connected:
            self.connected_at = None
            if self.disconnected_since is None:
                self.disconnected_since = now_mono
            if self.blind_since is None:
                self.blind_since = now_mono
        elif generation != self._generation or self.connected_at is None:
            self._generation = generation
            self._ever_connected = True
            self.connected_at = now_mono  # a new connection: the grace starts now
            self.disconnected_since = None
        away = self.disconnected_since
        if not self.alarmed and away is not None and now_mono - away >= self.alarm_after_s:
            self.alarmed = True
            out += self._decisions(DecisionAction.RAISE, now, REASON)
        seeing_again = self.connected_at is not None and now_mono - self.connected_at >= self.grace_s
        if self.blind_since is not None and seeing_again:
            self.blind_since = None
            if self.alarmed:
                self.alarmed = False
                out += self._decisions(DecisionAction.CLEAR, now, CLEAR_REASON)
        return out

    def _decisions(self, action: DecisionAction, now: datetime, reason: str) -> list[AlarmDecision]:
        return [
            AlarmDecision(
                action=action,
                key=f"{RULE_ID}:{site}",
                rule_id=RULE_ID,
                category=AlarmCategory.TECHNICAL,
                severity=Severity.HIGH,
                site=site,
                at=now,
                reason=reason,
                auto_close=action is DecisionAction.CLEAR,
            )
            for site in self.sites
        ]


class SupervisedEngine:
    """The rule engine as the desk sees it, with the hub's sight in between (see the module docstring).

    Every `tick` first moves the sight: blindness suspends or resumes the engine's silence supervision and yields
    the supervision-lost decisions; while the broker's backlog drains, the engine's own timers wait.
    """

    def __init__(
        self,
        engine: Engine,
        sight: Sight,
        connections: Callable[[], Sequence[Connection]],
        on_blind: Callable[[bool], None] | None = None,
    ) -> None:
        self.engine = engine
        self.sight = sight
        self._connections = connections
        self._on_blind = on_blind

    def feed(self, event: Event, now: datetime, *, late_s: float = 0.0) -> Sequence[AlarmDecision]:
        """As Engine.feed."""
        return self.engine.feed(event, now, late_s=late_s)

    def tick(self, now: datetime) -> Sequence[AlarmDecision]:
        """Move the sight, then (unless the backlog still drains) fire the engine's due timers."""
        mono = time.monotonic()
        conns = self._connections()
        connected = bool(conns) and all(c.connected for c in conns)
        out = self.sight.update(connected, sum(c.generation for c in conns), mono, now)
        blind = self.sight.blind
        if blind != self.engine.supervision_suspended:
            if blind:
                self.engine.supervision_suspended = True
                logger.warning("supervision blind: device silence is not judged until the broker is back")
            else:
                self.engine.resume_supervision(now)
                logger.info("supervision sees again: deferred silences judged on their events' own times")
            if self._on_blind is not None:
                self._on_blind(blind)
        if self.sight.timers_held(mono):
            return out
        return [*out, *self.engine.tick(now)]

    def alarm_closed(self, key: str, at: datetime) -> None:
        """As Engine.alarm_closed."""
        self.engine.alarm_closed(key, at)

    def next_deadline(self) -> datetime | None:
        """As Engine.next_deadline."""
        return self.engine.next_deadline()

    @property
    def pending_timers(self) -> int:
        """As Engine.pending_timers."""
        return self.engine.pending_timers
