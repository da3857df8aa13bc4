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
    Match,
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


def _parse_file(path: Path) -> tuple[RulePack | None, yaml.Node | None, list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, None, [f"{path}:1: cannot read the file ({exc.strerror})"]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        return None, None, [f"{path}:{line}: not valid YAML: {exc.problem}"]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, node, [f"{path}:1: a rules file is a mapping with `rules:` (and optionally `schedules:`)"]
    try:
        return RulePack.model_validate(data), node, []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error["loc"]
            where = ".".join(str(part) for part in loc if part not in _RULE_TYPES)
            problems.append(f"{path}:{_line_of(node, loc)}: {where}: {describe_error(dict(error))}")
        return None, node, problems


_RULE_TYPES = frozenset({"instant", "sustained", "absence", "sequence", "count", "baseline"})


def _matches_of(rule: Rule) -> list[tuple[str, Match]]:
    found: list[tuple[str, Match]] = []
    for name in ("match", "clear", "cancel", "first", "then"):
        value = getattr(rule, name, None)
        if isinstance(value, Match):
            found.append((name, value))
    return found


def _cross_checks(packs: list[tuple[Path, RulePack, yaml.Node | None]]) -> list[str]:
    problems: list[str] = []
    seen_ids: dict[str, str] = {}
    seen_schedules: dict[str, tuple[ScheduleSpec, str]] = {}
    all_schedules = {name for _, pack, _ in packs for name in pack.schedules}
    for path, pack, node in packs:
        for name, spec in pack.schedules.items():
            line = _line_of(node, ("schedules", name))
            if name in seen_schedules and seen_schedules[name][0] != spec:
                problems.append(f"{path}:{line}: schedule {name!r} differs from {seen_schedules[name][1]}")
            seen_schedules.setdefault(name, (spec, f"{path}:{line}"))
        for index, rule in enumerate(pack.rules):
            line = _line_of(node, ("rules", index, "id"))
            if rule.id in seen_ids:
                problems.append(f"{path}:{line}: rule id {rule.id!r} is used twice (first at {seen_ids[rule.id]})")
            else:
                seen_ids[rule.id] = f"{path}:{line}"
            if isinstance(rule.schedule, str) and rule.schedule not in all_schedules:
                at = _line_of(node, ("rules", index, "schedule"))
                problems.append(f"{path}:{at}: schedule {rule.schedule!r} is not defined under `schedules`")
            for field_name, match in _matches_of(rule):
                for kind in match.device_kinds or ():
                    if kind not in KNOWN_DEVICE_KINDS:
                        at = _line_of(node, ("rules", index, field_name, "device_kinds"))
                        problems.append(
                            f"{path}:{at}: rules.{index}.{field_name}.device_kinds: unknown device kind {kind!r}"
                        )
    return problems


def _parse_all(paths: Sequence[Path]) -> tuple[list[tuple[Path, RulePack, yaml.Node | None]], list[str]]:
    problems: list[str] = []
    packs: list[tuple[Path, RulePack, yaml.Node | None]] = []
    for path in paths:
        pack, node, file_problems = _parse_file(Path(path))
        problems.extend(file_problems)
        if pack is not None:
            packs.append((Path(path), pack, node))
    problems.extend(_cross_checks(packs))
    return packs, problems


def check_files(paths: Sequence[Path]) -> list[str]:
    """Every mistake in the rule files as "FILE:LINE: plain explanation"; empty when all is well."""
    return _parse_all(paths)[1]


def load_rules(paths: Sequence[Path]) -> RuleSet:
    """Load and validate rule files into one RuleSet; raises RulesError listing every mistake."""
    packs, problems = _parse_all(paths)
    if problems:
        raise RulesError(problems)
    rules: list[Rule] = []
    schedules: dict[str, ScheduleSpec] = {}
    for _, pack, _ in packs:
        rules.extend(pack.rules)
        schedules.update(pack.schedules)
    logger.info("rules loaded files=%s rules=%s enabled=%s", len(packs), len(rules), sum(r.enabled for r in rules))
    return RuleSet(tuple(rules), schedules)


def rule_from_dict(data: dict[str, Any]) -> Rule:
    """Validate one rule given as a dict (tests and tools)."""
    return TypeAdapter(Rule).validate_python(data)
