"""Loading and checking rule files: YAML → validated RuleSet, with file:line for every mistake."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from alarms.spec import (
    AbsenceRule,
    BaselineRule,
    CountRule,
    InstantRule,
    Rule,
    RulePack,
    ScheduleSpec,
    SequenceRule,
    SustainedRule,
    describe_error,
)
from hub.model import VakaError

logger = logging.getLogger(__name__)

__all__ = [
    "KNOWN_DEVICE_KINDS",
    "AbsenceRule",
    "BaselineRule",
    "CountRule",
    "InstantRule",
    "Rule",
    "RuleSet",
    "RulesError",
    "SequenceRule",
    "SustainedRule",
    "check_files",
    "default_pack_path",
    "load_rules",
    "rules_schema",
]

KNOWN_DEVICE_KINDS = frozenset(
    {
        "bed_sensor",
        "motion_bedroom",
        "motion_bathroom",
        "motion_hall",
        "presence_bathroom",
        "door_entrance",
        "fall_radar",
        "alarm_button",
        "thermometer",
        "camera",
        "medication_robot",
        "water_sensor",
        "smoke_detector",
    }
)


class RulesError(VakaError):
    """Rule files with mistakes; `problems` holds one "FILE:LINE: explanation" per mistake."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class RuleSet:
    """Validated rules from one or more files, in file order; `schedules` are the named windows."""

    rules: tuple[Rule, ...]
    schedules: dict[str, ScheduleSpec] = field(default_factory=dict)

    @property
    def enabled(self) -> tuple[Rule, ...]:
        """The rules that take part in evaluation."""
        return tuple(rule for rule in self.rules if rule.enabled)

    def get(self, rule_id: str) -> Rule:
        """The rule with this id; KeyError when absent."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def default_pack_path() -> Path:
    """The shipped night-care pack."""
    return Path(__file__).parent / "packs" / "night_care.yaml"


def rules_schema() -> dict[str, object]:
    """JSON Schema of a rules file, for `vaka schema rules` and editors."""
    schema: dict[str, object] = RulePack.model_json_schema(by_alias=True)
    schema["title"] = "Vaka alarm rules"
    return schema


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int:
    """1-based line of the deepest YAML node along a pydantic error location."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child = value if not isinstance(value, yaml.ScalarNode) or part != loc[-1] else key
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        if child is None:
            continue  # union tags ("instant") and similar parts have no node of their own
        node = child
        line = node.start_mark.line + 1
    return line


Parsed = tuple[Path, RulePack | None, yaml.Node | None, dict[str, Any]]


def _where(data: dict[str, Any], loc: Sequence[int | str]) -> str:
    """A readable place for an error: "rule 'door': match.kinds" rather than "rules.0.match.kinds"."""
    parts = [part for part in loc if part not in _RULE_TYPES]
    if len(parts) >= 2 and parts[0] == "rules" and isinstance(parts[1], int):
        rules = data.get("rules")
        rule = rules[parts[1]] if isinstance(rules, list) and parts[1] < len(rules) else None
        name = f"rule {rule['id']!r}" if isinstance(rule, dict) and "id" in rule else f"rule #{parts[1] + 1}"
        rest = ".".join(str(part) for part in parts[2:])
        return f"{name}: {rest}" if rest else name
    return ".".join(str(part) for part in parts) or "file"


def _parse_file(path: Path) -> tuple[Parsed | None, list[tuple[int, str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [(1, f"{path}:1: cannot read the file ({exc.strerror})")]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        return None, [(line, f"{path}:{line}: not valid YAML: {exc.problem}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [(1, f"{path}:1: a rules file is a mapping with `rules:` (and optionally `schedules:`)")]
    try:
        return (path, RulePack.model_validate(data), node, data), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error["loc"]
            line = _line_of(node, loc)
            problems.append((line, f"{path}:{line}: {_where(data, loc)}: {describe_error(dict(error))}"))
        return (path, None, node, data), problems


_RULE_TYPES = frozenset({"instant", "sustained", "absence", "sequence", "count", "baseline"})
_MATCH_FIELDS = ("match", "clear", "cancel", "first", "then")


def _raw_rules(data: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    rules = data.get("rules")
    if not isinstance(rules, list):
        return []
    return [(index, rule) for index, rule in enumerate(rules) if isinstance(rule, dict)]


def _cross_checks(parsed: list[Parsed]) -> dict[Path, list[tuple[int, str]]]:
    """Checks across rules and files, on the raw data so they run even when a rule failed validation."""
    problems: dict[Path, list[tuple[int, str]]] = {}
    seen_ids: dict[str, str] = {}
    seen_schedules: dict[str, tuple[object, str]] = {}
    all_schedules = {str(name) for _, _, _, data in parsed for name in (data.get("schedules") or {})}
    for path, _, node, data in parsed:
        found = problems.setdefault(path, [])
        schedules = data.get("schedules")
        for name, spec in schedules.items() if isinstance(schedules, dict) else ():
            line = _line_of(node, ("schedules", name))
            if name in seen_schedules and seen_schedules[name][0] != spec:
                found.append((line, f"{path}:{line}: schedule {name!r} differs from {seen_schedules[name][1]}"))
            seen_schedules.setdefault(name, (spec, f"{path}:{line}"))
        for index, rule in _raw_rules(data):
            rule_id = rule.get("id")
            line = _line_of(node, ("rules", index, "id"))
            if isinstance(rule_id, str) and rule_id in seen_ids:
                found.append((line, f"{path}:{line}: rule id {rule_id!r} is used twice (first at {seen_ids[rule_id]})"))
            elif isinstance(rule_id, str):
                seen_ids[rule_id] = f"{path}:{line}"
            schedule = rule.get("schedule")
            if isinstance(schedule, str) and schedule not in all_schedules:
                at = _line_of(node, ("rules", index, "schedule"))
                found.append(
                    (at, f"{path}:{at}: rule {rule_id!r}: schedule {schedule!r} is not defined under `schedules`")
                )
            for field_name in _MATCH_FIELDS:
                match = rule.get(field_name)
                kinds = match.get("device_kinds") if isinstance(match, dict) else None
                for kind in kinds if isinstance(kinds, list) else ():
                    if kind not in KNOWN_DEVICE_KINDS:
                        at = _line_of(node, ("rules", index, field_name, "device_kinds"))
                        found.append(
                            (
                                at,
                                f"{path}:{at}: rule {rule_id!r}: {field_name}.device_kinds: unknown device kind {kind!r}",
                            )
                        )
    return problems


def _parse_all(paths: Sequence[Path]) -> tuple[list[Parsed], list[str]]:
    per_file: dict[Path, list[tuple[int, str]]] = {}
    parsed: list[Parsed] = []
    for raw_path in paths:
        path = Path(raw_path)
        result, file_problems = _parse_file(path)
        per_file.setdefault(path, []).extend(file_problems)
        if result is not None:
            parsed.append(result)
    for path, found in _cross_checks(parsed).items():
        per_file.setdefault(path, []).extend(found)
    problems = [text for found in per_file.values() for _, text in sorted(found, key=lambda item: item[0])]
    return parsed, problems


def check_files(paths: Sequence[Path]) -> list[str]:
    """Every mistake in the rule files as "FILE:LINE: plain explanation"; empty when all is well."""
    return _parse_all(paths)[1]


def load_rules(paths: Sequence[Path]) -> RuleSet:
    """Load and validate rule files into one RuleSet; raises RulesError listing every mistake."""
    parsed, problems = _parse_all(paths)
    if problems:
        raise RulesError(problems)
    rules: list[Rule] = []
    schedules: dict[str, ScheduleSpec] = {}
    for _, pack, _, _ in parsed:
        assert pack is not None  # no problems: every file validated
        rules.extend(pack.rules)
        schedules.update(pack.schedules)
    logger.info("rules loaded files=%s rules=%s enabled=%s", len(parsed), len(rules), sum(r.enabled for r in rules))
    return RuleSet(tuple(rules), schedules)


def rule_from_dict(data: dict[str, Any]) -> Rule:
    """Validate one rule given as a dict (tests and tools)."""
    return TypeAdapter(Rule).validate_python(data)
