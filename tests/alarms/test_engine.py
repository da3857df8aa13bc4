"""Rule types one by one (tables), schedules across midnight and DST, profiles, unregistered devices, lifecycle."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from alarms.directory import RuleOverride
from alarms.engine import Engine
from alarms.rules import RuleSet, rule_from_dict
from hub.model import DecisionAction, EventKind
from tests.alarms.home import care, directory, ev, fresh, local, run

BASE = {"category": "care", "severity": "high", "reason": "test"}
START = local("2026-11-26 12:00")


def engine_with(rule: dict[str, Any], start: datetime = START, **home: Any) -> Engine:
    """An engine with just one rule."""
    return fresh(start, directory(**home), RuleSet((rule_from_dict({**BASE, "id": "r", **rule}),)))


def timeline(rule: dict[str, Any], steps: list[tuple[int, str, str, float | None]], until_min: int) -> list[str]:
    """Replay (minute, device, kind, value) from START; returns "action@minute" for each decision."""
    engine = engine_with(rule)
    events = [ev(START + timedelta(minutes=m), device, kind, value) for m, device, kind, value in steps]
    out = run(engine, events, START + timedelta(minutes=until_min))
    return [f"{d.action.value}@{(d.at - START) / timedelta(minutes=1):g}" for d in out]


INSTANT = {
    "type": "instant",
    "match": {"kinds": ["temperature"], "value": {"lt": 16}},
    "clear": {"kinds": ["temperature"], "value": {"ge": 17}},
}
ROBOT = {"type": "instant", "match": {"kinds": ["robot_state"], "attrs": {"state": "error"}}}


@pytest.mark.parametrize(
    ("rule", "steps", "expected"),
    [
        (INSTANT, [(0, "thermo", "temperature", 15)], ["raise@0"]),
        (INSTANT, [(0, "thermo", "temperature", 16)], []),
        (INSTANT, [(0, "thermo", "temperature", 15), (5, "thermo", "temperature", 14)], ["raise@0", "update@5"]),
        (INSTANT, [(0, "thermo", "temperature", 15), (5, "thermo", "temperature", 16.5)], ["raise@0"]),
        (INSTANT, [(0, "thermo", "temperature", 15), (5, "thermo", "temperature", 17)], ["raise@0", "clear@5"]),
        (INSTANT, [(0, "thermo", "humidity", 10)], []),
        (ROBOT, [(0, "robot", "robot_state", None)], []),
    ],
)
def test_instant(rule: dict[str, Any], steps: list[Any], expected: list[str]) -> None:
    """Instant rules: value predicates, repeats update, hysteresis clear."""
    assert timeline(rule, steps, 60) == expected


def test_instant_attribute_predicate() -> None:
    """A predicate on attributes: only a robot in error raises."""
    engine = engine_with(ROBOT)
    ok = ev(START, "robot", EventKind.ROBOT_STATE, attrs={"state": "idle"})
    bad = ev(START + timedelta(minutes=1), "robot", EventKind.ROBOT_STATE, attrs={"state": "error"})
    assert [d.action for d in run(engine, [ok, bad])] == [DecisionAction.RAISE]


SUSTAINED = {
    "type": "sustained",
    "match": {"kinds": ["temperature"], "value": {"lt": 16}},
    "clear": {"kinds": ["temperature"], "value": {"ge": 17}},
    "for": "30m",
}


@pytest.mark.parametrize(
    ("steps", "until", "expected"),
    [
        ([(0, "thermo", "temperature", 15)], 29, []),
        ([(0, "thermo", "temperature", 15)], 30, ["raise@30"]),
        ([(0, "thermo", "temperature", 15), (20, "thermo", "temperature", 16.2)], 60, []),
        ([(0, "thermo", "temperature", 15), (40, "thermo", "temperature", 16.2)], 60, ["raise@30"]),
        ([(0, "thermo", "temperature", 15), (40, "thermo", "temperature", 18)], 60, ["raise@30", "clear@40"]),
        ([(0, "thermo", "temperature", 15), (10, "thermo", "temperature", 14)], 60, ["raise@30"]),
    ],
)
def test_sustained(steps: list[Any], until: int, expected: list[str]) -> None:
    """Sustained: must hold for the whole duration; a reading between threshold and hysteresis breaks it."""
    assert timeline(SUSTAINED, steps, until) == expected


SILENCE = {"type": "absence", "match": {"kinds": ["motion"]}, "within": "1h"}


@pytest.mark.parametrize(
    ("steps", "until", "expected"),
    [
        ([], 180, []),
        ([(0, "hall", "motion", None)], 59, []),
        ([(0, "hall", "motion", None)], 60, ["raise@60"]),
        ([(0, "hall", "motion", None), (30, "mot", "motion", None)], 89, []),
        ([(0, "hall", "motion", None), (30, "mot", "motion", None)], 90, ["raise@90"]),
        ([(0, "hall", "motion", None), (70, "mot", "motion", None)], 90, ["raise@60", "clear@70"]),
        ([(0, "hall", "motion", None), (30, "hall", "heartbeat", None)], 60, ["raise@60"]),
    ],
)
def test_absence_after_anchor(steps: list[Any], until: int, expected: list[str]) -> None:
    """Absence after the last matching event; other kinds do not count."""
    assert timeline(SILENCE, steps, until) == expected


SEQUENCE = {"type": "sequence", "first": {"kinds": ["bed_exit"]}, "then": {"kinds": ["bed_entry"]}, "within": "20m"}


@pytest.mark.parametrize(
    ("steps", "until", "expected"),
    [
        ([(0, "bed", "bed_exit", None)], 19, []),
        ([(0, "bed", "bed_exit", None)], 20, ["raise@20"]),
        ([(0, "bed", "bed_exit", None), (19, "bed", "bed_entry", None)], 60, []),
        ([(0, "bed", "bed_exit", None), (25, "bed", "bed_entry", None)], 60, ["raise@20", "clear@25"]),
        ([(0, "bed", "bed_exit", None), (10, "bed", "bed_exit", None)], 25, ["raise@20"]),
        ([(0, "bed", "bed_entry", None)], 60, []),
    ],
)
def test_sequence(steps: list[Any], until: int, expected: list[str]) -> None:
    """Sequence: the first event anchors the window; a second exit does not extend it."""
    assert timeline(SEQUENCE, steps, until) == expected


COUNT = {"type": "count", "match": {"kinds": ["presence"], "value": {"eq": 1}}, "count": 3, "within": "1h"}


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        ([0, 10], []),
        ([0, 10, 20], ["raise@20"]),
        ([0, 30, 60], []),
        ([0, 30, 59, 70], ["raise@59", "update@70"]),
    ],
)
def test_count(minutes: list[int], expected: list[str]) -> None:
    """Count: N within a sliding window W."""
    assert timeline(COUNT, [(m, "bath", "presence", 1) for m in minutes], 120) == expected


# --- schedules: across midnight and both DST changes -----------------------------------------------------------

NIGHT_DOOR = {"type": "instant", "schedule": {"start": "22:00", "end": "07:00"}, "match": {"kinds": ["door_open"]}}


@pytest.mark.parametrize(
    ("when", "fires"),
    [
        ("2026-11-26 21:59", False),
        ("2026-11-26 22:00", True),
        ("2026-11-26 23:59", True),
        ("2026-11-27 00:00", True),
        ("2026-11-27 06:59", True),
        ("2026-11-27 07:00", False),
        # autumn DST night (25 Oct 2026): clocks go back at 03:00; both 02:30s are night, 07:00 is still the end
        ("2026-10-25 02:30", True),
        ("2026-10-25 06:59", True),
        ("2026-10-25 07:00", False),
        # spring DST night (29 Mar 2026): 02:00–03:00 does not exist; 06:59 CEST is night, 07:00 CEST is not
        ("2026-03-29 03:30", True),
        ("2026-03-29 06:59", True),
        ("2026-03-29 07:00", False),
    ],
)
def test_night_schedule_across_midnight_and_dst(when: str, fires: bool) -> None:
    """22:00–07:00 local wall-clock time, whatever the UTC offset that night."""
    at = local(when)
    engine = engine_with(NIGHT_DOOR, at - timedelta(hours=1))
    assert bool(run(engine, [ev(at, "door", EventKind.DOOR_OPEN)])) is fires


def test_second_0230_of_the_autumn_night_also_counts() -> None:
    """The repeated hour: 02:30 CET (01:30 UTC) is night just like 02:30 CEST (00:30 UTC)."""
    second = local("2026-10-25 02:30").replace(hour=1)  # 00:30 UTC + 1 h
    assert second.isoformat() == "2026-10-25T01:30:00+00:00"
    engine = engine_with(NIGHT_DOOR, second - timedelta(hours=1))
    assert len(run(engine, [ev(second, "door", EventKind.DOOR_OPEN)])) == 1


@pytest.mark.parametrize(
    ("day", "utc_deadline"),
    [
        ("2026-03-28", "2026-03-28T09:00:00+00:00"),  # CET
        ("2026-03-29", "2026-03-29T08:00:00+00:00"),  # first CEST morning
        ("2026-10-25", "2026-10-25T09:00:00+00:00"),  # first CET morning
        ("2026-10-26", "2026-10-26T09:00:00+00:00"),
    ],
)
def test_no_morning_activity_is_checked_at_10_local_through_dst(day: str, utc_deadline: str) -> None:
    """The daily window ends at 10:00 local, also on the mornings after the clocks changed."""
    from tests.alarms.home import PACK

    start = local(f"{day} 00:00")
    engine = fresh(start, directory(), PACK)
    out = run(engine, [], local(f"{day} 12:00"))
    raised = [d for d in out if d.rule_id == "no_morning_activity"]
    assert [d.at.isoformat() for d in raised] == [utc_deadline]


def test_bed_exit_across_midnight_and_dst_fires_20_real_minutes_later() -> None:
    """A bed exit at 23:50 fires at 00:10; one at 02:50 CEST on the autumn night fires 20 real minutes later."""
    from tests.alarms.home import PACK

    engine = fresh(local("2026-10-24 12:00"), directory(), PACK)
    exit_1 = local("2026-10-24 23:50")
    exit_2 = local("2026-10-25 02:50")  # 00:50 UTC, CEST; clocks go back at 01:00 UTC
    out = run(engine, [ev(exit_1, "bed", EventKind.BED_EXIT)], exit_1 + timedelta(minutes=25))
    out += run(engine, [ev(exit_1 + timedelta(minutes=30), "bed", EventKind.BED_ENTRY)])
    out += run(engine, [ev(exit_2, "bed", EventKind.BED_EXIT)], exit_2 + timedelta(minutes=25))
    raised = [d.at for d in out if d.rule_id == "bed_exit_no_return" and d.action is DecisionAction.UPDATE]
    first = [d.at for d in out if d.rule_id == "bed_exit_no_return" and d.action is DecisionAction.RAISE]
    assert first == [exit_1 + timedelta(minutes=20)]
    assert raised == [exit_2 + timedelta(minutes=20)]  # same alarm still open: an update


# --- profiles, away, maintenance, unregistered devices ----------------------------------------------------------


def test_resident_night_hours_and_overrides() -> None:
    """A resident's own night hours, threshold and duration replace the pack's."""
    from tests.alarms.home import PACK

    home = directory(
        night=("21:00", "06:00"),
        overrides={
            "low_room_temperature": RuleOverride(threshold=18, clear_at=19),
            "bed_exit_no_return": RuleOverride(duration_s=600),
        },
    )
    engine = fresh(local("2026-11-26 12:00"), home, PACK)
    events = [
        ev(local("2026-11-26 21:30"), "door", EventKind.DOOR_OPEN),
        ev(local("2026-11-26 21:31"), "door", EventKind.DOOR_CLOSED),
        ev(local("2026-11-26 22:00"), "thermo", EventKind.TEMPERATURE, 17.5),
        ev(local("2026-11-26 23:00"), "bed", EventKind.BED_EXIT),
    ]
    out = run(engine, events, local("2026-11-26 23:11"))
    raised = {d.rule_id: d.at for d in out if d.action is DecisionAction.RAISE}
    assert raised == {
        "entrance_door_night": local("2026-11-26 21:30"),
        "low_room_temperature": local("2026-11-26 22:30"),
        "bed_exit_no_return": local("2026-11-26 23:10"),
    }
    morning = run(engine, [ev(local("2026-11-27 06:30"), "door", EventKind.DOOR_OPEN)])
    assert care(morning) == []


def test_rule_switched_off_for_one_resident() -> None:
    """An override can turn a rule off for a resident."""
    from tests.alarms.home import PACK

    engine = fresh(START, directory(overrides={"medication_missed": RuleOverride(enabled=False)}), PACK)
    assert care(run(engine, [ev(START, "robot", EventKind.MEDICATION_MISSED)])) == []


def test_away_resident_raises_no_care_alarms_but_devices_are_still_supervised() -> None:
    """In hospital: a fall event or open door raises nothing; a low battery still does."""
    from tests.alarms.home import PACK

    engine = fresh(START, directory(away=True), PACK)
    events = [
        ev(START, "radar", EventKind.FALL_DETECTED),
        ev(START, "door", EventKind.DOOR_OPEN),
        ev(START, "radar", EventKind.BATTERY, 5),
    ]
    assert care(run(engine, events, START + timedelta(hours=23))) == [("raise", "battery_low:radar")]


def test_maintenance_device_raises_no_technical_alarms_but_still_care() -> None:
    """A radar in maintenance: no battery or silence alarms, but a fall still reaches the patrol."""
    from tests.alarms.home import PACK

    engine = fresh(START, directory(maintenance={"radar"}, supervision_s=600), PACK)
    events = [ev(START, "radar", EventKind.BATTERY, 5), ev(START, "radar", EventKind.FALL_DETECTED)]
    out = run(engine, events, START + timedelta(hours=1))
    assert not [d for d in out if d.device_id == "radar" and d.rule_id != "fall"]
    assert [d.key for d in out if d.rule_id == "fall"] == ["fall:r1"]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (EventKind.FALL_DETECTED, ["fall:x9"]),
        (EventKind.ALARM_BUTTON, ["alarm_button:x9"]),
        (EventKind.SMOKE, ["smoke:x9"]),
        (EventKind.WATER_LEAK, ["water_leak:x9"]),
        (EventKind.DOOR_OPEN, []),
        (EventKind.BATTERY, []),
        (EventKind.BED_EXIT, []),
    ],
)
def test_unregistered_device_still_raises_instant_care_alarms(kind: EventKind, expected: list[str]) -> None:
    """A device missing from the inventory: safety alarms go out, keyed by device and marked unregistered."""
    from tests.alarms.home import PACK

    engine = fresh(local("2026-11-27 02:00"), directory(), PACK)
    out = run(engine, [ev(local("2026-11-27 02:00"), "x9", kind, 3)], local("2026-11-27 03:00"))
    assert [d.key for d in out] == expected
    assert all(d.unregistered and d.resident_id is None for d in out)


def test_new_device_is_supervised_from_set_directory() -> None:
    """Inventory changes: a new device's supervision starts when the directory is set."""
    from alarms.directory import DeviceInfo
    from tests.alarms.home import PACK

    engine = fresh(START, directory(), PACK)
    home = directory()
    home.devices["new"] = DeviceInfo("new", "unit1", "thermometer", "r1", 900)
    engine.set_directory(home, START + timedelta(hours=1))
    out = run(engine, [], START + timedelta(hours=1, minutes=16))
    assert [(d.key, d.at) for d in out] == [("device_silent:new", START + timedelta(hours=1, minutes=15))]


# --- lifecycle: one alarm per key, cooldown -------------------------------------------------------------------


def test_one_alarm_per_key_and_cooldown_after_close() -> None:
    """Repeats update; after the desk closes it, the door rule waits out its 5 min cooldown before raising anew."""
    from tests.alarms.home import PACK

    engine = fresh(local("2026-11-26 22:00"), directory(), PACK)
    t = local("2026-11-27 01:00")
    out = run(engine, [ev(t, "door", EventKind.DOOR_OPEN), ev(t + timedelta(minutes=1), "door", EventKind.DOOR_OPEN)])
    assert [(d.action.value, d.count) for d in out] == [("raise", 1), ("update", 2)]
    engine.alarm_closed("entrance_door_night:r1", t + timedelta(minutes=2))
    assert run(engine, [ev(t + timedelta(minutes=4), "door", EventKind.DOOR_OPEN)]) == []
    again = run(engine, [ev(t + timedelta(minutes=8), "door", EventKind.DOOR_OPEN)])
    assert [d.action for d in again] == [DecisionAction.RAISE]


def test_fall_without_cooldown_raises_again_after_close() -> None:
    """Safety alarms have no cooldown: a second fall right after the first was resolved is a new alarm."""
    from tests.alarms.home import PACK

    engine = fresh(START, directory(), PACK)
    first = run(engine, [ev(START, "radar", EventKind.FALL_DETECTED, ref="a")])
    engine.alarm_closed(first[0].key, START + timedelta(minutes=1))
    second = run(engine, [ev(START + timedelta(minutes=2), "radar", EventKind.FALL_DETECTED, ref="b")])
    assert [(d.action, d.ref) for d in second] == [(DecisionAction.RAISE, "b")]


def test_next_deadline_points_at_the_earliest_timer() -> None:
    """The hub sleeps until next_deadline; it is the earliest pending timer."""
    from tests.alarms.home import PACK

    engine = fresh(START, directory(supervision_s=7 * 86400), PACK)
    t = local("2026-11-26 23:00")
    run(engine, [ev(t, "bed", EventKind.BED_EXIT)])
    assert engine.next_deadline() == t + timedelta(minutes=20)


def test_unregistered_device_is_keyed_by_device_even_with_a_resident_in_the_event() -> None:
    """The inventory does not know the device: the alarm is the device's, marked unregistered."""
    from tests.alarms.home import PACK

    engine = fresh(START, directory(), PACK)
    out = run(engine, [ev(START, "x9", EventKind.ALARM_BUTTON, resident_id="r1")])
    assert [(d.key, d.unregistered) for d in out] == [("alarm_button:x9", True)]


def test_persisting_cold_updates_and_raises_again_after_close_and_cooldown() -> None:
    """Still cold after the desk closed the alarm: a new alarm once the 1 h cooldown has passed."""
    from tests.alarms.home import PACK

    engine = fresh(START, directory(), PACK)
    readings = [ev(START + timedelta(minutes=m), "thermo", EventKind.TEMPERATURE, 15) for m in range(0, 200, 10)]
    out: list[Any] = []
    for reading in readings:
        out += engine.feed(reading, reading.ts)
        if reading.ts == START + timedelta(minutes=40):
            engine.alarm_closed("low_room_temperature:r1", reading.ts)
    got = [(d.action.value, (d.at - START) / timedelta(minutes=1)) for d in out if d.rule_id == "low_room_temperature"]
    # raised at 30; closed at 40 (cooldown until 100); the wait 30→60 and 60→90 end inside it; 90→120 raises anew
    assert got == [("raise", 30), ("raise", 120), ("update", 150), ("update", 180)]


@pytest.mark.parametrize(
    ("closed_at", "expected"),
    [
        (None, [("raise", "entrance_door_night:r1")]),
        ("2026-11-26 21:55", []),
    ],
)
def test_door_left_open_when_the_night_begins(closed_at: str | None, expected: list[tuple[str, str]]) -> None:
    """Opened at 21:50 and still open at 22:00: raised at 22:00; closed before 22:00: nothing."""
    from tests.alarms.home import PACK

    engine = fresh(local("2026-11-26 20:00"), directory(), PACK)
    events = [ev(local("2026-11-26 21:50"), "door", EventKind.DOOR_OPEN)]
    if closed_at:
        events.append(ev(local(closed_at), "door", EventKind.DOOR_CLOSED))
    out = run(engine, events, local("2026-11-26 22:30"))
    assert care(out) == expected
    assert all(d.at == local("2026-11-26 22:00") for d in out)


# --- repeats and who may close: a new incident rings again, only technical rules may close themselves ------------


def test_a_new_press_or_missed_dose_is_a_repeat_but_the_same_fall_reported_again_is_not() -> None:
    """Another button press and another missed dose ring again; the radar repeating the same fall (same ref) does not."""
    from tests.alarms.home import PACK

    engine = fresh(START, directory(), PACK)
    events = [
        ev(START, "button", EventKind.ALARM_BUTTON),
        ev(START + timedelta(hours=48), "button", EventKind.ALARM_BUTTON),
        ev(START, "radar", EventKind.FALL_DETECTED, ref="f1"),
        ev(START + timedelta(seconds=5), "radar", EventKind.FALL_CONFIRMED, ref="f1"),
        ev(START + timedelta(minutes=30), "radar", EventKind.FALL_DETECTED, ref="f2"),
        *(ev(START + timedelta(hours=h), "robot", EventKind.MEDICATION_MISSED) for h in (1, 9, 17)),
    ]
    out = run(engine, sorted(events, key=lambda e: e.ts))
    got = sorted((d.rule_id, d.count, d.action.value, d.repeat) for d in out if d.rule_id in _REPEATING)
    assert got == [
        ("alarm_button", 1, "raise", False),
        ("alarm_button", 2, "update", True),
        ("fall", 1, "raise", False),
        ("fall", 2, "update", False),
        ("fall", 3, "update", True),
        ("medication_missed", 1, "raise", False),
        ("medication_missed", 2, "update", True),
        ("medication_missed", 3, "update", True),
    ]


_REPEATING = ("alarm_button", "fall", "medication_missed")


def test_a_condition_that_still_holds_updates_without_ringing() -> None:
    """A room that stays cold updates its alarm (sustained rule): not a new incident."""
    from tests.alarms.home import PACK

    engine = fresh(START, directory(), PACK)
    readings = [ev(START + timedelta(minutes=m), "thermo", EventKind.TEMPERATURE, 15) for m in range(0, 70, 10)]
    out = [d for d in run(engine, readings) if d.rule_id == "low_room_temperature"]
    assert [d.action.value for d in out][:2] == ["raise", "update"]
    assert not any(d.repeat for d in out)


def test_only_technical_rules_may_close_themselves() -> None:
    """The door closing (care) never carries auto_close; a charged battery (technical, auto_close in the pack) does."""
    from tests.alarms.home import PACK

    engine = fresh(local("2026-11-26 22:00"), directory(), PACK)
    t = local("2026-11-27 01:00")
    out = run(
        engine,
        [
            ev(t, "door", EventKind.DOOR_OPEN),
            ev(t + timedelta(minutes=9), "door", EventKind.DOOR_CLOSED),
            ev(t, "button", EventKind.ALARM_BUTTON),
            ev(t + timedelta(seconds=20), "button", EventKind.ALARM_BUTTON_CANCEL),
            ev(t, "bed", EventKind.BATTERY, 10),
            ev(t + timedelta(hours=1), "bed", EventKind.BATTERY, 90),
        ],
    )
    ends = [(d.rule_id, d.action.value, d.auto_close) for d in out if d.action.value in ("clear", "cancel")]
    assert ends == [
        ("entrance_door_night", "clear", False),
        ("alarm_button", "cancel", False),
        ("battery_low", "clear", True),
    ]


def test_a_care_rule_that_closes_itself_is_refused() -> None:
    """`auto_close` on a care rule is a mistake in the rule file, said plainly."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="technical rules only"):
        rule_from_dict({**BASE, "id": "door", "type": "instant", "match": {"kinds": ["door_open"]}, "auto_close": True})
