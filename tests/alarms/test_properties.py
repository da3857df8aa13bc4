"""Batching, tick interleaving and restarts never change which alarms are raised, nor when."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alarms.engine import Engine
from hub.model import AlarmDecision, Event, EventKind
from tests.alarms.home import PACK, directory, ev, fresh, local, run

START = local("2026-10-24 20:00")  # the autumn DST night
END = START + timedelta(hours=16)

MOVES: list[tuple[str, EventKind, float | None]] = [
    ("bed", EventKind.BED_EXIT, None),
    ("bed", EventKind.BED_ENTRY, None),
    ("door", EventKind.DOOR_OPEN, None),
    ("door", EventKind.DOOR_CLOSED, None),
    ("bath", EventKind.PRESENCE, 1),
    ("bath", EventKind.PRESENCE, 0),
    ("hall", EventKind.MOTION, None),
    ("thermo", EventKind.TEMPERATURE, 15.0),
    ("thermo", EventKind.TEMPERATURE, 16.5),
    ("thermo", EventKind.TEMPERATURE, 18.0),
    ("radar", EventKind.FALL_DETECTED, None),
    ("radar", EventKind.FALL_CANCELLED, None),
    ("radar", EventKind.BATTERY, 10),
    ("radar", EventKind.BATTERY, 30),
    ("cam", EventKind.DEVICE_OFFLINE, None),
    ("cam", EventKind.DEVICE_ONLINE, None),
    ("x9", EventKind.SMOKE, None),
]

nights = st.lists(st.tuples(st.integers(0, 16 * 3600), st.sampled_from(MOVES)), min_size=1, max_size=40).map(
    lambda items: [
        ev(START + timedelta(seconds=s), dev, kind, value, ref="f1" if dev == "radar" else None)
        for s, (dev, kind, value) in sorted(items, key=lambda item: item[0])
    ]
)


def as_stored(engine: Engine) -> dict[str, Any]:
    """The engine's snapshot as the hub stores it (msgspec JSON) and reads it back."""
    return msgspec.json.decode(msgspec.json.encode(engine.snapshot()))  # type: ignore[no-any-return]


def summary(decisions: list[AlarmDecision]) -> list[tuple[Any, ...]]:
    """What the desk would act on."""
    return [(d.action.value, d.key, d.at, d.reason, d.count) for d in decisions]


def one_by_one(events: list[Event]) -> list[AlarmDecision]:
    """The reference: each event fed at its own time, ticks at every deadline, then to the end."""
    engine = fresh(START, directory(supervision_s=3 * 3600), PACK)
    out: list[AlarmDecision] = []
    for event in events:
        while (deadline := engine.next_deadline()) is not None and deadline <= event.ts:
            out += engine.tick(deadline)
        out += engine.feed(event, event.ts)
    return out + engine.tick(END)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=nights, data=st.data())
def test_batching_ticks_and_restarts_give_the_same_alarms(events: list[Event], data: st.DataObject) -> None:
    """Any batching, any tick times (never later than the next event) and snapshot→restore anywhere: same output."""
    expected = summary(one_by_one(events))
    engine = fresh(START, directory(supervision_s=3 * 3600), PACK)
    out: list[AlarmDecision] = []
    clock = START
    for event in events:
        action = data.draw(st.sampled_from(["feed", "tick", "restart"]))
        if action == "tick":
            gap = (event.ts - clock).total_seconds()
            clock = clock + timedelta(seconds=data.draw(st.floats(0, max(gap, 0))))
            out += engine.tick(clock)
        elif action == "restart":
            snapshot = as_stored(engine)
            engine = Engine.restore(PACK, directory(supervision_s=3 * 3600), snapshot)
        out += engine.feed(event, event.ts + timedelta(seconds=data.draw(st.integers(0, 5))))
        clock = max(clock, event.ts)
    out += engine.tick(END)
    assert summary(out) == expected


def test_restart_mid_window_fires_on_time() -> None:
    """Snapshot 10 min after a bed exit, restore in a new engine: the alarm comes exactly at 20 min."""
    start = local("2026-11-26 22:00")
    engine = fresh(start, directory(), PACK)
    bed_exit = local("2026-11-26 23:00")
    run(engine, [ev(bed_exit, "bed", EventKind.BED_EXIT), ev(bed_exit, "bath", EventKind.PRESENCE, 1)])
    snapshot = as_stored(engine)
    del engine
    restored = Engine.restore(PACK, directory(), snapshot)
    assert restored.next_deadline() == bed_exit + timedelta(minutes=20)
    assert restored.tick(bed_exit + timedelta(minutes=19, seconds=59)) == []
    fired = restored.tick(bed_exit + timedelta(minutes=50))
    assert [(d.key, d.at) for d in fired] == [
        ("bed_exit_no_return:r1", bed_exit + timedelta(minutes=20)),
        ("long_bathroom_visit:r1", bed_exit + timedelta(minutes=45)),
    ]


def test_restored_open_alarm_is_updated_not_raised_again() -> None:
    """After a restart, a repeat of an open alarm is an update; a device cancel still finds its ref."""
    engine = fresh(START, directory(), PACK)
    run(engine, [ev(START, "radar", EventKind.FALL_DETECTED, ref="f7")])
    restored = Engine.restore(PACK, directory(), as_stored(engine))
    later = START + timedelta(minutes=1)
    out = run(
        restored,
        [
            ev(later, "radar", EventKind.FALL_CONFIRMED, ref="f7"),
            ev(later, "radar", EventKind.FALL_CANCELLED, ref="f7"),
        ],
    )
    assert [d.action.value for d in out] == ["update", "cancel"]


def test_restless_night_history_survives_a_restart() -> None:
    """The baseline's per-resident history is part of the snapshot."""
    engine = fresh(local("2026-11-10 12:00"), directory(), PACK)
    calm = [ev(local(f"2026-11-{d} 02:{m:02d}"), "mot", EventKind.MOTION) for d in range(11, 21) for m in (10, 40)]
    run(engine, calm, local("2026-11-21 12:00"))
    restored = Engine.restore(PACK, directory(), as_stored(engine))
    restless = [ev(local(f"2026-11-22 02:{m:02d}"), "mot", EventKind.MOTION) for m in range(0, 60, 4)]
    out = run(restored, restless, local("2026-11-22 03:30"))
    assert [d.rule_id for d in out if d.rule_id == "restless_night"] == ["restless_night"]


def test_device_added_while_down_is_supervised_after_restore() -> None:
    """A device that joined the inventory during a restart is supervised from the engine's last known time."""
    from alarms.directory import DeviceInfo

    engine = fresh(START, directory(), PACK)
    run(engine, [ev(START + timedelta(minutes=5), "bed", EventKind.HEARTBEAT)])
    home = directory()
    home.devices["new"] = DeviceInfo("new", "unit1", "thermometer", "r1", 600)
    restored = Engine.restore(PACK, home, as_stored(engine))
    out = restored.tick(START + timedelta(minutes=20))
    assert [(d.key, d.at) for d in out] == [("device_silent:new", START + timedelta(minutes=15))]
