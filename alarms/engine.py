"""The rule engine: events and the current time in, alarm decisions out. Pure: no I/O, no clock of its own.

Timing contract: an event is evaluated at its own `ts`. Before it is applied, every timer due at or before `ts` fires,
so feeding events one by one, in batches, or with any interleaving of `tick` calls yields the same decisions.
"Within D" is strict: a bed entry exactly 20 min after the exit is too late. Decisions from timers carry the due time
as `at`, not the time `tick` happened to be called.

Alarm lifetime: an alarm is open from RAISE until the engine CANCELs it (device-side cancel) or the hub calls
`alarm_closed` (the desk resolved or cancelled it, also after a CLEAR). While open, repeats are UPDATEs; those that
are a new incident carry `repeat` (the desk rings again): for care rules a new press, fall or dose (a new `ref`); for
technical rules only a fault after the rule's clear, never a fault that simply continues. A CLEAR or CANCEL never
closes a care alarm at the desk: it stays until a person resolves it, except a CANCEL with `by_person`
(`alarm_reset`: a person ended that very alarm at the unit); `auto_close` on the decision says a technical rule
allows closing itself. An `alarm_aborted` (the unit gave up on Vaka for that alarm, SCAIP `RE`) is a CANCEL without
`by_person`: the alarm stays with staff, marked with what happened.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from alarms.base import Compiled, Params, Where
from alarms.directory import DEFAULT_ZONE, DeviceInfo, Directory
from alarms.registry import compile_rule
from alarms.rules import RuleSet
from alarms.schedule import LocalClock
from alarms.state import OpenAlarm, TimerHeap
from hub.model import AlarmCategory, AlarmDecision, DecisionAction, Event, EventKind, Severity

logger = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
# rule types whose UPDATE is a new incident (rings again); the others update a condition that still holds
_INCIDENT_TYPES = frozenset({"instant", "absence", "sequence"})
# kinds of a two-valued state a device may repeat unchanged (`attrs.property` names the state); never a press or a fall
STATE_KINDS = frozenset(
    {
        EventKind.DOOR_OPEN,
        EventKind.DOOR_CLOSED,
        EventKind.PRESENCE,
        EventKind.WATER_LEAK,
        EventKind.WATER_LEAK_ENDED,
        EventKind.SMOKE,
        EventKind.SMOKE_ENDED,
    }
)


class HeldAlarm(Protocol):
    """What reconciliation reads of an alarm the desk holds open (hub.desk.alarm.Alarm)."""

    @property
    def key(self) -> str: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def site(self) -> str: ...
    @property
    def resident_id(self) -> str | None: ...
    @property
    def device_id(self) -> str | None: ...
    @property
    def category(self) -> AlarmCategory: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def raised_at(self) -> datetime: ...
    @property
    def condition_ended_at(self) -> datetime | None: ...
    @property
    def count(self) -> int: ...
    @property
    def unregistered(self) -> bool: ...


def device_ref(device_id: str | None, ref: str) -> str:
    """A device's detection ref, qualified by the device: another device cannot name it."""
    return f"{device_id}/{ref}"


class Engine:
    """Evaluates a RuleSet against events and time for the homes in a Directory."""

    def __init__(self, rules: RuleSet, directory: Directory) -> None:
        self.rules = rules
        self.compiled: dict[str, Compiled] = {}
        for rule in rules.live:  # a rule off in the pack but on in a profile is compiled, off by default
            self.compiled[rule.id] = compile_rule(rule, rules.schedules)
        self._by_kind: dict[EventKind, tuple[Compiled, ...]] = {}
        self._liveness: dict[EventKind, tuple[Compiled, ...]] = {}
        for kind in EventKind:
            self._by_kind[kind] = tuple(c for c in self.compiled.values() if c.listens is None or kind in c.listens)
            # a device repeating its state is alive, and nothing more: only device supervision hears it
            self._liveness[kind] = tuple(c for c in self._by_kind[kind] if getattr(c, "supervision", False))
        # technical rules that say a device is gone (silence supervision, a device's own "offline"): one fault of a
        # device gives one alarm, whichever of them sees it first
        self._absence_rules = frozenset(
            c.id
            for c in self.compiled.values()
            if c.by_device
            and not c.care
            and (getattr(c, "supervision", False) or (c.listens is not None and EventKind.DEVICE_OFFLINE in c.listens))
        )
        self.offline_grace_s = 120.0  # a device that said offline is silent once this has passed
        self.supervision_suspended = False  # the hub cannot see its devices (broker away): silence is not judged
        self.timers = TimerHeap()
        self.open: dict[str, OpenAlarm] = {}
        self.cooldown_until: dict[str, float] = {}
        self._clocks: dict[str, LocalClock] = {}
        self._zone_clocks: dict[str, LocalClock] = {}
        self._out: list[AlarmDecision] = []
        self._started = False
        self._clock = 0.0  # the latest time seen, epoch seconds
        self.withdrawals_unmatched = 0  # cancels that named no alarm of theirs (counted by the hub)
        self.freshness_s: dict[str, float] = {}  # rule id -> how late an event may arrive and still reach it
        # "{site}/{device}/{property}" -> the state last reported (kind and value) by a state-style device
        self.states: dict[str, str] = {}
        self._apply_directory(directory)

    # --- directory ----------------------------------------------------------------------------------------------

    def _apply_directory(self, directory: Directory) -> None:
        self.directory = directory
        self.devices: dict[str, DeviceInfo] = directory.devices
        self.residents = directory.residents
        self.devices_by_resident: dict[str, list[DeviceInfo]] = {}
        for dev in directory.devices.values():
            if dev.resident_id is not None:
                self.devices_by_resident.setdefault(dev.resident_id, []).append(dev)
        self._clocks = {}
        for compiled in self.compiled.values():
            compiled.set_profiles(directory.residents)

    def set_directory(self, directory: Directory, now: datetime) -> None:
        """Take a new inventory and profiles; new devices and residents are watched from `now`."""
        self._apply_directory(directory)
        self._start(now.timestamp())

    def _start(self, t: float) -> None:
        self._started = True
        for compiled in self.compiled.values():
            compiled.arm(self, t)

    def clock(self, site: str) -> LocalClock:
        """The local clock of a site."""
        clock = self._clocks.get(site)
        if clock is None:
            zone = self.directory.site_zones.get(site, DEFAULT_ZONE)
            clock = self._zone_clocks.get(zone)
            if clock is None:
                clock = self._zone_clocks[zone] = LocalClock(ZoneInfo(zone))
            self._clocks[site] = clock
        return clock

    # --- evaluation ---------------------------------------------------------------------------------------------

    def feed(self, event: Event, now: datetime, *, late_s: float = 0.0) -> list[AlarmDecision]:
        """Evaluate one event (at its own `ts`); returns decisions of timers due before it and of the event itself.

        `late_s`: how long after its own time the event arrived; rules whose freshness window (`freshness_s`) it
        exceeds do not see it (old news raises no live care alarm).
        """
        t = event.ts.timestamp()
        out = self._out = []
        if t > self._clock:
            self._clock = t
        if not self._started:
            self._start(t)
        timers = self.timers
        if timers._heap and timers._heap[0][0] <= t:
            self._fire_due(t)
        dev = self.devices.get(event.device_id)
        rid = event.resident_id
        if rid is None and dev is not None:
            rid = dev.resident_id
        if event.kind in STATE_KINDS and event.attrs and "property" in event.attrs and self._same_state(event):
            for compiled in self._liveness[event.kind]:
                compiled.on_event(self, event, t, dev, rid)
            return out
        if late_s:
            fresh = self.freshness_s
            for compiled in self._by_kind[event.kind]:
                if late_s <= fresh.get(compiled.id, math.inf):
                    compiled.on_event(self, event, t, dev, rid)
            return out
        for compiled in self._by_kind[event.kind]:
            compiled.on_event(self, event, t, dev, rid)
        return out

    def _same_state(self, event: Event) -> bool:
        """Whether a state-style event (`attrs.property`, e.g. Zigbee2MQTT's `water_leak`) repeats the state its
        device last reported: with `cache_state` every message repeats the whole state, and a door still open or a
        floor still wet is not a new incident. Remembers the state otherwise."""
        key = f"{event.site}/{event.device_id}/{event.attrs['property']}"
        state = f"{event.kind.value}:{event.value}"
        if self.states.get(key) == state:
            return True
        self.states[key] = state
        return False

    def tick(self, now: datetime) -> list[AlarmDecision]:
        """Fire every timer due at or before `now`."""
        t = now.timestamp()
        out = self._out = []
        if t > self._clock:
            self._clock = t
        if not self._started:
            self._start(t)
        self._fire_due(t)
        return out

    def _fire_due(self, t: float) -> None:
        timers = self.timers
        while (timer := timers.pop_due(t)) is not None:
            due, _, rule_id, subject, anchor = timer
            compiled = self.compiled.get(rule_id)
            if compiled is not None:
                compiled.on_timer(self, subject, anchor, due)

    def resume_supervision(self, now: datetime) -> None:
        """The hub sees its devices again: judge every silence deferred while it was blind, on the events' own time."""
        self.supervision_suspended = False
        t = now.timestamp()
        for compiled in self.compiled.values():
            resume = getattr(compiled, "resume", None)
            if resume is not None:
                resume(self, t)

    @property
    def clock_s(self) -> float:
        """The latest time the engine has seen (events' own times and ticks), epoch seconds."""
        return self._clock

    @property
    def pending_timers(self) -> int:
        """Timers in the heap (including stale ones their rule will ignore)."""
        return len(self.timers)

    def next_deadline(self) -> datetime | None:
        """When `tick` must be called next (None: no timer pending)."""
        due = self.timers.next_due()
        return None if due is None else datetime.fromtimestamp(due, UTC)

    # --- alarms -------------------------------------------------------------------------------------------------

    def may_raise(self, compiled: Compiled, rid: str | None, dev: DeviceInfo | None, params: Params) -> bool:
        """False when the rule is off for the resident, the resident is away (care) or the device in maintenance."""
        if not params.enabled:
            return False
        if compiled.care:
            if rid is not None:
                profile = self.residents.get(rid)
                if profile is not None and profile.away:
                    return False
            return True
        return dev is None or not dev.maintenance

    def raise_or_update(
        self,
        compiled: Compiled,
        subject: str,
        *,
        t: float,
        at: datetime,
        where: Where,
        dev: DeviceInfo | None,
        ref: str | None,
        reason: str,
    ) -> None:
        """Open the alarm for (rule, subject), or update it when already open; respects the cooldown."""
        key = f"{compiled.id}:{subject}"
        site, rid, device_id = where.site, where.resident_id, where.device_id
        alarm = self.open.get(key)
        qualified = None if ref is None else device_ref(device_id, ref)
        if alarm is not None:
            alarm.count += 1
            # a new incident (another press, another missed dose) rings again; a radar repeating the same fall (same
            # ref) or a condition that still holds (sustained, count, baseline) only updates the card
            repeat = (qualified is None or qualified not in alarm.refs) and compiled.rule.type in _INCIDENT_TYPES
            if not compiled.care:
                # a technical fault reported again (a camera still at 0 fps in every stats message) is the same
                # incident; only a fault after the rule's clear (the device was fine in between) is a new one
                repeat = repeat and alarm.cleared
            alarm.cleared = False
            if qualified is not None:
                alarm.refs.add(qualified)
            self._out.append(
                AlarmDecision(
                    action=DecisionAction.UPDATE,
                    key=key,
                    rule_id=compiled.id,
                    category=alarm.category,
                    severity=alarm.severity,
                    site=site,
                    at=at,
                    reason=reason,
                    resident_id=rid,
                    device_id=device_id,
                    ref=ref,
                    count=alarm.count,
                    unregistered=alarm.unregistered,
                    repeat=repeat,
                )
            )
            return
        if compiled.id in self._absence_rules and device_id is not None:
            for other in self._absence_rules:
                if other != compiled.id and f"{other}:{device_id}" in self.open:
                    logger.info("alarm folded key=%s: the device's absence is already an open %s alarm", key, other)
                    return
        until = self.cooldown_until.get(key)
        if until is not None:
            if t < until:
                return
            del self.cooldown_until[key]
        severity = compiled.safety_severity if dev is not None and dev.safety else compiled.severity
        unregistered = device_id is not None and dev is None and compiled.category is AlarmCategory.CARE
        alarm = OpenAlarm(
            rule_id=compiled.id,
            subject=subject,
            site=site,
            category=compiled.category,
            severity=severity,
            resident_id=rid,
            device_id=device_id,
            opened_at=t,
            unregistered=unregistered,
        )
        if qualified is not None:
            alarm.refs.add(qualified)
        self.open[key] = alarm
        logger.info("alarm raise key=%s severity=%s", key, severity.name.lower())
        self._out.append(
            AlarmDecision(
                action=DecisionAction.RAISE,
                key=key,
                rule_id=compiled.id,
                category=compiled.category,
                severity=severity,
                site=site,
                at=at,
                reason=reason,
                resident_id=rid,
                device_id=device_id,
                ref=ref,
                count=1,
                unregistered=unregistered,
            )
        )

    def clear(self, compiled: Compiled, subject: str, at: datetime) -> None:
        """The rule's condition ended: tell the desk once (it cancels if not yet accepted, else annotates)."""
        key = f"{compiled.id}:{subject}"
        alarm = self.open.get(key)
        if alarm is None or alarm.cleared:
            return
        alarm.cleared = True
        logger.info("alarm clear key=%s", key)
        self._out.append(
            AlarmDecision(
                action=DecisionAction.CLEAR,
                key=key,
                rule_id=compiled.id,
                category=alarm.category,
                severity=alarm.severity,
                site=alarm.site,
                at=at,
                reason=compiled.rule.clear_reason,
                resident_id=alarm.resident_id,
                device_id=alarm.device_id,
                ref=None,
                count=alarm.count,
                unregistered=alarm.unregistered,
                auto_close=compiled.rule.auto_close,
            )
        )

    def cancel(
        self,
        compiled: Compiled,
        subject: str,
        at: datetime,
        ref: str | None,
        reason: str,
        device_id: str | None = None,
        *,
        unit_wide: bool = False,
        by_person: bool = False,
    ) -> None:
        """A device-side withdrawal: only of the alarm it refers to, and only from the device that raised it.

        An alarm raised with refs is withdrawn by the same device naming one of them (and only once none is left
        standing); one raised without a ref by its own device sending none. Anything else (no ref, a foreign
        device, an unknown ref) leaves the alarm as it is and is counted in `withdrawals_unmatched`.
        A `unit_wide` ending (a reset or an abort at an alarm unit) reaches every rule of the kinds a unit raises:
        another device's alarm under one of them (the radar's fall while the button is reset) is simply not the
        unit's, and is not counted. `by_person`: a person ended it at the device (the desk closes it).
        """
        key = f"{compiled.id}:{subject}"
        alarm = self.open.get(key)
        if alarm is None:
            return
        if unit_wide and device_id != alarm.device_id:
            return
        qualified = None if ref is None else device_ref(device_id, ref)
        if alarm.refs:
            if qualified is None or qualified not in alarm.refs:
                self._unmatched(key, ref, device_id)
                return
            alarm.refs.discard(qualified)
            if alarm.refs:
                return  # another detection under this alarm is still standing
        elif ref is not None or device_id != alarm.device_id:
            self._unmatched(key, ref, device_id)
            return
        del self.open[key]
        logger.info("alarm cancel key=%s", key)
        self._out.append(
            AlarmDecision(
                action=DecisionAction.CANCEL,
                key=key,
                rule_id=compiled.id,
                category=alarm.category,
                severity=alarm.severity,
                site=alarm.site,
                at=at,
                reason=reason,
                resident_id=alarm.resident_id,
                device_id=alarm.device_id,
                ref=ref,
                count=alarm.count,
                unregistered=alarm.unregistered,
                auto_close=compiled.rule.auto_close,
                by_person=by_person,
            )
        )

    def _unmatched(self, key: str, ref: str | None, device_id: str | None) -> None:
        self.withdrawals_unmatched += 1
        logger.info("alarm withdrawal ignored key=%s: no matching ref (ref given=%s)", key, ref is not None)

    def alarm_closed(self, key: str, at: datetime) -> None:
        """The desk resolved or cancelled the alarm: forget it and start the rule's cooldown."""
        alarm = self.open.pop(key, None)
        rule_id = key.partition(":")[0] if alarm is None else alarm.rule_id
        compiled = self.compiled.get(rule_id)
        if compiled is not None and compiled.cooldown_s > 0:
            self.cooldown_until[key] = at.timestamp() + compiled.cooldown_s

    def reconcile(self, held: Iterable[HeldAlarm], at: datetime) -> list[AlarmDecision]:
        """Agree with the alarms the desk holds open, by key (at start-up: the desk and the engine are restored from
        different places, the database and a snapshot, and a replay may have moved the engine on).

        Only rules that keep a state of their own per subject take part (silence supervision: `adopt`, `holds`): an
        open alarm whose condition goes on and that the engine does not hold is adopted (its rule told, so a fresh sign
        of life clears it and the ongoing silence raises nothing twice); one the engine holds as cleared, whose rule
        says the subject is fine, while the desk never heard the clear, is cleared at the desk. Care rules are left
        alone: an event the hub decided on but had not made durable before a crash comes again from the broker, and
        the engine, behind the desk until then, catches up by itself. An alarm the engine holds and the desk does not
        is the recovery's to raise (hub/recovery/replay.py). Returns the decisions for the desk.
        """
        out = self._out = []
        for alarm in held:
            compiled = self.compiled.get(alarm.rule_id)
            prefix = f"{alarm.rule_id}:"
            adopt = getattr(compiled, "adopt", None)
            holds = getattr(compiled, "holds", None)
            if compiled is None or adopt is None or holds is None or not alarm.key.startswith(prefix):
                continue  # the hub's own alarms (supervision lost, canary), care rules, rules no longer in the pack
            if alarm.condition_ended_at is not None:
                continue  # waits for staff: nothing of the engine's
            subject = alarm.key[len(prefix) :]
            mine = self.open.get(alarm.key)
            if mine is None:
                self.open[alarm.key] = OpenAlarm(
                    rule_id=alarm.rule_id,
                    subject=subject,
                    site=alarm.site,
                    category=alarm.category,
                    severity=alarm.severity,
                    resident_id=alarm.resident_id,
                    device_id=alarm.device_id,
                    opened_at=alarm.raised_at.timestamp(),
                    count=alarm.count,
                    unregistered=alarm.unregistered,
                )
                adopt(self, subject, alarm.raised_at.timestamp())
                logger.info("alarm adopted key=%s: open at the desk, unknown to the engine", alarm.key)
            elif mine.cleared and not holds(subject):
                mine.cleared = False
                self.clear(compiled, subject, at)  # the desk never heard it
        return out

    # --- persistence --------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-serialisable state: open alarms, cooldowns, pending timers and every rule's windows.

        The result shares nothing mutable with the engine, so it may be serialised in another thread; the call itself
        must run where `feed` and `tick` run (the event loop).
        """
        return {
            "version": SNAPSHOT_VERSION,
            "started": self._started,
            "clock": self._clock,
            "open": {key: alarm.to_json() for key, alarm in self.open.items()},
            "cooldown_until": dict(self.cooldown_until),
            "states": dict(self.states),
            "timers": self.timers.to_json(),
            "rules": {rule_id: compiled.state_to_json() for rule_id, compiled in self.compiled.items()},
        }

    @classmethod
    def restore(cls, rules: RuleSet, directory: Directory, snapshot: dict[str, Any]) -> Engine:
        """An engine continuing from a snapshot; state of rules no longer in `rules` is dropped."""
        engine = cls(rules, directory)
        if snapshot.get("version") != SNAPSHOT_VERSION:
            logger.warning("engine snapshot version=%s not understood, starting fresh", snapshot.get("version"))
            return engine
        known = set(engine.compiled)
        engine.open = {
            key: OpenAlarm.from_json(data) for key, data in snapshot.get("open", {}).items() if data["rule_id"] in known
        }
        engine.cooldown_until = {str(k): float(v) for k, v in snapshot.get("cooldown_until", {}).items()}
        engine.states = {str(k): str(v) for k, v in snapshot.get("states", {}).items()}
        engine.timers = TimerHeap.from_json(snapshot.get("timers", []), known)
        for rule_id, state in snapshot.get("rules", {}).items():
            if rule_id in engine.compiled:
                engine.compiled[rule_id].state_from_json(state)
        engine._clock = float(snapshot.get("clock", 0.0))
        if snapshot.get("started", False):
            # devices and residents added while the hub was down are watched from the last time the engine saw
            engine._start(engine._clock)
        logger.info("engine restored open=%s timers=%s", len(engine.open), len(engine.timers))
        return engine
