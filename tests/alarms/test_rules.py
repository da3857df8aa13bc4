"""Rule files: the default pack is valid, and every mistake is reported with file, line and a plain explanation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alarms.rules import RulesError, check_files, default_pack_path, load_rules, rules_schema
from alarms.spec import parse_duration
from hub.model import VakaError

GOOD = """\
version: 1
schedules:
  night: {start: "22:00", end: "07:00"}
rules:
  - id: door
    type: instant
    category: care
    severity: high
    schedule: night
    match: {kinds: [door_open]}
    reason: door open
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    """A rules file in the test's directory."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_default_pack_is_clean() -> None:
    """The shipped pack passes its own check."""
    assert check_files([default_pack_path()]) == []


def test_good_file_loads(tmp_path: Path) -> None:
    """A small valid file becomes a RuleSet."""
    rules = load_rules([write(tmp_path, GOOD)])
    assert [r.id for r in rules.rules] == ["door"]


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("kinds: [door_open]", "kinds: [door_opened]", 10, "unknown kind 'door_opened'"),
        (
            "type: instant\n",
            "type: sequence\n    first: {kinds: [bed_exit]}\n    then: {kinds: [bed_entry]}\n    within: 20 minutes\n",
            9,
            "not a duration",
        ),
        ('end: "07:00"', 'end: "22:00"', 3, "can never be active"),
        ('end: "07:00"', 'end: "25:00"', 3, "not a time of day"),
        ("severity: high", "severity: urgent", 8, "severity"),
        ("reason: door open", "reason: door {name} open", 11, "unknown placeholder {name}"),
        ("schedule: night", "schedule: nights", 9, "'nights' is not defined"),
        ("    reason: door open\n", "    reason: door open\n    colour: red\n", 12, "unknown field 'colour'"),
        (
            "match: {kinds: [door_open]}",
            "match: {kinds: [door_open], device_kinds: [front_door]}",
            10,
            "unknown device kind 'front_door'",
        ),
    ],
)
def test_check_reports_file_line_and_plain_explanation(
    tmp_path: Path, old: str, new: str, line: int, words: str
) -> None:
    """Each kind of mistake is reported at its line."""
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    problems = check_files([path])
    assert any(p.startswith(f"{path}:{line}: ") and words in p for p in problems), problems


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    """The same id in two files: reported at the second, naming the first."""
    first = write(tmp_path, GOOD, "a.yaml")
    second = write(tmp_path, GOOD, "b.yaml")
    problems = check_files([first, second])
    assert problems == [f"{second}:5: rule id 'door' is used twice (first at {first}:5)"]


def test_never_active_weekday_list(tmp_path: Path) -> None:
    """A schedule with an empty weekday list can never be active."""
    path = write(tmp_path, GOOD.replace('end: "07:00"}', 'end: "07:00", days: []}'))
    assert any(":3: " in p and "never be active" in p for p in check_files([path]))


def test_load_rules_raises_with_every_problem(tmp_path: Path) -> None:
    """load_rules refuses a broken file and lists all problems, not only the first."""
    broken = GOOD.replace("kinds: [door_open]", "kinds: [door_opened]").replace("severity: high", "severity: urgent")
    with pytest.raises(RulesError) as caught:
        load_rules([write(tmp_path, broken)])
    assert isinstance(caught.value, VakaError)
    assert len(caught.value.problems) == 2


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    """Broken YAML is reported where the parser stopped."""
    path = write(tmp_path, GOOD.replace("match: {kinds: [door_open]}", "match: {kinds: [door_open]"))
    problems = check_files([path])
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:11: not valid YAML")


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is a problem, not a crash."""
    assert "cannot read" in check_files([tmp_path / "nope.yaml"])[0]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20m", 1200.0), ("1h30m", 5400.0), ("45 min", 2700.0), ("90s", 90.0), (30, 30.0), ("2h", 7200.0)],
)
def test_durations(text: str | int, seconds: float) -> None:
    """Durations as people write them."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["20 minutes", "0m", "-5", "soon", ""])
def test_bad_durations(text: str) -> None:
    """Anything else is refused."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_schema_describes_the_rule_types() -> None:
    """`vaka schema rules` prints a JSON Schema an editor can use."""
    schema = rules_schema()
    text = json.dumps(schema)
    assert schema["title"] == "Vaka alarm rules"
    for rule_type in ("InstantRule", "SustainedRule", "AbsenceRule", "SequenceRule", "CountRule", "BaselineRule"):
        assert rule_type in text


def test_every_mistake_of_a_file_at_once(tmp_path: Path) -> None:
    """Several mistakes, one of them in a duplicate rule: all reported, in line order, with the rule's id."""
    text = GOOD.replace("severity: high", "severity: urgent") + GOOD.split("rules:\n")[1].replace(
        "reason: door open", "reason: door open\n    cooldown: 20 minutes"
    )
    path = write(tmp_path, text)
    problems = check_files([path])
    assert [p.split(": ", 1)[0] for p in problems] == [f"{path}:8", f"{path}:12", f"{path}:19"]
    assert "rule 'door': severity" in problems[0]
    assert "used twice" in problems[1]
    assert "20 minutes" in problems[2]
