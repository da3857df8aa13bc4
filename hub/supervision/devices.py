"""Whether the hub can see its devices, and what it owes the night staff when it cannot.

Pure: the state of the hub's own input and the time in, decisions out (hub/app.py feeds it every engine tick and
every event).

- Blind: while something on the hub's side keeps it from hearing its devices, and for `blind_grace_s` after that
  ends, device silence cannot be judged: the engine's supervision is suspended and deferred silences are judged on
  their events' own times when sight returns. The causes, all on the hub's side of the broker (issue 22.4):
  the broker connection is down; the hub's own loop stood still longer than `gap_s` (a stall, a process stopped by
  SIGSTOP or a paused VM), noticed by the first tick or event after it, before the engine sees either; a connection
  stopped reading (its limit of unacknowledged messages) for longer than `gap_s`; the hub's receive lag, measured by
  its own canaries, beyond `gap_s` while the broker is fine. The same at start, until the first connection and its
  grace.
- Supervision lost: blind for longer than `blind_alarm_after_s` in all (the causes' own time, not the grace;
  or started after a downtime that long) raises one technical alarm per site, cleared (and closed, unless someone
  took it) when sight returns.
- Backlog: after a (re)connect or a stall the engine's timers wait until the input that queued meanwhile has been read
  (no message for `quiet_s`, at most `hold_max_s`), so a timer never fires ahead of events that happened before it was
  due.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hub.model import AlarmDecision, DecisionAction, Event, hub_alarm

logger = logging.getLogger(__name__)


class Connection(Protocol):
    """What the sight needs of a broker connection (hub.intake.mqtt.MqttConnection)."""

    @property
    def connected(self) -> bool: ...
    @property
    def generation(self) -> int: ...
    @property
    def reading(self) -> bool: ...


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
    gap_s: float = 5.0
    blind_since: float | None = None  # None while the hub sees
    disconnected_since: float | None = None  # None while connected
    connected_at: float | None = None
    last_message_at: float = 0.0
    alarmed: bool = False
    downtime_s: float = 0.0
    cause: str | None = None  # what keeps the hub from hearing now (None: nothing; the grace may still run)
    cause_since: float | None = None  # when the causes holding now began
    cause_ended_at: float | None = None  # when the last cause ended: the grace runs from here
    impaired_s: float = 0.0  # the causes' time in this blind spell, those that ended
    paused_since: float | None = None  # a connection stopped reading
    held_from: float | None = None  # input queued (a stall): timers wait until it has been read
    _generation: int = -1
    _ever_connected: bool = False
    _updated: bool = False

    @classmethod
    def at_start(
        cls,
        grace_s: float,
        alarm_after_s: float,
        sites: Iterable[str],
        now_mono: float,
        downtime_s: float,
        gap_s: float = 5.0,
    ) -> Sight:
        """Blind from start; the hub's own downtime counts as time without sight (it missed supervision windows),
        from the first `update` on (the hub's own start-up, before it tries the broker, does not count)."""
        sight = cls(
            grace_s, alarm_after_s, sorted(sites), started_at=now_mono, downtime_s=max(downtime_s, 0.0), gap_s=gap_s
        )
        sight.blind_since = now_mono
        return sight

    @property
    def blind(self) -> bool:
        """True while device silence cannot be judged."""
        return self.blind_since is not None

    def message(self, now_mono: float) -> None:
        """A message arrived from the broker."""
        self.last_message_at = now_mono

    def stalled(self, since_mono: float, now_mono: float) -> None:
        """The hub itself heard nothing from `since_mono` to `now_mono` because it did not run (its loop stood
        still, the process was stopped): a gap in its own input, blind for it and for the grace after it."""
        if self.blind_since is None:
            self.blind_since = since_mono
        if self.cause_since is not None:
            self.cause_since = min(self.cause_since, since_mono)
        else:
            self.impaired_s += now_mono - since_mono
            self.cause_ended_at = now_mono
        self.held_from = now_mono  # what queued in the socket and the broker meanwhile comes now

    def timers_held(self, now_mono: float) -> bool:
        """True while the broker's backlog may still be arriving: after start until the first connection, and after
        each (re)connect or stall until no message came for `quiet_s` (each at most `hold_max_s`). A connection lost
        while running holds nothing: care timers go on, only silence waits (blind)."""
        if not self._ever_connected:
            return now_mono - self.started_at < self.hold_max_s
        held = False
        for since in (self.connected_at, self.held_from):
            if since is not None and now_mono - since < self.hold_max_s:
                held = held or now_mono - max(since, self.last_message_at) < self.quiet_s
        return held

    def update(
        self,
        connected: bool,
        generation: int,
        now_mono: float,
        now: datetime,
        *,
        reading: bool = True,
        lag_s: float = 0.0,
    ) -> list[AlarmDecision]:
        """Move the state machine; returns supervision-lost decisions to hand the desk.

        `reading`: False while a connection has stopped reading (its limit of unacknowledged messages); `lag_s`: how
        far behind the hub's input is (its canaries' oldest round trip under way)."""
        out: list[AlarmDecision] = []
        if not self._updated:
            self._updated = True
            self.started_at = now_mono
            self.disconnected_since = now_mono - self.downtime_s
            self.cause_since = self.disconnected_since
        if not connected:
            self.connected_at = None
            if self.disconnected_since is None:
                self.disconnected_since = now_mono
        elif generation != self._generation or self.connected_at is None:
            self._generation = generation
            self._ever_connected = True
            self.connected_at = now_mono  # a new connection: the grace starts now
            self.disconnected_since = None
        if reading:
            self.paused_since = None
        elif self.paused_since is None:
            self.paused_since = now_mono
        causes: list[tuple[str, float]] = []
        if self.disconnected_since is not None:
            causes.append(("broker connection down", self.disconnected_since))
        if self.paused_since is not None and now_mono - self.paused_since > self.gap_s:
            causes.append(("a connection stopped reading", self.paused_since))
        if lag_s > self.gap_s:
            causes.append((f"input {lag_s:.0f} s behind", now_mono - lag_s))
        if causes:
            cause, since = min(causes, key=lambda c: c[1])
            self.cause = cause
            if self.blind_since is None:
                self.blind_since = since
            self.cause_since = since if self.cause_since is None else min(self.cause_since, since)
            self.cause_ended_at = None
        elif self.cause_since is not None:
            self.impaired_s += now_mono - self.cause_since
            self.cause_since = None
            self.cause = None
            self.cause_ended_at = now_mono
        impaired_s = self.impaired_s + (now_mono - self.cause_since if self.cause_since is not None else 0.0)
        if not self.alarmed and self.blind_since is not None and impaired_s >= self.alarm_after_s:
            self.alarmed = True
            out += self._decisions(DecisionAction.RAISE, now, REASON)
        ended = self.cause_ended_at
        seeing_again = self.cause_since is None and ended is not None and now_mono - ended >= self.grace_s
        if self.blind_since is not None and seeing_again:
            self.blind_since = None
            self.cause_ended_at = None
            self.impaired_s = 0.0
            if self.alarmed:
                self.alarmed = False
                out += self._decisions(DecisionAction.CLEAR, now, CLEAR_REASON)
        return out

    def _decisions(self, action: DecisionAction, now: datetime, reason: str) -> list[AlarmDecision]:
        return [hub_alarm(action, RULE_ID, site, now, reason) for site in self.sites]


class WatchedEngine(Protocol):
    """What the sight needs of the rule engine (alarms.engine.Engine, or the HA profile's per-site engines)."""

    supervision_suspended: bool

    def feed(self, event: Event, now: datetime, *, late_s: float = 0.0) -> Sequence[AlarmDecision]: ...
    def tick(self, now: datetime) -> Sequence[AlarmDecision]: ...
    def resume_supervision(self, now: datetime) -> None: ...
    def alarm_closed(self, key: str, at: datetime) -> None: ...
    def next_deadline(self) -> datetime | None: ...
    @property
    def pending_timers(self) -> int: ...


class SupervisedEngine:
    """The rule engine as the desk sees it, with the hub's sight in between (see the module docstring).

    Every `tick`, and every `feed` that comes after the hub stood still, first moves the sight: blindness suspends
    or resumes the engine's silence supervision and yields the supervision-lost decisions; while the input that queued
    meanwhile drains, the engine's own timers wait. A gap is noticed by whichever comes first after it, so the engine
    never judges a silence that was the hub's own.
    """

    def __init__(
        self,
        engine: WatchedEngine,
        sight: Sight,
        connections: Callable[[], Sequence[Connection]],
        on_blind: Callable[[bool], None] | None = None,
        *,
        input_lag_s: Callable[[], float] | None = None,
    ) -> None:
        self.engine = engine
        self.sight = sight
        self._connections = connections
        self._on_blind = on_blind
        self._input_lag_s = input_lag_s
        self._alive_at: float | None = None  # when the hub last ran this lane (a tick or an event)

    def feed(self, event: Event, now: datetime, *, late_s: float = 0.0) -> Sequence[AlarmDecision]:
        """As Engine.feed; the first event after a gap in the hub's own running moves the sight first."""
        mono = time.monotonic()
        alive_at, self._alive_at = self._alive_at, mono
        self.sight.message(mono)
        if alive_at is not None and mono - alive_at > self.sight.gap_s:
            out = self._observe(now, mono, alive_at)
            return [*out, *self.engine.feed(event, now, late_s=late_s)]
        return self.engine.feed(event, now, late_s=late_s)

    def tick(self, now: datetime) -> Sequence[AlarmDecision]:
        """Move the sight, then (unless the backlog still drains) fire the engine's due timers."""
        mono = time.monotonic()
        alive_at, self._alive_at = self._alive_at, mono
        out = self._observe(now, mono, alive_at)
        if self.sight.timers_held(mono):
            return out
        return [*out, *self.engine.tick(now)]

    def _observe(self, now: datetime, mono: float, alive_at: float | None) -> list[AlarmDecision]:
        stall = None
        if alive_at is not None and mono - alive_at > self.sight.gap_s:
            stall = f"the hub did not run for {mono - alive_at:.1f} s"
            logger.warning("hub input gap: %s", stall)
            self.sight.stalled(alive_at, mono)
        conns = self._connections()
        connected = bool(conns) and all(c.connected for c in conns)
        reading = all(c.reading for c in conns)
        lag_s = self._input_lag_s() if self._input_lag_s is not None else 0.0
        out = self.sight.update(connected, sum(c.generation for c in conns), mono, now, reading=reading, lag_s=lag_s)
        blind = self.sight.blind
        if blind != self.engine.supervision_suspended:
            if blind:
                self.engine.supervision_suspended = True
                logger.warning(
                    "supervision blind (%s): device silence is not judged until the hub hears its devices again",
                    self.sight.cause or stall or "starting",
                )
            else:
                self.engine.resume_supervision(now)
                logger.info("supervision sees again: deferred silences judged on their events' own times")
            if self._on_blind is not None:
                self._on_blind(blind)
        return out

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
