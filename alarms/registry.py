"""Which evaluator compiles which rule type: the one place that knows every rule module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alarms.absence import DailyAbsenceEval, SilenceEval
from alarms.base import Compiled
from alarms.count import CountEval
from alarms.instant import InstantEval
from alarms.sequence import SequenceEval
from alarms.spec import (
    AbsenceRule,
    BaselineRule,
    CountRule,
    InstantRule,
    Rule,
    ScheduleSpec,
    SequenceRule,
    SustainedRule,
)
from alarms.sustained import SustainedEval
from alarms.windows import BaselineEval


def _absence(rule: AbsenceRule, schedules: dict[str, ScheduleSpec]) -> Compiled:
    return DailyAbsenceEval(rule, schedules) if rule.window else SilenceEval(rule, schedules)


EVALUATORS: dict[type, Callable[[Any, dict[str, ScheduleSpec]], Compiled]] = {
    InstantRule: InstantEval,
    SustainedRule: SustainedEval,
    SequenceRule: SequenceEval,
    CountRule: CountEval,
    AbsenceRule: _absence,
    BaselineRule: BaselineEval,
}


def compile_rule(rule: Rule, schedules: dict[str, ScheduleSpec]) -> Compiled:
    """The evaluator for one validated rule."""
    return EVALUATORS[type(rule)](rule, schedules)
