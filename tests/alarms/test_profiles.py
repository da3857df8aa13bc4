"""Rule profiles: named per-resident changes in the pack (night hours, durations, limits, rules on or off), checked
with file and line like the rules, and applied by the engine to the residents who have them, nobody else."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from alarms.directory import DeviceInfo, Directory
from alarms.engine import Engine
from alarms.rules import check_files, default_pack_path, load_rules
from hub.model import DecisionAction, EventKind
from tests.alarms.home import PACK, SITE, ev, local, run

KINDS = {"cam": "camera", "bed": "bed_sensor", "robot": "medication_robot", "thermo": "thermometer"}


def homes(r1_profile: str | None) -> Directory:
    """Two residents with the same devices (`cam1`, `cam2` …); only r1 may have a profile."""
    devices = {
        f"{name}{n}": DeviceInfo(f"{name}{n}", SITE, kind, f"r{n}", 7 * 86400.0)
        for n in (1, 2)
        for name, kind in KINDS.items()
    }
    residents = {
        "r1": PACK.resident_profile("r1", SITE, profile=r1_profile),
        "r2": PACK.resident_profile("r2", SITE),
    }
    return Directory(site_zones={SITE: "Europe/Stockholm"}, devices=devices, residents=residents)


def engine(r1_profile: str | None, start: str = "2026-11-26 12:00") -> Engine:
    e = Engine(PACK, homes(r1_profile))
    e.tick(local(start))
    return e


def test_the_default_pack_has_profiles_and_a_rule_a_profile_turns_on_is_evaluated() -> None:
    assert sorted(PACK.profiles) == ["camera_watch", "feels_the_cold", "sleeps_late", "wanders_at_night"]
    assert "camera_person" not in {r.id for r in PACK.enabled}  # off in the pack …
    assert "camera_person" in {r.id for r in PACK.live}  # … on for the residents of camera_watch


def test_a_rule_the_pack_leaves_off_rings_for_the_resident_whose_profile_turns_it_on_only() -> None:
    e = engine("camera_watch")
    night = local("2026-11-26 23:00")
    out = run(e, [ev(night, "cam1", EventKind.CAMERA_PERSON_DETECTED, ref="p1"),
                  ev(night, "cam2", EventKind.CAMERA_PERSON_DETECTED, ref="p2"),
                  ev(local("2026-11-27 12:00"), "cam1", EventKind.CAMERA_PERSON_DETECTED, ref="p3")])  # fmt: skip
    # r2 has no profile (the pack keeps it off); r1's profile watches 22:00-07:00 only
    found = [(d.key, d.at) for d in out if d.action is DecisionAction.RAISE and d.rule_id == "camera_person"]
    assert found == [("camera_person:r1", night)]


def test_night_hours_and_a_shorter_wait_for_the_resident_who_walks_at_night() -> None:
    e = engine("wanders_at_night")
    out = run(e, [ev(local("2026-11-26 21:30"), "bed1", EventKind.BED_EXIT),
                  ev(local("2026-11-26 21:30"), "bed2", EventKind.BED_EXIT),
                  ev(local("2026-11-26 23:00"), "bed2", EventKind.BED_EXIT)], local("2026-11-27 00:00"))  # fmt: skip
    at = {d.key: d.at for d in out if d.action is DecisionAction.RAISE}
    # r1: night from 21:00, alarm after 10 min; r2: the pack's night from 22:00 and 20 min
    assert at == {
        "bed_exit_no_return:r1": local("2026-11-26 21:40"),
        "bed_exit_no_return:r2": local("2026-11-26 23:20"),
    }


def test_a_higher_temperature_limit_for_the_resident_who_feels_the_cold() -> None:
    e = engine("feels_the_cold")
    start = local("2026-11-26 20:00")
    out = run(e, [ev(start, "thermo1", EventKind.TEMPERATURE, 17.5), ev(start, "thermo2", EventKind.TEMPERATURE, 17.5)],
              start + timedelta(minutes=31))  # fmt: skip
    assert [d.key for d in out if d.action is DecisionAction.RAISE] == ["low_room_temperature:r1"]
    back = run(e, [ev(start + timedelta(minutes=40), "thermo1", EventKind.TEMPERATURE, 18.5)])
    assert [d.action for d in back] == []  # 18.5 is not yet "normal again" (19) for r1
    back = run(e, [ev(start + timedelta(minutes=50), "thermo1", EventKind.TEMPERATURE, 19)])
    assert [d.action for d in back] == [DecisionAction.CLEAR]


def test_a_new_profile_applies_from_the_next_event_without_a_new_engine() -> None:
    e = engine(None)
    first = local("2026-11-26 23:00")
    assert run(e, [ev(first, "cam1", EventKind.CAMERA_PERSON_DETECTED, ref="a")]) == []
    e.set_directory(homes("camera_watch"), first)  # what the hub does when a nurse changes the profile
    later = first + timedelta(minutes=1)
    assert [d.key for d in run(e, [ev(later, "cam1", EventKind.CAMERA_PERSON_DETECTED, ref="b")])] == [
        "camera_person:r1"
    ]
    e.alarm_closed("camera_person:r1", later)
    e.set_directory(homes(None), later)  # cleared: the pack's values again
    assert run(e, [ev(later + timedelta(minutes=1), "cam1", EventKind.CAMERA_PERSON_DETECTED, ref="c")]) == []


def test_a_profile_name_the_packs_do_not_define_leaves_the_pack_values() -> None:
    profile = PACK.resident_profile("r1", SITE, away=True, profile="no_such_profile")
    assert (profile.away, profile.night, dict(profile.overrides)) == (True, None, {})


GOOD = """\
version: 1
profiles:
  night_owl:
    description: Up late
    night: {start: "23:00", end: "08:00"}
    rules:
      bed_exit_no_return: {within: 30m}
      low_room_temperature: {for: 15m, threshold: 18}
      medication_missed: {enabled: false}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profiles.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_profiles_in_a_file_of_their_own_use_the_rules_of_the_pack(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert check_files([default_pack_path(), path]) == []
    rules = load_rules([default_pack_path(), path])
    owl = rules.resident_profile("r1", SITE, profile="night_owl")
    assert owl.night == ("23:00", "08:00")
    assert owl.overrides["bed_exit_no_return"].duration_s == 1800
    assert (owl.overrides["low_room_temperature"].duration_s, owl.overrides["low_room_temperature"].threshold) == (
        900,
        18,
    )
    assert owl.overrides["medication_missed"].enabled is False


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("within: 30m", "within: 30 minutes", 7, "'30 minutes' is not a duration"),
        ('end: "08:00"', 'end: "23:00"', 5, "window 23:00–23:00 can never be active"),
        ("medication_missed: {enabled: false}", "fall: {enabled: false}", 9,
         "rule 'fall': enabled: cannot be turned off for a resident: the rule raises critical alarms"),
        ("medication_missed: {enabled: false}", "battery_low: {enabled: false}", 9,
         "rule 'battery_low' is technical: profiles change care rules only"),
        ("medication_missed: {enabled: false}", "no_such_rule: {enabled: true}", 9,
         "profile 'night_owl': no rule 'no_such_rule' in the rule files"),
        ("{within: 30m}", "{for: 30m}", 7, "rule 'bed_exit_no_return': for: the rule has no `for` to replace"),
        ("{for: 15m, threshold: 18}", "{within: 15m}", 8, "within: the rule has no `within` to replace (a sustained rule has `for`)"),
        ("medication_missed: {enabled: false}", "medication_missed: {threshold: 2}", 9,
         "rule 'medication_missed': threshold: the rule compares no value"),
        ("medication_missed: {enabled: false}", "restless_night: {schedule: {start: '21:00', end: '06:00'}}", 9,
         "schedule: a baseline rule keeps the pack's schedule for every resident"),
        ("medication_missed: {enabled: false}", "medication_missed: {}", 9, "says nothing to change"),
        ("medication_missed: {enabled: false}", "medication_missed: {enabled: no, colour: red}", 9,
         "unknown field 'colour'"),
        ("  night_owl:", "  Night-Owl:", 4, "profile name 'Night-Owl': a name is lower-case letters"),
    ],
)  # fmt: skip
def test_every_mistake_in_a_profile_is_reported_at_its_line(
    tmp_path: Path, old: str, new: str, line: int, words: str
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    problems = check_files([default_pack_path(), path])
    assert any(p.startswith(f"{path}:{line}: ") and words in p for p in problems), problems


def test_the_same_profile_twice_is_reported_at_the_second(tmp_path: Path) -> None:
    first = write(tmp_path, GOOD)
    second = tmp_path / "more.yaml"
    second.write_text(GOOD, encoding="utf-8")
    problems = check_files([default_pack_path(), first, second])
    assert problems == [f"{second}:3: profile 'night_owl' is defined twice (first at {first}:3)"]
