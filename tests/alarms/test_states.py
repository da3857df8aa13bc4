"""State-style devices (Zigbee2MQTT with its default `cache_state`) repeat their whole state in every message: a
repeat of the same state is no new event, a change is, and a change back ends the condition.

Real payload shapes (tests/adapters/fixtures/zigbee2mqtt) through the adapter into the engine with the default pack.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import msgspec

from adapters import zigbee2mqtt
from alarms.engine import Engine
from hub.model import AlarmDecision, DecisionAction, EventKind
from tests.adapters.support import fixture
from tests.alarms.home import PACK, SITE, directory, ev, fresh, local


def report(engine: Engine, device: str, name: str, at: datetime) -> list[tuple[str, str, bool]]:
    """One Zigbee2MQTT state message from `device` of the test home: (action, rule, repeat) of what it decided."""
    out: list[AlarmDecision] = []
    for event in zigbee2mqtt.parse(f"zigbee2mqtt/{device}", fixture("zigbee2mqtt", name), at):
        out += engine.feed(replace(event, site=SITE), at)
    return [(d.action.value, d.rule_id, d.repeat) for d in out if d.rule_id != "device_silent"]


def test_a_leak_reported_again_with_every_battery_report_is_one_alarm_and_dry_ends_it() -> None:
    t = local("2026-11-26 03:00")
    engine = fresh(t - timedelta(hours=1))
    assert report(engine, "water", "water_leak.json", t) == [("raise", "water_leak", False)]
    for minutes in (10, 20, 30):  # the same wet state, repeated by cache_state: nothing new
        assert report(engine, "water", "water_leak.json", t + timedelta(minutes=minutes)) == []
    assert report(engine, "water", "water_dry.json", t + timedelta(minutes=40)) == [("clear", "water_leak", False)]
    assert report(engine, "water", "water_dry.json", t + timedelta(minutes=50)) == []
    # wet again after it was dry: a new leak on the alarm staff still hold, so it rings again
    assert report(engine, "water", "water_leak.json", t + timedelta(minutes=60)) == [("update", "water_leak", True)]


def test_a_leak_still_wet_after_staff_resolved_it_raises_nothing_new() -> None:
    t = local("2026-11-26 03:00")
    engine = fresh(t - timedelta(hours=1))
    report(engine, "water", "water_leak.json", t)
    engine.alarm_closed("water_leak:r1", t + timedelta(minutes=5))
    assert report(engine, "water", "water_leak.json", t + timedelta(minutes=10)) == []
    report(engine, "water", "water_dry.json", t + timedelta(minutes=20))
    assert report(engine, "water", "water_leak.json", t + timedelta(minutes=30)) == [("raise", "water_leak", False)]


def test_a_door_left_open_at_night_repeated_in_every_message_rings_once_and_closing_ends_it() -> None:
    t = local("2026-11-26 02:00")
    engine = fresh(t - timedelta(hours=1))
    assert report(engine, "door", "door_open.json", t) == [("raise", "entrance_door_night", False)]
    assert report(engine, "door", "door_open.json", t + timedelta(minutes=1)) == []
    closed = report(engine, "door", "door_closed.json", t + timedelta(minutes=2))
    assert closed == [("clear", "entrance_door_night", False)]


def test_smoke_gone_ends_the_smoke_condition() -> None:
    t = local("2026-11-26 03:00")
    engine = fresh(t - timedelta(hours=1))
    assert report(engine, "smoke", "smoke.json", t) == [("raise", "smoke", False)]
    assert report(engine, "smoke", "smoke.json", t + timedelta(minutes=1)) == []
    assert report(engine, "smoke", "smoke_cleared.json", t + timedelta(minutes=2)) == [("clear", "smoke", False)]


def test_a_repeated_state_is_still_a_sign_of_life() -> None:
    t = local("2026-11-26 03:00")
    engine = fresh(t, directory(supervision_s=3600))
    report(engine, "water", "water_dry.json", t)
    for hours in range(1, 6):  # the same dry state every 50 minutes: the sensor is alive
        at = t + timedelta(minutes=50 * hours)
        for event in zigbee2mqtt.parse("zigbee2mqtt/water", fixture("zigbee2mqtt", "water_dry.json"), at):
            engine.feed(replace(event, site=SITE), at)
    silent = [d for d in engine.tick(t + timedelta(hours=5)) if d.rule_id == "device_silent" and d.device_id == "water"]
    assert silent == []


def test_the_last_state_survives_a_restart() -> None:
    t = local("2026-11-26 03:00")
    engine = fresh(t - timedelta(hours=1))
    report(engine, "water", "water_leak.json", t)
    stored = msgspec.json.decode(msgspec.json.encode(engine.snapshot()))
    restored = Engine.restore(PACK, directory(), stored)
    assert report(restored, "water", "water_leak.json", t + timedelta(minutes=10)) == []


def test_a_second_press_is_a_new_press_whatever_its_attributes_say() -> None:
    t = local("2026-11-26 03:00")
    engine = fresh(t - timedelta(hours=1))
    press = {"property": "action"}  # only two-valued states are told apart; a press never is
    first = engine.feed(ev(t, "button", EventKind.ALARM_BUTTON, attrs=press), t)
    again = engine.feed(ev(t + timedelta(minutes=1), "button", EventKind.ALARM_BUTTON, attrs=press), t)
    assert [(d.action, d.repeat) for d in first + again] == [
        (DecisionAction.RAISE, False),
        (DecisionAction.UPDATE, True),
    ]
