"""The canary: a dead man's switch for the alarm path itself.

Every `canary_interval_s` the hub publishes a heartbeat of its own synthetic device (`vaka/v1/vaka-canary/canary/event`,
QoS 1, with a fresh random nonce) to the broker, and waits for it to come back the way every device's event comes:
the subscription, the native parser, the gate, the rule engine and the desk (it is not stored). Its round trip is recorded
(`vaka_canary_round_trip_seconds`, `vaka_canary_last_success_timestamp_seconds`). A round trip missing or slower
than `canary_timeout_s` sets `vaka_canary_failing` and raises one technical alarm per site ("canary_failed"),
cleared when a round trip succeeds again. Only a nonce the hub sent counts: a forged canary proves nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from adapters import native
from hub.ingest import Received
from hub.metrics import Metrics
from hub.model import AlarmCategory, AlarmDecision, DecisionAction, Event, Severity

logger = logging.getLogger(__name__)

SITE = "vaka-canary"
DEVICE = "canary"
TOPIC = f"vaka/v1/{SITE}/{DEVICE}/event"
RULE_ID = "canary_failed"
REASON = "the alarm path failed its self-test (canary): alarms may not arrive, go to physical rounds"
CLEAR_REASON = "the canary made the round trip again"

Publish = Callable[..., None]


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
    ) -> None:
        self._publish = publish
        self._decide = decide
        self._metrics = metrics
        self._sites = sites
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._pending: dict[str, float] = {}  # nonce -> monotonic send time
        self._seq = 0
        self.failing = False
        self._alarmed_sites: list[str] = []
        self.last_round_trip_s: float | None = None
        self._last_ok = time.monotonic()  # the first round trip is owed one interval and timeout after start

    def is_canary(self, event: Event) -> bool:
        """Whether an event is the canary's (cheap: runs for every event)."""
        return event.device_id == DEVICE and event.site == SITE

    def on_message(self, msg: Received, lane: Callable[[Event], object]) -> None:
        """A message on the canary's topic: parsed as any device's, run through the alarm lane, then recognised."""
        try:
            for event in native.parse(msg.topic, msg.payload, msg.received_at):
                lane(event)
                if self.is_canary(event):
                    self.arrived(event)
        except Exception:
            logger.exception("canary message could not be processed")
        msg.ack()

    def arrived(self, event: Event) -> None:
        """The canary came back through the whole alarm path."""
        sent = self._pending.pop(str(event.attrs.get("nonce", "")), None)
        if sent is None:
            logger.warning("canary event with an unknown nonce ignored (not sent by this hub)")
            return
        now = time.monotonic()
        round_trip = now - sent
        self.last_round_trip_s = round_trip
        self._metrics.canary_round_trip.observe(round_trip)
        for nonce in [n for n, at in self._pending.items() if at <= sent]:
            del self._pending[nonce]  # older ones are moot: the path works, or this one says it is slow
        if round_trip <= self.timeout_s:
            self._last_ok = now
            self._metrics.canary_last_success.set(time.time())
            self._set_failing(False)
        else:
            self._set_failing(True)

    def send(self) -> None:
        """Publish one canary (the broker may be away: paho keeps it until it is back)."""
        nonce = secrets.token_hex(8)
        self._seq += 1
        payload = {
            "ts": datetime.now(UTC).isoformat(),
            "kind": "heartbeat",
            "seq": self._seq,
            "attrs": {"nonce": nonce},
        }
        self._pending[nonce] = time.monotonic()
        try:
            self._publish(TOPIC, json.dumps(payload).encode(), qos=1, retain=False)
        except Exception:
            logger.exception("canary publish failed")

    def check(self) -> None:
        """No good round trip for longer than an interval and the timeout: the alarm path is failing."""
        now = time.monotonic()
        if now - self._last_ok > self.interval_s + self.timeout_s:
            self._set_failing(True)
        for nonce in [n for n, at in self._pending.items() if now - at > 10 * (self.interval_s + self.timeout_s)]:
            del self._pending[nonce]

    async def run_loop(self) -> None:
        """Send a canary every interval and check the ones under way, until cancelled."""
        next_send = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_send:
                self.send()
                next_send = now + self.interval_s
            self.check()
            await asyncio.sleep(min(1.0, self.timeout_s / 4, self.interval_s))

    def _set_failing(self, failing: bool) -> None:
        if failing == self.failing:
            return
        self.failing = failing
        self._metrics.canary_failing.set(1 if failing else 0)
        now = datetime.now(UTC)
        if failing:
            logger.warning("canary failing: no round trip within %s s; the alarm path is degraded", self.timeout_s)
            self._alarmed_sites = sorted(self._sites())
            action, reason, sites = DecisionAction.RAISE, REASON, self._alarmed_sites
        else:
            logger.info("canary round trip succeeded again (%.3f s)", self.last_round_trip_s or 0.0)
            action, reason, sites = DecisionAction.CLEAR, CLEAR_REASON, self._alarmed_sites
        for site in sites:
            decision = AlarmDecision(
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
            try:
                self._decide(decision)
            except Exception:
                logger.exception("canary alarm %s failed for site %s", action.value, site)
