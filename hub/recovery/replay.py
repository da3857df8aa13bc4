"""After a restart the engine is where it would have been without the crash: snapshot, then replay.

What is acked when (see hub/intake/mqtt.py): the broker gets its PUBACK once an event is durable, in the database or the
local spool; the engine is snapshotted every few seconds. An event acknowledged after the last snapshot is therefore
in neither the restored engine nor the broker's queue: it is found in the store (and the spool) and replayed.

- The snapshot records `replay_from`: the hub's clock when it was taken. Every stored event received since then,
  less a margin for events still queued inside the hub at that moment, is fed again in receive order through the
  gate, whose high-water marks (restored with the snapshot) let each event count exactly once.
- Then the engine catches up to now (timers that fell due while the hub was down fire with their due time).
- The desk was restored from the database before. A decision of the replay reaches it as the uninterrupted hub's
  would have, except what it has already seen (`_seen_by_desk`: its open alarm of the key belongs to the decision's
  incident and changed since; or it raised and closed that incident already): nothing is rung twice, no cancel of
  an earlier incident ends a later one.
- Last, an alarm the engine holds open that the desk never heard of (lost between raise and persistence) is raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from alarms.engine import Engine
from alarms.gate import Gate, feed
from hub.model import AlarmDecision, DecisionAction, Event, EventKind
from hub.store.rows import EventRow, decode_batch
from hub.store.spool import Spool

logger = logging.getLogger(__name__)

# a late event older than this (by its own time) is not looked for: it would be past every freshness window anyway
_OLDEST_TS = timedelta(days=1)
_TOLERANCE = timedelta(seconds=2)
_attrs = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class DeskView:
    """What recovery needs of the desk: apply a decision; when the open alarm of a key was raised and last changed."""

    apply: Callable[[AlarmDecision], object]
    open_alarm: Callable[[str], tuple[datetime, datetime] | None]


@dataclass(slots=True)
class RecoveryReport:
    """What a recovery did (logged, and read by tests)."""

    replayed: int = 0
    raised: int = 0
    suppressed: int = 0
    reconciled: int = 0
    seconds: float = 0.0
    decisions: list[AlarmDecision] = field(default_factory=list)


def event_from_row(row: EventRow | asyncpg.Record) -> tuple[Event, datetime]:
    """A stored event row (database or spool) as an Event and its receive time."""
    ts, site, device_id, resident_id, kind, value, unit, attrs, seq, ref, received_at = tuple(row)
    if isinstance(attrs, str):
        attrs = _attrs.decode(attrs) if attrs not in ("", "{}") else {}
    event = Event(
        ts=ts if ts.tzinfo else ts.replace(tzinfo=UTC),
        site=site,
        device_id=device_id,
        kind=EventKind(kind),
        value=value,
        unit=unit,
        attrs=attrs or {},
        seq=int(seq),
        ref=ref,
        resident_id=resident_id,
    )
    return event, received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)


async def stored_since(conn: asyncpg.Connection, since: datetime) -> list[tuple[Event, datetime]]:
    """Events received since `since`, in receive order."""
    rows = await conn.fetch(
        "SELECT ts, site, device_id, resident_id, kind, value, unit, attrs::text, seq, ref, received_at FROM events"
        " WHERE ts >= $1 AND received_at >= $2 ORDER BY received_at, ts, seq",
        since - _OLDEST_TS,
        since,
    )
    return [event_from_row(r) for r in rows]


async def spooled_since(spool: Spool, since: datetime) -> list[tuple[Event, datetime]]:
    """Events waiting in the spool (not yet in the database) received since `since`."""
    out: list[tuple[Event, datetime]] = []
    for path in spool.sealed_segments(seal_active=False):
        for record in await spool.read(path):
            try:
                batch = decode_batch(record.payload)
            except msgspec.DecodeError:
                continue
            for row in batch.events:
                event, received_at = event_from_row(row)
                if received_at >= since:
                    out.append((event, received_at))
    return out


def merge(*sources: Iterable[tuple[Event, datetime]]) -> list[tuple[Event, datetime]]:
    """One receive-ordered list, each stored event once."""
    seen: dict[tuple[str, datetime, int], tuple[Event, datetime]] = {}
    for source in sources:
        for event, received_at in source:
            seen.setdefault((event.device_id, event.ts, event.seq), (event, received_at))
    return sorted(seen.values(), key=lambda item: (item[1], item[0].ts, item[0].seq))


def _midpoint(a: datetime, b: datetime) -> datetime:
    return a + (b - a) / 2


def _seen_by_desk(
    decision: AlarmDecision,
    held: tuple[datetime, datetime] | None,
    previous_end: datetime | None,
    next_raise: datetime | None,
) -> bool:
    """Whether the desk already saw this replayed decision (before the crash), judged by its open alarm of the key.

    The desk's alarm belongs to this decision's incident when it was raised after the previous incident of the key
    ended (half-way, in case clocks differ a little) and before the next one began; it saw the decision when it
    changed at or after the decision's time.
    """
    action = decision.action
    if action is DecisionAction.UPDATE and not decision.repeat:
        return True  # counts and texts only: nothing to ring
    if held is None:
        return action is not DecisionAction.RAISE  # nothing open to end or to ring again
    raised_at, updated_at = held
    if action in (DecisionAction.CLEAR, DecisionAction.CANCEL):
        if next_raise is not None and raised_at >= _midpoint(decision.at, next_raise):
            return True  # it ends an earlier incident; the desk's open alarm is the next one
        return updated_at >= decision.at
    start = decision.at - _TOLERANCE if previous_end is None else _midpoint(previous_end, decision.at)
    return raised_at >= start or updated_at >= decision.at


def replay(
    gate: Gate,
    engine: Engine,
    events: Iterable[tuple[Event, datetime]],
    now: datetime,
    desk: DeskView,
    raised_before: Callable[[str, datetime], datetime | None],
) -> RecoveryReport:
    """Feed stored events again, catch up to `now`, and hand the desk what it has not seen (module docstring).

    `raised_before(key, after)`: when the desk already raised (and closed) an alarm of this key at or after `after`,
    the time it was closed; None when it never did.
    """
    started = time.perf_counter()
    report = RecoveryReport()
    decisions: list[AlarmDecision] = []
    for event, received_at in events:
        report.replayed += 1
        decisions += feed(gate, engine, event, received_at, min(received_at, now))
    decisions += engine.tick(now)
    # where one incident of a key ends and the next begins (event time): tells which one the desk's alarm is
    next_raise: list[datetime | None] = [None] * len(decisions)
    upcoming: dict[str, datetime] = {}
    for i in range(len(decisions) - 1, -1, -1):
        next_raise[i] = upcoming.get(decisions[i].key)
        if decisions[i].action is DecisionAction.RAISE:
            upcoming[decisions[i].key] = decisions[i].at
    ended: dict[str, datetime] = {}
    for i, decision in enumerate(decisions):
        report.decisions.append(decision)
        held = desk.open_alarm(decision.key)
        if _seen_by_desk(decision, held, ended.get(decision.key), next_raise[i]):
            report.suppressed += 1
        elif decision.action is DecisionAction.RAISE and held is None:
            before = ended.get(decision.key)
            after = decision.at - _TOLERANCE if before is None else _midpoint(before, decision.at)
            closed_at = raised_before(decision.key, after)
            if closed_at is not None:
                report.suppressed += 1  # raised and closed before the crash
                engine.alarm_closed(decision.key, closed_at)
            else:
                report.raised += 1
                desk.apply(decision)
        else:
            desk.apply(decision)
        if decision.action in (DecisionAction.CLEAR, DecisionAction.CANCEL):
            ended[decision.key] = decision.at
    for key, alarm in list(engine.open.items()):
        if desk.open_alarm(key) is not None:
            continue
        closed_at = raised_before(key, datetime.fromtimestamp(alarm.opened_at, UTC) - _TOLERANCE)
        if closed_at is not None:
            engine.alarm_closed(key, closed_at)
            continue
        report.reconciled += 1
        desk.apply(
            AlarmDecision(
                action=DecisionAction.RAISE,
                key=key,
                rule_id=alarm.rule_id,
                category=alarm.category,
                severity=alarm.severity,
                site=alarm.site,
                at=datetime.fromtimestamp(alarm.opened_at, UTC),
                reason="alarm restored after a restart",
                resident_id=alarm.resident_id,
                device_id=alarm.device_id,
                count=alarm.count,
                unregistered=alarm.unregistered,
            )
        )
    report.seconds = time.perf_counter() - started
    return report


class DeskHistory:
    """Alarms the desk raised since a time, by key: tells a replayed RAISE the desk already saw from a new one."""

    def __init__(self, rows: Iterable[tuple[str, datetime, datetime | None]]) -> None:
        self._by_key: dict[str, list[tuple[datetime, datetime | None]]] = {}
        for key, raised_at, closed_at in rows:
            self._by_key.setdefault(key, []).append((raised_at, closed_at))

    @classmethod
    async def load(cls, conn: asyncpg.Connection, since: datetime) -> DeskHistory:
        """Desk alarms raised since `since`."""
        rows = await conn.fetch("SELECT key, raised_at, closed_at FROM desk_alarms WHERE raised_at >= $1", since)
        return cls((r["key"], r["raised_at"], r["closed_at"]) for r in rows)

    def closed_since(self, key: str, after: datetime) -> datetime | None:
        """When the desk closed an alarm of `key` raised at or after `after`, or None."""
        for raised_at, closed_at in self._by_key.get(key, ()):
            if closed_at is not None and raised_at >= after:
                return closed_at
        return None
