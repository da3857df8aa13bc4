"""The hub's sight of its devices (hub/supervision.py): blind while the broker is away and for a grace after, one
supervision-lost alarm per site, engine timers held while the broker's backlog drains. Pure: times passed in."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.model import DecisionAction
from hub.supervision import Sight

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


def actions(sight: Sight, connected: bool, generation: int, t: float) -> list[tuple[str, str]]:
    return [(d.action.value, d.key) for d in sight.update(connected, generation, t, NOW)]


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
