"""The canary: a dead man's switch for the alarm path itself, one per path into the hub.

Every `canary_interval_s` the hub publishes a heartbeat of its own synthetic device (QoS 1, with a fresh random nonce)
to the broker, and waits for it to come back the way every device's message comes:
- path "events" (`vaka/v1/vaka-canary/canary/event`): the events connection, the native parser, the gate, the rule
  engine and the desk; it is not stored, and the round trip ends there;
- path "telemetry" (`vaka/v1/vaka-canary/canary/telemetry`, issue 22.6): the telemetry connection's read, the
  parser, the alarm lane and the store; the round trip ends when the row is durable and the message acknowledged, so a
  telemetry connection that stopped reading or acknowledging, or a store that takes nothing, turns it red.
Its round trip is recorded (`vaka_canary_round_trip_seconds{path}`, `vaka_canary_last_success_timestamp_seconds{path}`).
A round trip missing or slower than `canary_timeout_s` sets `vaka_canary_failing{path}` and raises one technical alarm
per site ("canary_failed"; the telemetry path's key is `canary_failed:telemetry:{site}`), cleared when a round trip
succeeds again. Only a nonce the hub sent counts: a forged canary proves nothing. While the connections a path needs
are down nothing is sent (the outage is its own alarm; a probe queued meanwhile would measure the outage, not the
path). The oldest round trip under way is the hub's measured receive lag (`lag_s`, hub/supervision/devices.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from adapters import native
from hub.intake.ingest import Received
from hub.metrics import Metrics
from hub.model import (
    CANARY_DEVICE,
    CANARY_SITE,
    CANARY_TELEMETRY_TOPIC,
    CANARY_TOPIC,
    AlarmDecision,
    DecisionAction,
    Event,
    hub_alarm,
)

logger = logging.getLogger(__name__)

SITE = CANARY_SITE
DEVICE = CANARY_DEVICE
TOPIC = CANARY_TOPIC
TELEMETRY_TOPIC = CANARY_TELEMETRY_TOPIC
RULE_ID = "canary_failed"
REASON = "the alarm path failed its self-test (canary): alarms may not arrive, go to physical rounds"
TELEMETRY_REASON = (
    "the telemetry path failed its self-test (canary): heartbeats and readings are not read or stored,"
    " device supervision is blind"
)
CLEAR_REASON = "the canary made the round trip again"

Publish = Callable[..., None]
_STALL_S = 2.0  # the run loop wakes at least every second: a longer gap is the hub's own
Store = Callable[[Sequence[Event], Sequence[Any], Callable[[], None]], None]


class Canary:
    """Sends the canary, recognises it on the way back, and says when the alarm path is failing."""

    def __init__(
        self,
        publish: Publish,
        decide: Callable[[AlarmDecision], object],
        metrics: Metrics,
        sites: Callable[[], Iterable[str]],
        *,
        interval_s: float,
        timeout_s: float,
        path: str = "events",
        can_send: Callable[[], bool] | None = None,
    ) -> None:
        self._publish = publish
        self._decide = decide
        self._sites = sites
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.path = path
        self.topic = TOPIC if path == "events" else TELEMETRY_TOPIC
        self._can_send = can_send
        self._round_trip = metrics.canary_round_trip.labels(path)
        self._last_success = metrics.canary_last_success.labels(path)
        self._failing_gauge = metrics.canary_failing.labels(path)
        self._failing_gauge.set(0)
        self._pending: dict[str, float] = {}  # nonce -> monotonic send time
        self._unread: dict[str, float] = {}  # the same, until the hub has read it (the round trip may go on: the store)
        self._read_once = False  # this path has delivered a canary since start: its lag can be trusted
        self._seq = 0
        self.failing = False
        self._alarmed_sites: list[str] = []
        self.last_round_trip_s: float | None = None
        self._last_ok = time.monotonic()  # the first round trip is owed one interval and timeout after start
        self._alive_at = self._last_ok  # when this canary last ran (its loop wakes at least every second)

    def is_canary(self, event: Event) -> bool:
        """Whether an event is the canary's (cheap: runs for every event)."""
        return event.device_id == DEVICE and event.site == SITE

    def on_message(self, msg: Received, lane: Callable[[Event], object], store: Store | None = None) -> None:
        """A message on the canary's topic: parsed as any device's, run through the alarm lane, then recognised;
        with `store` (the telemetry path) only once its row is durable and the message acknowledged."""
        try:
            events = native.parse(msg.topic, msg.payload, msg.received_at)
            for event in events:
                lane(event)
        except Exception:
            logger.exception("canary message could not be processed")
            msg.ack()
            return
        mine = [event for event in events if self.is_canary(event)]
        for event in mine:
            self._read(event)

        def done() -> None:
            msg.ack()
            for event in mine:
                self.arrived(event)

        if store is None:
            done()
        else:
            store(events, (), done)

    def lag_s(self) -> float:
        """How long the oldest canary not yet read has been under way: how far behind the hub's reading of this path
        is at least. Zero until the path has delivered one canary since start: a path that never worked (a broker
        ACL without the canary's topic) is the canary's alarm, not evidence that the hub is behind."""
        if not self._unread or not self._read_once:
            return 0.0
        return time.monotonic() - min(self._unread.values())

    def _read(self, event: Event) -> None:
        self._alive(time.monotonic())
        sent = self._unread.pop(str(event.attrs.get("nonce", "")), None)
        if sent is None:
            return
        self._read_once = True
        for nonce in [n for n, at in self._unread.items() if at <= sent]:
            del self._unread[nonce]  # lost on the way (a broker that lost its queue): the path reads again

    def arrived(self, event: Event) -> None:
        """The canary came back through the whole alarm path."""
        self._alive(time.monotonic())
        sent = self._pending.pop(str(event.attrs.get("nonce", "")), None)
        if sent is None:
            logger.warning("canary event with an unknown nonce ignored (not sent by this hub)")
            return
        now = time.monotonic()
        round_trip = now - sent
        self.last_round_trip_s = round_trip
        self._round_trip.observe(round_trip)
        for nonce in [n for n, at in self._pending.items() if at <= sent]:
            del self._pending[nonce]  # older ones are moot: the path works, or this one says it is slow
        if round_trip <= self.timeout_s:
            self._last_ok = now
            self._last_success.set(time.time())
            self._set_failing(False)
        else:
            self._set_failing(True)

    def send(self) -> bool:
        """Publish one canary, unless the connections its path needs are down (then False)."""
        if self._can_send is not None and not self._can_send():
            return False
        self._alive(time.monotonic())
        nonce = secrets.token_hex(8)
        self._seq += 1
        payload = {
            "ts": datetime.now(UTC).isoformat(),
            "kind": "heartbeat",
            "seq": self._seq,
            "attrs": {"nonce": nonce},
        }
        self._pending[nonce] = self._unread[nonce] = time.monotonic()
        try:
            self._publish(self.topic, json.dumps(payload).encode(), qos=1, retain=False)
        except Exception:
            logger.exception("canary publish failed")
        return True

    def check(self) -> None:
        """No good round trip for longer than an interval and the timeout: the alarm path is failing."""
        now = time.monotonic()
        self._alive(now)
        if now - self._last_ok > self.interval_s + self.timeout_s:
            self._set_failing(True)
        for under_way in (self._pending, self._unread):
            for nonce in [n for n, at in under_way.items() if now - at > 10 * (self.interval_s + self.timeout_s)]:
                del under_way[nonce]

    async def run_loop(self) -> None:
        """Send a canary every interval and check the ones under way, until cancelled."""
        next_send = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_send and self.send():
                next_send = now + self.interval_s
            self.check()
            await asyncio.sleep(min(1.0, self.timeout_s / 4, self.interval_s))

    def _alive(self, now: float) -> None:
        """Time the hub itself stood still (a stall, SIGSTOP) is not held against the path: that gap is the hub's
        sight's to report (supervision_lost, hub/supervision/devices.py), not a failing canary that clears a moment later."""
        gap = now - self._alive_at
        self._alive_at = now
        if gap > max(self.timeout_s, _STALL_S):
            self._last_ok += gap
            for under_way in (self._pending, self._unread):
                for nonce in under_way:
                    under_way[nonce] += gap

    def _set_failing(self, failing: bool) -> None:
        if failing == self.failing:
            return
        self.failing = failing
        self._failing_gauge.set(1 if failing else 0)
        now = datetime.now(UTC)
        if failing:
            logger.warning(
                "canary failing path=%s: no round trip within %s s; the alarm path is degraded",
                self.path,
                self.timeout_s,
            )
            self._alarmed_sites = sorted(self._sites())
            action, sites = DecisionAction.RAISE, self._alarmed_sites
            reason = REASON if self.path == "events" else TELEMETRY_REASON
        else:
            logger.info("canary round trip succeeded again path=%s (%.3f s)", self.path, self.last_round_trip_s or 0.0)
            action, reason, sites = DecisionAction.CLEAR, CLEAR_REASON, self._alarmed_sites
        for site in sites:
            key = f"{RULE_ID}:{site}" if self.path == "events" else f"{RULE_ID}:{self.path}:{site}"
            decision = hub_alarm(action, RULE_ID, site, now, reason, key=key)
            try:
                self._decide(decision)
            except Exception:
                logger.exception("canary alarm %s failed for site %s", action.value, site)
