"""The canary's own clock (hub/supervision/canary.py), pure: its publish and the alarm desk are lists, time is the test's."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from hub.metrics import Metrics
from hub.model import AlarmDecision, Event, EventKind
from hub.supervision.canary import DEVICE, SITE, TELEMETRY_TOPIC, Canary


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 100.0
        monkeypatch.setattr(time, "monotonic", lambda: self.now)


def canary(path: str = "events") -> tuple[Canary, list[bytes], list[AlarmDecision]]:
    sent: list[bytes] = []
    decided: list[AlarmDecision] = []
    c = Canary(
        lambda topic, payload, **_: sent.append(payload),
        decided.append,
        Metrics(),
        lambda: ["north"],
        interval_s=10,
        timeout_s=3,
        path=path,
    )
    return c, sent, decided


def back(payload: bytes) -> Event:
    body = json.loads(payload)
    return Event(
        ts=datetime.now(UTC),
        site=SITE,
        device_id=DEVICE,
        kind=EventKind.HEARTBEAT,
        seq=body["seq"],
        attrs=body["attrs"],
    )


class Message:
    """A received canary: acknowledged once the store says it is durable."""

    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic, self.payload, self.received_at = topic, payload, datetime.now(UTC)
        self.acked = False

    def ack(self) -> None:
        self.acked = True


def test_the_telemetry_round_trip_ends_at_the_ack_and_its_lag_is_the_oldest_not_yet_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    c, sent, decided = canary("telemetry")
    assert c.topic == TELEMETRY_TOPIC
    stored: list[Callable[[], None]] = []
    c.send()
    clock.now += 2.0
    assert c.lag_s() == 0.0  # the path has not delivered one yet: no evidence that the hub is behind
    c.on_message(Message(TELEMETRY_TOPIC, sent[0]), lambda event: None, lambda ev, rej, done: stored.append(done))
    assert c.lag_s() == 0.0  # read
    clock.now += 2.0
    c.check()
    [durable] = stored
    durable()  # 4 s after it was sent: slower than the timeout
    assert c.failing
    assert [d.key for d in decided] == ["canary_failed:telemetry:north"]
    c.send()
    for _ in range(7):  # its loop checks every second
        clock.now += 1.0
        c.check()
    assert c.lag_s() == pytest.approx(7.0)  # not read for 7 s: the hub's reading of telemetry is behind


def test_a_stall_of_the_hub_itself_is_not_held_against_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGSTOP 50 s: the gap is the hub's sight's to report (supervision_lost), not a canary raised and cleared."""
    clock = Clock(monkeypatch)
    c, sent, decided = canary()
    c.send()
    clock.now += 0.5
    c.check()
    clock.now += 50.0  # frozen
    c.arrived(back(sent[0]))  # read first after SIGCONT: 0.5 s of path, 50 s of the hub standing still
    c.check()
    assert not c.failing
    assert decided == []
