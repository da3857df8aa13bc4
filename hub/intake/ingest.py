"""Topic → adapter → Events → the alarm lane first (in memory), then the store lane (batched, acked when durable).

A bad payload never raises out of here: it becomes a Rejection (stored in `rejected_messages`, counted) and is acked
once that record is durable, so the broker does not re-deliver it forever.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from adapters import native
from hub.intake.adapter_registry import load_adapter
from hub.metrics import Metrics
from hub.model import (
    TOPIC_ROOT,
    Device,
    Event,
    PayloadError,
)
from hub.runtime.redact import for_log
from hub.settings import AdapterRoute
from hub.store.writer import Rejection

logger = logging.getLogger(__name__)

REJECTED_PAYLOAD_BYTES = 4096
_NATIVE_PREFIX = TOPIC_ROOT + "/"


class Received(Protocol):
    """What ingest needs of a received MQTT message (hub.intake.mqtt.Message)."""

    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def received_at(self) -> datetime: ...
    def ack(self) -> None: ...


class EventSink(Protocol):
    """The store lane (hub.store.writer.Writer)."""

    def submit(
        self, events: Sequence[Event], rejections: Sequence[Rejection], on_durable: Callable[[], None] | None = None
    ) -> None: ...


AlarmLane = Callable[[Event], object]


class Ingest:
    """Turns received messages into Events, feeds the alarm lane, then hands them to the store lane."""

    def __init__(
        self,
        metrics: Metrics,
        sink: EventSink,
        *,
        alarm_lane: AlarmLane,
        routes: Sequence[AdapterRoute] = (),
        now: Callable[[], datetime] | None = None,
        max_future_skew_s: float | None = None,
    ) -> None:
        self._metrics = metrics
        # the time an event's own timestamp is checked against: the receive time, or a simulation's clock
        self._now = now
        self._max_future_skew = None if max_future_skew_s is None else timedelta(seconds=max_future_skew_s)
        self._sink = sink
        self._alarm_lane = alarm_lane
        self._routes = [(route, topic_matcher(route.topic_filter), load_adapter(route.adapter)) for route in routes]
        self._devices: Mapping[str, Device] = {}
        self._rejected = metrics.messages_rejected
        self._unregistered = metrics.events_unregistered
        self._ingested = {lane: metrics.events_ingested.labels(lane) for lane in ("event", "telemetry")}
        self._received = {lane: metrics.messages_received.labels(lane) for lane in ("event", "telemetry")}

    def set_devices(self, devices: Mapping[str, Device]) -> None:
        """Replace the inventory used to attach residents to events (devices by id)."""
        self._devices = devices

    def handle(self, msg: Received) -> None:
        """Process one message: never raises; acks it once its events (or its rejection) are durable."""
        self._received["telemetry" if msg.topic.endswith("/telemetry") else "event"].inc()
        try:
            received_at = msg.received_at if self._now is None else self._now()
            events = self._parse(msg.topic, msg.payload, received_at)
        except PayloadError as exc:
            self.reject(msg, exc.reason, exc.detail)
            return
        except Exception as exc:  # an adapter bug must not stop ingest
            self.reject(msg, "adapter_error", type(exc).__name__)
            return
        if self._max_future_skew is not None and events:
            latest = received_at + self._max_future_skew
            if any(ev.ts > latest for ev in events):
                # a device clock far ahead would fire timers early and hide its later events behind its mark
                self.reject(msg, "future_timestamp", f"more than {self._max_future_skew.total_seconds():g} s ahead")
                return
        if getattr(msg, "retain", False):
            # the broker replaying what a device said once, at our subscribe (a dead device's stale "online"): it
            # was stored when it was news; now it is neither a sign of life nor an alarm, and not a new event
            self._metrics.events_gated.labels("retained").inc(len(events))
            msg.ack()
            return
        self.accept(events, msg.ack, telemetry=msg.topic.endswith("/telemetry"))

    def accept(self, events: Sequence[Event], on_durable: Callable[[], None], *, telemetry: bool = False) -> None:
        """Events parsed elsewhere (the SCAIP receiver): alarm lane first, then the store; `on_durable` once stored."""
        events = [self._attach_resident(ev) for ev in events]
        for ev in events:
            self._run_alarm_lane(ev)
        self._ingested["telemetry" if telemetry else "event"].inc(len(events))
        self._sink.submit(events, (), on_durable)

    def _parse(self, topic: str, payload: bytes, received_at: datetime) -> list[Event]:
        if topic.startswith(_NATIVE_PREFIX):
            return native.parse(topic, payload, received_at)
        for route, matches, adapter in self._routes:
            if matches(topic):
                events: list[Event] = adapter.parse(topic, payload, received_at)
                return [ev if ev.site else _with_site(ev, route.site) for ev in events]
        raise PayloadError("no_adapter", topic[:128])

    def _attach_resident(self, ev: Event) -> Event:
        device = self._devices.get(ev.device_id)
        if device is None:
            self._unregistered.inc()
            return ev
        if device.resident is None:
            return ev
        return dataclasses.replace(ev, resident_id=device.resident)

    def _run_alarm_lane(self, ev: Event) -> None:
        try:
            self._alarm_lane(ev)  # isolates each item itself (hub.desk.lane); this guards a lane of tests' making
        except Exception:
            logger.exception("alarm lane failed on a %s event from %s", ev.kind, ev.device_id)

    def reject(self, msg: Received, reason: str, detail: str) -> None:
        """Keep a message that cannot become events, with its reason; `msg.ack()` once that record is durable."""
        self._rejected.labels(reason).inc()
        # neither payload nor detail (adapters quote values): a vendor's stray field may carry a name or a
        # personnummer; both stay in the rejected_messages dead letter for operators (hub.runtime.redact)
        logger.info("rejected message topic=%s reason=%s bytes=%s", for_log(msg.topic, 128), reason, len(msg.payload))
        rejection = Rejection(
            received_at=msg.received_at,
            topic=_printable(msg.topic[:512]),
            payload=bytes(msg.payload[:REJECTED_PAYLOAD_BYTES]),
            reason=_printable(reason if not detail else f"{reason}: {detail}"[:500]),
        )
        self._sink.submit((), (rejection,), msg.ack)


def topic_matcher(topic_filter: str) -> Callable[[str], bool]:
    """A fast test of topics against one MQTT filter (`+` one level, `#` the rest); paho's builds a tree per call."""
    levels = topic_filter.split("/")
    if levels[-1] == "#":
        prefix = levels[:-1]
        fixed = [(i, level) for i, level in enumerate(prefix) if level != "+"]

        def matches_rest(topic: str) -> bool:
            parts = topic.split("/")
            return (
                len(parts) >= len(prefix)
                and all(parts[i] == level for i, level in fixed)
                and not (topic.startswith("$") and topic_filter[:1] in ("#", "+"))
            )

        return matches_rest
    fixed_levels = [(i, level) for i, level in enumerate(levels) if level != "+"]
    wildcard_first = levels[0] == "+"

    def matches(topic: str) -> bool:
        parts = topic.split("/")
        return (
            len(parts) == len(levels)
            and all(parts[i] == level for i, level in fixed_levels)
            and not (wildcard_first and topic.startswith("$"))
        )

    return matches


def _with_site(ev: Event, site: str) -> Event:
    """`ev` on the route's site (dataclasses.replace costs several times as much on the hot path)."""
    return Event(
        ev.ts, site, ev.device_id, ev.kind, ev.value, ev.unit, ev.attrs, ev.seq, ev.ref, ev.resident_id, ev.topic
    )


def _printable(text: str) -> str:
    """PostgreSQL text cannot hold NUL; a topic or detail carrying one is still kept, with the NUL replaced."""
    return text.replace("\x00", "\ufffd")
