"""Loading and checking rule files: YAML → validated RuleSet, with file:line for every mistake."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from alarms.directory import ResidentProfile, RuleOverride
from alarms.spec import (
    AbsenceRule,
    BaselineRule,
    CountRule,
    InstantRule,
    Rule,
    RulePack,
    RuleProfile,
    ScheduleSpec,
    SequenceRule,
    SustainedRule,
    describe_error,
)
from hub.model import AlarmCategory, VakaError

logger = logging.getLogger(__name__)

__all__ = [
    "KNOWN_DEVICE_KINDS",
    "AbsenceRule",
    "BaselineRule",
    "CountRule",
    "InstantRule",
    "Rule",
    "RuleProfile",
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
    """Validated rules from one or more files, in file order; `schedules` are the named windows, `profiles` the named
    per-resident changes a nurse assigns."""

    rules: tuple[Rule, ...]
    schedules: dict[str, ScheduleSpec] = field(default_factory=dict)
    profiles: dict[str, RuleProfile] = field(default_factory=dict)

    @property
    def enabled(self) -> tuple[Rule, ...]:
        """The rules on for every resident."""
        return tuple(rule for rule in self.rules if rule.enabled)

    @property
    def live(self) -> tuple[Rule, ...]:
        """The rules that take part in evaluation: those on, and those a profile turns on for its residents."""
        switched_on = {rule_id for p in self.profiles.values() for rule_id, t in p.rules.items() if t.enabled}
        return tuple(rule for rule in self.rules if rule.enabled or rule.id in switched_on)

    def resident_profile(
        self, resident_id: str, site: str, *, away: bool = False, profile: str | None = None
    ) -> ResidentProfile:
        """What the engine needs of a resident: away, and the night hours and rule overrides of their profile (none
        when `profile` is None or not one of these packs)."""
        found = self.profiles.get(profile) if profile is not None else None
        if found is None:
            return ResidentProfile(resident_id=resident_id, site=site, away=away)
        overrides = {
            rule_id: RuleOverride(
                enabled=t.enabled,
                threshold=t.threshold,
                clear_at=t.clear_at,
                duration_s=t.within if t.within is not None else t.for_,
                schedule=t.schedule.pair if t.schedule is not None else None,
            )
            for rule_id, t in found.rules.items()
        }
        night = found.night.pair if found.night is not None else None
        return ResidentProfile(resident_id=resident_id, site=site, away=away, night=night, overrides=overrides)

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


def _key_line(node: yaml.Node | None, loc: Sequence[int | str]) -> int:
    """1-based line of the mapping key that ends `loc` (where a profile is named, not where its body starts)."""
    for part in loc[:-1]:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
    if isinstance(node, yaml.MappingNode):
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(loc[-1]):
                return int(key.start_mark.line) + 1
    return _line_of(node, loc[-1:])


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
    if len(parts) >= 2 and parts[0] == "profiles" and parts[-1] == "[key]":
        return f"profile name {parts[1]!r}"
    if len(parts) >= 2 and parts[0] == "profiles":
        rest = ".".join(str(part) for part in parts[2:])
        return f"profile {parts[1]!r}: {rest}" if rest else f"profile {parts[1]!r}"
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


def _tuning_problems(rule: Rule, tuning: dict[str, Any]) -> list[tuple[str | None, str]]:
    """What a profile may not change in `rule`: (the field at fault or None for the rule, the explanation)."""
    if rule.category is not AlarmCategory.CARE:
        return [(None, "is technical: profiles change care rules only (technical alarms go to operations)")]
    problems: list[tuple[str | None, str]] = []
    if tuning.get("enabled") is False and rule.severity == "critical":
        problems.append(("enabled", "cannot be turned off for a resident: the rule raises critical alarms"))
    valued = rule if isinstance(rule, InstantRule | SustainedRule) else None
    if "threshold" in tuning and (valued is None or valued.match.value is None):
        problems.append(
            ("threshold", "the rule compares no value (only an instant or sustained rule with `match.value`)")
        )
    if "clear_at" in tuning and (valued is None or valued.clear is None or valued.clear.value is None):
        problems.append(("clear_at", "the rule has no `clear.value` to replace"))
    has_within = isinstance(rule, SequenceRule | CountRule) or (
        isinstance(rule, AbsenceRule) and isinstance(rule.within, float)
    )
    if "within" in tuning and not has_within:
        hint = " (a sustained rule has `for`)" if isinstance(rule, SustainedRule) else ""
        problems.append(("within", f"the rule has no `within` to replace{hint}"))
    if "for" in tuning and not isinstance(rule, SustainedRule):
        problems.append(("for", "the rule has no `for` to replace (only a sustained rule has one)"))
    scheduled = isinstance(rule, InstantRule | SequenceRule | CountRule) or (
        isinstance(rule, AbsenceRule) and rule.window is not None
    )
    if "schedule" in tuning and not scheduled:
        problems.append(("schedule", f"a {rule.type} rule keeps the pack's schedule for every resident"))
    return problems


def _profile_checks(parsed: list[Parsed]) -> dict[Path, list[tuple[int, str]]]:
    """Profiles against the rules of every file: known care rules, and only what each rule has to change."""
    problems: dict[Path, list[tuple[int, str]]] = {}
    rules = {rule.id: rule for _, pack, _, _ in parsed if pack is not None for rule in pack.rules}
    raw_ids = {rule.get("id") for _, _, _, data in parsed for _, rule in _raw_rules(data)}
    seen: dict[str, str] = {}
    for path, _, node, data in parsed:
        found = problems.setdefault(path, [])
        profiles = data.get("profiles")
        for name, spec in profiles.items() if isinstance(profiles, dict) else ():
            line = _key_line(node, ("profiles", name))
            if name in seen:
                found.append((line, f"{path}:{line}: profile {name!r} is defined twice (first at {seen[name]})"))
            seen.setdefault(str(name), f"{path}:{line}")
            tunings = spec.get("rules") if isinstance(spec, dict) else None
            for rule_id, tuning in tunings.items() if isinstance(tunings, dict) else ():
                at = _key_line(node, ("profiles", name, "rules", rule_id))
                if rule_id not in raw_ids:
                    found.append((at, f"{path}:{at}: profile {name!r}: no rule {rule_id!r} in the rule files"))
                    continue
                rule = rules.get(rule_id)
                if rule is None or not isinstance(tuning, dict):
                    continue  # the rule's own mistakes (or the tuning's shape) are reported already
                for field_name, text in _tuning_problems(rule, tuning):
                    loc = ("profiles", name, "rules", rule_id) + ((field_name,) if field_name else ())
                    at = _line_of(node, loc)
                    what = f"rule {rule_id!r}: {field_name}: {text}" if field_name else f"rule {rule_id!r} {text}"
                    found.append((at, f"{path}:{at}: profile {name!r}: {what}"))
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
    for checks in (_cross_checks(parsed), _profile_checks(parsed)):
        for path, found in checks.items():
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
    profiles: dict[str, RuleProfile] = {}
    for _, pack, _, _ in parsed:
        assert pack is not None  # no problems: every file validated
        rules.extend(pack.rules)
        schedules.update(pack.schedules)
        profiles.update(pack.profiles)
    logger.info(
        "rules loaded files=%s rules=%s enabled=%s profiles=%s",
        len(parsed),
        len(rules),
        sum(r.enabled for r in rules),
        len(profiles),
    )
    return RuleSet(tuple(rules), schedules, profiles)


def rule_from_dict(data: dict[str, Any]) -> Rule:
    """Validate one rule given as a dict (tests and tools)."""
    return TypeAdapter(Rule).validate_python(data)
