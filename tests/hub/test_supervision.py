"""The hub's sight of its devices (hub/supervision/devices.py): blind while the broker is away and for a grace after, one
supervision-lost alarm per site, engine timers held while the broker's backlog drains. Pure: times passed in."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alarms.engine import Engine
from hub.model import AlarmDecision, DecisionAction, Event, EventKind
from hub.supervision.devices import Sight, SupervisedEngine
from tests.alarms.home import DEVICE_KINDS, PACK, SITE, T0, directory, ev

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def actions(sight: Sight, connected: bool, generation: int, t: float, **inputs: Any) -> list[tuple[str, str]]:
    return [(d.action.value, d.key) for d in sight.update(connected, generation, t, NOW, **inputs)]


def test_a_broker_outage_is_one_alarm_per_site_and_blindness_lasts_the_grace() -> None:
    sight = Sight.at_start(grace_s=60, alarm_after_s=30, sites=["b", "a"], now_mono=0.0, downtime_s=0.0)
    assert actions(sight, True, 1, 1.0) == []
    assert sight.blind  # just connected: the grace runs
    assert actions(sight, True, 1, 61.0) == []
    assert not sight.blind
    assert actions(sight, False, 1, 100.0) == []
    assert sight.blind  # silence is not judged from the first moment the broker is away
    assert actions(sight, False, 1, 129.0) == []
    raised = actions(sight, False, 1, 130.0)
    assert raised == [("raise", "supervision_lost:a"), ("raise", "supervision_lost:b")]
    assert actions(sight, False, 1, 200.0) == []  # once
    assert actions(sight, True, 2, 220.0) == []  # back, but the backlog and the grace first
    assert sight.blind
    assert actions(sight, True, 2, 280.0) == [("clear", "supervision_lost:a"), ("clear", "supervision_lost:b")]
    assert not sight.blind


def test_a_short_blip_raises_nothing() -> None:
    sight = Sight.at_start(grace_s=5, alarm_after_s=30, sites=["a"], now_mono=0.0, downtime_s=0.0)
    actions(sight, True, 1, 0.0)
    assert actions(sight, False, 1, 10.0) == []
    assert actions(sight, True, 2, 12.0) == []
    assert actions(sight, True, 2, 60.0) == []
    assert not sight.blind


def test_a_hub_that_was_down_long_says_so_at_once() -> None:
    """The hub itself down for 10 minutes missed supervision windows: the same alarm, cleared when it sees again."""
    sight = Sight.at_start(grace_s=20, alarm_after_s=30, sites=["a"], now_mono=1000.0, downtime_s=600.0)
    assert actions(sight, False, 0, 1000.0) == [("raise", "supervision_lost:a")]
    assert actions(sight, True, 1, 1002.0) == []
    assert actions(sight, True, 1, 1022.0) == [("clear", "supervision_lost:a")]


def test_timers_wait_for_the_backlog_after_start_and_after_a_reconnect() -> None:
    sight = Sight.at_start(grace_s=60, alarm_after_s=30, sites=["a"], now_mono=0.0, downtime_s=0.0)
    assert sight.timers_held(1.0)  # not yet connected: what the broker queued for us has not arrived
    sight.update(True, 1, 2.0, NOW)
    sight.message(2.3)
    assert sight.timers_held(2.5)
    assert not sight.timers_held(2.9)  # quiet for half a second: drained
    sight.update(False, 1, 10.0, NOW)
    assert not sight.timers_held(11.0)  # lost while running: care timers go on
    sight.update(True, 2, 12.0, NOW)
    for t in range(13, 25):
        sight.message(float(t))
    assert not sight.timers_held(24.0)  # a backlog that never ends holds timers at most hold_max_s


def test_supervision_lost_is_a_technical_alarm_that_may_close_itself() -> None:
    sight = Sight.at_start(grace_s=1, alarm_after_s=1, sites=["a"], now_mono=0.0, downtime_s=5.0)
    [raised] = sight.update(False, 0, 0.0, NOW)
    assert raised.category.value == "technical"
    sight.update(True, 1, 1.0, NOW)
    [cleared] = sight.update(True, 1, 2.5, NOW)
    assert cleared.action is DecisionAction.CLEAR
    assert cleared.auto_close


# --- the hub's own gaps (issue 22.4) -----------------------------------------------------------------------------------


def test_a_stall_longer_than_the_gap_blinds_the_hub_and_one_that_long_is_supervision_lost() -> None:
    sight = Sight.at_start(grace_s=5, alarm_after_s=30, sites=["a"], now_mono=0.0, downtime_s=0.0, gap_s=5)
    sight.update(True, 1, 0.0, NOW)
    sight.update(True, 1, 6.0, NOW)
    assert not sight.blind
    sight.stalled(20.0, 70.0)  # SIGSTOP 50 s
    assert sight.blind
    assert actions(sight, True, 1, 70.0) == [("raise", "supervision_lost:a")]
    assert actions(sight, True, 1, 74.0) == []
    assert sight.blind  # the grace after the gap
    assert actions(sight, True, 1, 75.0) == [("clear", "supervision_lost:a")]
    assert not sight.blind


def test_a_connection_that_stops_reading_longer_than_the_gap_blinds_the_hub() -> None:
    """The telemetry connection at its limit of unacknowledged messages: heartbeats wait in the broker."""
    sight = Sight.at_start(grace_s=5, alarm_after_s=30, sites=["a"], now_mono=0.0, downtime_s=0.0, gap_s=5)
    sight.update(True, 1, 0.0, NOW)
    sight.update(True, 1, 6.0, NOW)
    sight.update(True, 1, 10.0, NOW, reading=False)
    sight.update(True, 1, 12.0, NOW, reading=True)
    assert not sight.blind  # a short pause under a burst
    sight.update(True, 1, 20.0, NOW, reading=False)
    assert not sight.blind
    sight.update(True, 1, 25.5, NOW, reading=False)
    assert sight.blind
    assert actions(sight, True, 1, 49.0, reading=False) == []
    assert actions(sight, True, 1, 50.0, reading=False) == [("raise", "supervision_lost:a")]
    sight.update(True, 1, 51.0, NOW)
    assert actions(sight, True, 1, 56.0) == [("clear", "supervision_lost:a")]


def test_receive_lag_beyond_the_gap_while_the_broker_is_fine_blinds_the_hub() -> None:
    """The store behind on a loaded machine: every heartbeat acknowledged on time, read 50 s late."""
    sight = Sight.at_start(grace_s=5, alarm_after_s=30, sites=["a"], now_mono=0.0, downtime_s=0.0, gap_s=5)
    sight.update(True, 1, 0.0, NOW)
    sight.update(True, 1, 6.0, NOW, lag_s=2.0)
    assert not sight.blind
    sight.update(True, 1, 16.0, NOW, lag_s=6.0)
    assert sight.blind
    assert actions(sight, True, 1, 39.0, lag_s=29.0) == []
    assert actions(sight, True, 1, 40.0, lag_s=30.0) == [("raise", "supervision_lost:a")]
    assert actions(sight, True, 1, 41.0, lag_s=0.0) == []
    assert actions(sight, True, 1, 46.0, lag_s=0.0) == [("clear", "supervision_lost:a")]


class Link:
    """A broker connection that stays up (the broker is fine: the gap is the hub's)."""

    connected = True
    generation = 1
    reading = True


HEARTBEAT_S = 10
DEAD = "smoke"


class FrozenHub:
    """A SupervisedEngine over the real rule engine, on a monotonic clock the test moves (as SIGSTOP would)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.mono = 1000.0
        monkeypatch.setattr(time, "monotonic", lambda: self.mono)
        self.engine = Engine(PACK, directory(supervision_s=30))
        sight = Sight.at_start(grace_s=5, alarm_after_s=30, sites=[SITE], now_mono=self.mono, downtime_s=0.0)
        self.lane = SupervisedEngine(self.engine, sight, lambda: [Link()])
        self.t = 0.0
        self.out: list[AlarmDecision] = []

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def heartbeats(self, at_s: float) -> list[Event]:
        return [ev(T0 + timedelta(seconds=at_s), d, EventKind.HEARTBEAT) for d in DEVICE_KINDS if d != DEAD]

    def run(self, until_s: float) -> None:
        """The hub running: a tick every 0.25 s, every living device heartbeating every HEARTBEAT_S."""
        while self.t < until_s:
            self.t += 0.25
            self.mono += 0.25
            if self.t % HEARTBEAT_S == 0:
                for event in self.heartbeats(self.t):
                    self.out += self.lane.feed(event, self.now())
            self.out += self.lane.tick(self.now())

    def freeze(self, seconds: float) -> None:
        self.t += seconds
        self.mono += seconds

    def raised(self, rule: str) -> list[str]:
        return [d.device_id or d.key for d in self.out if d.rule_id == rule and d.action is DecisionAction.RAISE]


@pytest.mark.parametrize("first", ["tick", "newest heartbeat"])
def test_a_hub_stopped_50_s_judges_no_device_silent_whatever_it_does_first(
    monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """SIGSTOP 50 s, SIGCONT, with the devices' supervision interval 30 s: on main, the first tick after the stop (or
    the first heartbeat read, when it is a newer one from the other connection) fired every device's silence timer
    before the heartbeats queued in the socket and the broker were read: a device_silent per device."""
    hub = FrozenHub(monkeypatch)
    hub.run(60)
    assert hub.raised("device_silent") == [DEAD]  # supervision works: the dead device, once
    hub.freeze(50)
    if first == "tick":
        hub.out += hub.lane.tick(hub.now())
    else:  # a telemetry heartbeat sent just before SIGCONT, read before the event connection's older ones
        for event in hub.heartbeats(109):
            hub.out += hub.lane.feed(event, hub.now())
    for at_s in range(70, 110, HEARTBEAT_S):  # what waited in the socket and the broker
        for event in hub.heartbeats(at_s):
            hub.out += hub.lane.feed(event, hub.now())
    hub.run(160)
    assert hub.raised("device_silent") == [DEAD]
    assert hub.raised("supervision_lost") == [f"supervision_lost:{SITE}"]
    assert not hub.lane.sight.blind
