"""The canary's own clock (hub/canary.py), pure: its publish and the alarm desk are lists, time is the test's."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from hub.canary import DEVICE, SITE, TELEMETRY_TOPIC, Canary
from hub.metrics import Metrics
from hub.model import AlarmDecision, Event, EventKind


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


def test_a_slow_round_trip_fails_and_its_lag_is_the_oldest_under_way(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    c, sent, decided = canary("telemetry")
    assert c.topic == TELEMETRY_TOPIC
    assert c.send()
    clock.now += 1.0
    c.check()
    assert c.lag_s() == pytest.approx(1.0)
    clock.now += 1.0
    c.check()
    clock.now += 2.5
    c.arrived(back(sent[0]))  # 4.5 s: slower than the timeout
    assert c.failing
    assert [d.key for d in decided] == ["canary_failed:telemetry:north"]
    assert c.lag_s() == 0.0


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
