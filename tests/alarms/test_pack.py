"""Every rule of the default night-care pack, with cases where it fires and cases where it must stay quiet."""

from __future__ import annotations

from typing import Any

import pytest

from alarms.rules import load_rules
from hub.model import AlarmCategory, DecisionAction, EventKind, Severity
from tests.alarms.home import PACK, care, directory, ev, fresh, local, run, with_rule

REQUIRED_IDS = {
    "fall",
    "alarm_button",
    "bed_exit_no_return",
    "entrance_door_night",
    "no_morning_activity",
    "long_bathroom_visit",
    "water_leak",
    "smoke",
    "low_room_temperature",
    "medication_missed",
    "device_silent",
    "battery_low",
    "camera_offline",
    "device_fault",
    "restless_night",
}


def at(day_time: str) -> Any:
    """Local Stockholm time on the night of 26–27 November 2026: "26 23:00"."""
    day, hm = day_time.split()
    return local(f"2026-11-{day} {hm}")


def night(*items: tuple[Any, ...]) -> list[Any]:
    """Events from (local time, device, kind[, value[, ref]])."""
    events = []
    for item in items:
        when, device, kind, *rest = item
        value = rest[0] if rest else None
        ref = rest[1] if len(rest) > 1 else None
        events.append(ev(at(when), device, kind, value, ref=ref))
    return events


# (case id, events, tick until, expected (action, key) list, excluding device supervision)
CASES: list[tuple[str, list[Any], str, list[tuple[str, str]]]] = [
    ("fall fires", night(("27 03:00", "radar", "fall_detected", None, "f1")), "27 03:01", [("raise", "fall:r1")]),
    (
        "fall confirmed updates, cancel with other ref ignored",
        night(
            ("27 03:00", "radar", "fall_detected", None, "f1"),
            ("27 03:00", "radar", "fall_confirmed", None, "f1"),
            ("27 03:01", "radar", "fall_cancelled", None, "other"),
        ),
        "27 03:02",
        [("raise", "fall:r1"), ("update", "fall:r1")],
    ),
    (
        "fall withdrawn by the radar",
        night(("27 03:00", "radar", "fall_detected", None, "f1"), ("27 03:01", "radar", "fall_cancelled", None, "f1")),
        "27 03:02",
        [("raise", "fall:r1"), ("cancel", "fall:r1")],
    ),
    ("alarm button fires", night(("27 01:00", "button", "alarm_button")), "27 01:01", [("raise", "alarm_button:r1")]),
    (
        "alarm button cancelled at the button",
        night(("27 01:00", "button", "alarm_button"), ("27 01:00", "button", "alarm_button_cancel")),
        "27 01:01",
        [("raise", "alarm_button:r1"), ("cancel", "alarm_button:r1")],
    ),
    ("button heartbeat is quiet", night(("27 01:00", "button", "heartbeat")), "27 02:00", []),
    (
        "bed exit without return at night",
        night(("26 23:00", "bed", "bed_exit")),
        "26 23:30",
        [("raise", "bed_exit_no_return:r1")],
    ),
    (
        "bed exit, back in 15 min",
        night(("26 23:00", "bed", "bed_exit"), ("26 23:15", "bed", "bed_entry")),
        "26 23:30",
        [],
    ),
    (
        "bed exit, back exactly at 20 min is too late",
        night(("26 23:00", "bed", "bed_exit"), ("26 23:20", "bed", "bed_entry")),
        "26 23:30",
        [("raise", "bed_exit_no_return:r1"), ("clear", "bed_exit_no_return:r1")],
    ),
    ("bed exit in the afternoon", night(("26 14:00", "bed", "bed_exit")), "26 15:00", []),
    (
        "entrance door at night, then closed",
        night(("27 01:00", "door", "door_open"), ("27 01:02", "door", "door_closed")),
        "27 01:03",
        [("raise", "entrance_door_night:r1"), ("clear", "entrance_door_night:r1")],
    ),
    ("entrance door by day", night(("26 14:00", "door", "door_open")), "26 14:30", []),
    ("no morning activity", [], "27 10:00", [("raise", "no_morning_activity:r1")]),
    ("motion at 07:30", night(("27 07:30", "hall", "motion")), "27 10:00", []),
    (
        "only the bathroom presence sensor spoke",
        night(("27 07:30", "bath", "presence", 1), ("27 07:35", "bath", "presence", 0)),
        "27 10:00",
        [("raise", "no_morning_activity:r1")],
    ),
    (
        "long bathroom visit",
        night(("27 02:00", "bath", "presence", 1)),
        "27 02:50",
        [("raise", "long_bathroom_visit:r1")],
    ),
    (
        "short bathroom visit",
        night(("27 02:00", "bath", "presence", 1), ("27 02:10", "bath", "presence", 0)),
        "27 03:00",
        [],
    ),
    ("water leak", night(("27 02:00", "water", "water_leak")), "27 02:01", [("raise", "water_leak:r1")]),
    ("humidity is no leak", night(("27 02:00", "thermo", "humidity", 80)), "27 02:01", []),
    ("smoke", night(("27 02:00", "smoke", "smoke")), "27 02:01", [("raise", "smoke:r1")]),
    ("smoke detector heartbeat", night(("27 02:00", "smoke", "heartbeat")), "27 02:01", []),
    (
        "cold room for 30 min, hysteresis, then warm",
        night(
            ("27 01:00", "thermo", "temperature", 15.0),
            ("27 01:20", "thermo", "temperature", 15.5),
            ("27 01:40", "thermo", "temperature", 16.5),
            ("27 01:50", "thermo", "temperature", 17.2),
        ),
        "27 02:00",
        [("raise", "low_room_temperature:r1"), ("clear", "low_room_temperature:r1")],
    ),
    (
        "cold spells broken before 30 min",
        night(
            ("27 01:00", "thermo", "temperature", 15.0),
            ("27 01:10", "thermo", "temperature", 16.5),
            ("27 01:20", "thermo", "temperature", 15.0),
        ),
        "27 01:45",
        [],
    ),
    (
        "medication missed",
        night(("27 08:00", "robot", "medication_missed")),
        "27 08:01",
        [("raise", "medication_missed:r1")],
    ),
    ("medication taken", night(("27 08:00", "robot", "medication_taken")), "27 08:01", []),
    (
        "battery low, in between, recharged",
        night(
            ("27 02:00", "radar", "battery", 12),
            ("27 03:00", "radar", "battery", 20),
            ("27 04:00", "radar", "battery", 30),
        ),
        "27 04:01",
        [("raise", "battery_low:radar"), ("clear", "battery_low:radar")],
    ),
    ("battery fine", night(("27 02:00", "radar", "battery", 40)), "27 02:01", []),
    (
        "camera offline and back",
        night(("27 02:00", "cam", "device_offline"), ("27 02:05", "cam", "device_online")),
        "27 02:06",
        [("raise", "camera_offline:cam"), ("clear", "camera_offline:cam")],
    ),
    ("another device offline is no camera alarm", night(("27 02:00", "door", "device_offline")), "27 02:01", []),
]


@pytest.mark.parametrize(("events", "until", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pack_rule(events: list[Any], until: str, expected: list[tuple[str, str]]) -> None:
    """Each case from the table: the decisions a night nurse would see."""
    engine = fresh(at("26 12:00"))
    assert care(run(engine, events, at(until))) == expected


def test_pack_has_the_shared_rule_ids_and_categories() -> None:
    """The simulator and the hub rely on these ids; technical rules are exactly the device ones."""
    assert {r.id for r in PACK.enabled} == REQUIRED_IDS
    technical = {r.id for r in PACK.rules if r.category is AlarmCategory.TECHNICAL}
    assert technical == {"device_silent", "battery_low", "camera_offline", "device_fault"}


def test_reasons_are_plain_language() -> None:
    """The nurse reads what happened, with the numbers filled in."""
    engine = fresh(at("26 12:00"))
    out = run(
        engine, night(("26 23:00", "bed", "bed_exit"), ("27 01:00", "thermo", "temperature", 14.5)), at("27 02:00")
    )
    reasons = {d.rule_id: d.reason for d in out if d.action is DecisionAction.RAISE}
    assert reasons["bed_exit_no_return"] == "out of bed for 20 min, not back"
    assert reasons["low_room_temperature"] == "room temperature below 16 °C for 30 min (14.5 °C)"


def test_device_silent_fires_past_supervision_and_clears() -> None:
    """A radar silent longer than its interval raises a high technical alarm; a heartbeat clears it."""
    engine = fresh(at("26 12:00"), directory(supervision_s=3600))
    quiet = run(
        engine, night(*[("26 " + hm, "radar", "heartbeat") for hm in ("12:30", "13:00", "13:30")]), at("26 14:29")
    )
    assert [d for d in quiet if d.device_id == "radar"] == []
    bed = [d for d in quiet if d.key == "device_silent:bed"]
    assert bed[0].severity is Severity.MEDIUM
    assert bed[0].at == at("26 13:00")
    out = run(engine, [], at("26 14:31"))
    radar = [d for d in out if d.key == "device_silent:radar"]
    assert [(d.action, d.severity, d.category) for d in radar] == [
        (DecisionAction.RAISE, Severity.HIGH, AlarmCategory.TECHNICAL)
    ]
    assert radar[0].at == at("26 14:30")
    back = run(engine, night(("26 15:00", "radar", "heartbeat")))
    assert [(d.action, d.key) for d in back] == [(DecisionAction.CLEAR, "device_silent:radar")]


def test_restless_night_against_own_baseline() -> None:
    """Ten calm nights, then a restless hour: raised once, at the end of that hour."""
    engine = fresh(local("2026-11-10 12:00"))
    events = []
    for day in range(11, 21):
        events += [ev(local(f"2026-11-{day} 02:{m:02d}"), "mot", EventKind.MOTION) for m in (10, 40)]
    calm = run(engine, events, local("2026-11-21 12:00"))
    assert [d for d in calm if d.rule_id == "restless_night"] == []
    restless = [ev(local(f"2026-11-22 02:{m:02d}"), "mot", EventKind.MOTION) for m in range(0, 60, 4)]
    out = run(engine, restless, local("2026-11-22 03:30"))
    raised = [d for d in out if d.rule_id == "restless_night"]
    assert [(d.action, d.at) for d in raised] == [(DecisionAction.RAISE, local("2026-11-22 03:00"))]
    assert "15 movements" in raised[0].reason


def test_restless_night_needs_history() -> None:
    """Without a week of the resident's own nights there is no baseline and no alarm."""
    engine = fresh(local("2026-11-20 12:00"))
    events = [ev(local(f"2026-11-21 02:{m:02d}"), "mot", EventKind.MOTION) for m in range(0, 60, 2)]
    assert [d for d in run(engine, events, local("2026-11-21 04:00")) if d.rule_id == "restless_night"] == []


def test_count_rule_fires_when_enabled() -> None:
    """The example count rule is off in the pack; switched on it counts bathroom visits at night."""
    visits = [ev(at(f"27 0{h}:00"), "bath", EventKind.PRESENCE, 1) for h in range(5)]
    visits += [ev(at(f"27 0{h}:05"), "bath", EventKind.PRESENCE, 0) for h in range(5)]
    visits.sort(key=lambda e: e.ts)
    assert care(run(fresh(at("26 12:00")), visits, at("27 06:00"))) == []
    rules = with_rule("frequent_bathroom_visits", enabled=True, within=5 * 3600.0)
    keys = care(run(fresh(at("26 12:00"), rules=rules), visits, at("27 06:00")))
    assert keys == [("raise", "frequent_bathroom_visits:r1")]


def test_pack_loads_twice_as_the_same_rules() -> None:
    """Loading is deterministic (the hub reloads on SIGHUP)."""
    from alarms.rules import default_pack_path

    assert load_rules([default_pack_path()]) == PACK
