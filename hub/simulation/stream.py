"""The simulation as one time-ordered stream of MQTT messages, plus its inventory and ground truth."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from hub.model import TOPIC_ROOT, Inventory
from hub.simulation.behaviour import DayPlan, ordinary_day
from hub.simulation.checkins import CheckinSim
from hub.simulation.config import SimConfig
from hub.simulation.devices import SimDevice, SimResident, build_inventory, build_population
from hub.simulation.incidents import BATTERY_REPORT_S, Incident, IncidentPlan, periodic_phase, plan_incidents
from hub.simulation.timeline import HOUR, Msg, care_days, skeleton_for

TEMPERATURE_REPORT_S = 900.0

_encode = msgspec.json.Encoder().encode
# (time, stream number, counter, message): unique before the message, so the heap never compares messages
_Item = tuple[float, int, int, Msg]


class SimMessage(NamedTuple):
    """One message to publish: simulated time, topic, payload, retain flag."""

    time: datetime
    topic: str
    payload: bytes
    retain: bool


class Simulation:
    """A care unit's days as MQTT traffic: deterministic for a config (its seed and window)."""

    def __init__(self, config: SimConfig, *, now: datetime | None = None) -> None:
        self.config = config
        self.start, self.end = config.window(now)
        self.zone = config.zone
        draws_rng = random.Random(f"{config.seed}:population")
        self.residents: list[SimResident] = build_population(
            config, [draws_rng.random() for _ in range(config.residents)]
        )
        self.devices: list[SimDevice] = [d for r in self.residents for d in r.devices.values()]
        t0, t1 = self.start.timestamp(), self.end.timestamp()
        self.checkins = CheckinSim(config, self.residents, t0, t1)
        self._plan: IncidentPlan = plan_incidents(
            config, self.residents, t0, t1, reserve=self.checkins.reserve if self.checkins.planned else None
        )

    def inventory(self) -> Inventory:
        """The inventory of the simulated site (load it with `vaka site load`)."""
        return build_inventory(self.config, self.residents)

    def incidents(self) -> list[Incident]:
        """The injected incidents, in time order."""
        return list(self._plan.incidents)

    def truth(self) -> list[dict[str, str | None]]:
        """The ground truth: one dict per injected incident, in time order."""
        return [i.truth(self.config.site) for i in self._plan.incidents]

    def checkin_plans(self) -> dict[str, Any]:
        """The check-in plans of the simulated residents, as `vaka checkin plan FILE` reads them."""
        return self.checkins.plan_file()

    def checkin_truth(self) -> list[dict[str, str]]:
        """The ground truth of the check-ins: one line per planned slot, camera or physical expected."""
        return self.checkins.truth()

    def clock_message(self, t: float, speed: float | None = None) -> SimMessage:
        """The retained clock message for simulated time `t` (POSIX seconds), at the run's speed by default."""
        when = datetime.fromtimestamp(t, UTC)
        payload = _encode({"now": when.isoformat(), "speed": self.config.speed if speed is None else speed})
        return SimMessage(when, self.config.clock_topic, payload, True)

    def iter_messages(
        self, start: datetime | None = None, end: datetime | None = None, *, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[SimMessage]:
        """Every message from `start` to `end` (default: the run's window) in time order, clock messages included.

        `shard=(k, n)` keeps only devices whose index is k modulo n, and the clock only in shard 0: n publishers
        together send every message once, each device's in order.
        """
        part, parts = shard
        clock_on = part == 0
        t0 = (start or self.start).timestamp()
        t1 = (end or self.end).timestamp()
        site, zone = self.config.site, self.zone
        tick_s, lead_s = self.config.clock_tick_s, self.config.clock_lead_s
        topics = [
            (
                f"{TOPIC_ROOT}/{site}/{d.id}/event",
                f"{TOPIC_ROOT}/{site}/{d.id}/telemetry",
                f"{TOPIC_ROOT}/{site}/{d.id}/status",
            )
            for d in self.devices
        ]
        seq = [0] * len(self.devices)
        mutes = self._plan.mutes
        if clock_on:
            yield self.clock_message(t0)
        last_clock, next_tick = t0, t0 + tick_s
        for t, _stream, _n, msg in heapq.merge(*self._streams(t0, t1)):
            if t >= t1:
                break
            dev = msg.device
            if parts > 1 and dev.index % parts != part:
                continue
            spans = mutes.get(dev.id)
            if spans is not None and msg.status is None and any(a <= t < b for a, b in spans):
                continue
            if clock_on:
                while next_tick <= t:
                    yield self.clock_message(next_tick)
                    last_clock, next_tick = next_tick, next_tick + tick_s
                if t - last_clock >= lead_s:
                    yield self.clock_message(t)
                    last_clock = t
            when = datetime.fromtimestamp(t, zone)
            ts = when.isoformat(timespec="milliseconds")
            event_topic, telemetry_topic, status_topic = topics[dev.index]
            if msg.status is not None:
                yield SimMessage(when, status_topic, _encode({"state": msg.status, "ts": ts}), True)
                continue
            seq[dev.index] += 1
            body: dict[str, Any] = {"ts": ts, "kind": msg.kind, "seq": seq[dev.index]}
            if msg.value is not None:
                body["value"] = msg.value
            if msg.unit is not None:
                body["unit"] = msg.unit
            if msg.attrs:
                body["attrs"] = msg.attrs
            if msg.ref is not None:
                body["ref"] = msg.ref
            topic = telemetry_topic if msg.channel == "telemetry" else event_topic
            yield SimMessage(when, topic, _encode(body), False)
        if clock_on:
            yield self.clock_message(t1)

    # --- streams ------------------------------------------------------------------------------------------------

    def _streams(self, t0: float, t1: float) -> list[Iterator[_Item]]:
        numbers = itertools.count()
        streams: list[Iterator[_Item]] = [
            _tagged(next(numbers), iter([Msg(t0, d, "device_online", status="online") for d in self.devices]))
        ]
        for res in self.residents:
            streams.append(_tagged(next(numbers), self._resident_days(res, t0, t1)))
        for dev in self.devices:
            streams.append(_tagged(next(numbers), self._heartbeats(dev, t0, t1)))
            if dev.kind.battery:
                streams.append(_tagged(next(numbers), self._battery(dev, t0, t1)))
            if dev.kind.kind == "thermometer":
                streams.append(_tagged(next(numbers), self._climate(dev, t0, t1)))
        return streams

    def _resident_days(self, res: SimResident, t0: float, t1: float) -> Iterator[Msg]:
        seed, carry = self.config.seed, list[Msg]()
        for day in care_days(t0, t1, self.zone):
            plan = self._plan.days.get((res.id, day.day.isoformat()), DayPlan())
            timeline = ordinary_day(res, day, skeleton_for(seed, res.id, day), plan, seed)
            timeline.extend(plan.timeline)
            msgs = sorted(carry + timeline.msgs, key=_time_of)
            carry = [m for m in msgs if m.t >= day.end]
            yield from (m for m in msgs if t0 <= m.t < day.end)
        yield from (m for m in carry if m.t >= t0)

    def _heartbeats(self, dev: SimDevice, t0: float, t1: float) -> Iterator[Msg]:
        period_s = dev.kind.heartbeat_s
        t, _ = periodic_phase(self.config.seed, dev, period_s, t0)
        rng = random.Random(f"{self.config.seed}:{dev.id}:heartbeat")
        while t < t1:
            yield Msg(round(t, 3), dev, "heartbeat")
            t += period_s * rng.uniform(0.95, 1.0)

    def _battery(self, dev: SimDevice, t0: float, t1: float) -> Iterator[Msg]:
        rng = random.Random(f"{self.config.seed}:{dev.id}:battery")
        drain_per_h = rng.uniform(0.02, 0.1)
        floor = 20 + drain_per_h * (t1 - t0) / HOUR
        level0 = rng.uniform(min(floor + 5, 100), 100) if floor < 95 else 100.0
        failure = self._plan.battery_failures.get(dev.id)
        t, period_s = periodic_phase(self.config.seed, dev, BATTERY_REPORT_S, t0)
        while t < t1:
            if failure is None:
                level = level0 - drain_per_h * (t - t0) / HOUR
            elif t < failure[1]:  # a failing cell: 1 %/h, below 15 % from the failure report on
                level = min(100.0, max(1.0, 14.5 + (failure[0] - t) / HOUR))
            else:  # replaced by the technician
                level = 100.0 - drain_per_h * (t - failure[1]) / HOUR
            yield Msg(round(t, 3), dev, "battery", round(level, 1), unit="%")
            t += period_s

    def _climate(self, dev: SimDevice, t0: float, t1: float) -> Iterator[Msg]:
        rng = random.Random(f"{self.config.seed}:{dev.id}:climate")
        base = rng.uniform(20.5, 22.0)
        quiet = self._plan.quiet_thermometers.get(dev.id, [])
        t, period_s = periodic_phase(self.config.seed, dev, TEMPERATURE_REPORT_S, t0)
        while t < t1:
            if not any(a <= t < b for a, b in quiet):
                daily = 0.8 * math.sin(2 * math.pi * ((t / HOUR) % 24 - 9) / 24)
                temperature = round(base + daily + rng.uniform(-0.2, 0.2), 1)
                yield Msg(round(t, 3), dev, "temperature", temperature, unit="Cel")
                yield Msg(round(t + 1, 3), dev, "humidity", round(rng.uniform(30, 50)), unit="%")
            t += period_s


def _time_of(msg: Msg) -> float:
    return msg.t


def _tagged(number: int, msgs: Iterator[Msg]) -> Iterator[_Item]:
    return ((m.t, number, n, m) for n, m in enumerate(msgs))
