"""The rule file format: pydantic models for a pack of declarative alarm rules (validated, JSON Schema exported)."""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from alarms.schedule import WEEKDAYS, compile_schedule, parse_hhmm
from hub.model import AlarmCategory, EventKind, Severity

_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*(?:m|min))?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$"
)
REASON_FIELDS = frozenset({"minutes", "value", "count", "device_kind"})
SEVERITY_NAMES = {"low": Severity.LOW, "medium": Severity.MEDIUM, "high": Severity.HIGH, "critical": Severity.CRITICAL}


def parse_duration(raw: object) -> float:
    """Seconds from "20m", "1h30m", "45 min", "30s" or a plain number of seconds; ValueError when not positive."""
    if isinstance(raw, bool):
        msg = "a duration like 20m, 1h or 90s"
        raise ValueError(msg)
    if isinstance(raw, int | float):
        seconds = float(raw)
    elif isinstance(raw, str) and (found := _DURATION.match(raw)) and any(found.groups()):
        hours, minutes, secs = (float(part) if part else 0.0 for part in found.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        msg = f"{raw!r} is not a duration; write it like 20m, 1h30m or 90s"
        raise ValueError(msg)
    if seconds <= 0:
        msg = f"{raw!r}: a duration must be longer than zero"
        raise ValueError(msg)
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": ["string", "number"], "description": 'e.g. "20m", "1h30m", "90s" or seconds'}),
]
SeverityName = Literal["low", "medium", "high", "critical"]
_ID = r"^[a-z][a-z0-9_]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Window(_Strict):
    """Local start and end times "HH:MM" (24:00 allowed) that must differ; `_noun` names it in errors."""

    _noun: ClassVar[str] = "window"

    start: str = Field(description='local start time "HH:MM"')
    end: str = Field(description='local end time "HH:MM" (24:00 allowed)')

    @field_validator("start", "end")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        parse_hhmm(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if parse_hhmm(self.start) == parse_hhmm(self.end):
            msg = f"{self._noun} {self.start}–{self.end} can never be active: start and end are the same time"
            raise ValueError(msg)
        return self


class ScheduleSpec(_Window):
    """A daily window of local wall-clock time; may cross midnight (22:00–07:00)."""

    _noun: ClassVar[str] = "schedule"

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = Field(
        default=None, description="weekdays the window starts on; all when left out"
    )

    @model_validator(mode="after")
    def _some_weekday(self) -> ScheduleSpec:
        if compile_schedule(self.start, self.end, self.days).never_active:
            msg = f"schedule {self.start}–{self.end} can never be active: no weekday given (use {', '.join(WEEKDAYS)})"
            raise ValueError(msg)
        return self


class ValueTest(_Strict):
    """A comparison on the event's numeric value; exactly one operator."""

    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None
    eq: float | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> ValueTest:
        given = [name for name in ("lt", "le", "gt", "ge", "eq") if getattr(self, name) is not None]
        if len(given) != 1:
            msg = "give exactly one of lt, le, gt, ge, eq"
            raise ValueError(msg)
        return self

    @property
    def operator(self) -> tuple[str, float]:
        """(operator name, threshold)."""
        for name in ("lt", "le", "gt", "ge", "eq"):
            bound = getattr(self, name)
            if bound is not None:
                return name, float(bound)
        raise AssertionError  # pragma: no cover - validated above


class Match(_Strict):
    """Which events a rule looks at: event kinds, optionally device kinds, a value test and attribute equalities."""

    kinds: list[EventKind] | None = Field(default=None, min_length=1, description="event kinds; any kind when left out")
    device_kinds: list[str] | None = Field(default=None, min_length=1, description="inventory device kinds")
    value: ValueTest | None = None
    attrs: dict[str, str | int | float | bool] = Field(default_factory=dict, description="attribute equalities")


class _RuleBase(_Strict):
    id: str = Field(pattern=_ID, description="stable rule id; alarm keys are {id}:{subject}")
    description: str = Field(default="", description="what the rule is for, for the nurse editing profiles")
    enabled: bool = True
    category: AlarmCategory = Field(description="care alarms go to the patrol, technical to operations")
    severity: SeverityName
    safety_severity: SeverityName | None = Field(
        default=None, description="severity when the device is a safety device"
    )
    subject: Literal["resident", "device"] = Field(
        default="resident", description="one alarm per resident (device when unassigned) or per device"
    )
    schedule: str | ScheduleSpec | None = Field(default=None, description="name from `schedules` or an inline window")
    cooldown: Duration = Field(default=0.0, description="after the alarm is closed, no new one for this long")
    reason: str = Field(min_length=1, max_length=120, description="what the night nurse reads")
    clear_reason: str = Field(default="condition cleared", max_length=120)
    auto_close: bool = Field(
        default=False,
        description=(
            "technical rules only: a clear or device-side cancel closes the alarm while nobody has taken it; "
            "a care alarm is always closed by a person"
        ),
    )

    @model_validator(mode="after")
    def _auto_close_is_technical(self) -> Any:
        if self.auto_close and self.category is not AlarmCategory.TECHNICAL:
            msg = "auto_close is allowed for technical rules only: a care alarm is closed by a person"
            raise ValueError(msg)
        return self

    @field_validator("reason", "clear_reason")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        for _, name, _, _ in string.Formatter().parse(value):
            if name is not None and name not in REASON_FIELDS:
                msg = f"unknown placeholder {{{name}}}; use one of {sorted(REASON_FIELDS)}"
                raise ValueError(msg)
        return value

    @property
    def severity_level(self) -> Severity:
        """The severity as the enum."""
        return SEVERITY_NAMES[self.severity]


class InstantRule(_RuleBase):
    """An event of a kind raises at once; `clear` and `cancel` end it."""

    type: Literal["instant"]
    match: Match
    clear: Match | None = Field(default=None, description="events that clear the condition (door closed)")
    cancel: Match | None = Field(default=None, description="device-side cancels (same ref when both carry one)")
    cancel_reason: str = Field(default="cancelled at the device", max_length=120)


class SustainedRule(_RuleBase):
    """A condition that holds for at least `for`; clears with hysteresis on `clear`."""

    type: Literal["sustained"]
    match: Match
    clear: Match | None = Field(default=None, description="hysteresis: what ends the condition; default: not `match`")
    for_: Duration = Field(alias="for", description="how long the condition must hold")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AbsenceRule(_RuleBase):
    """No matching event within a daily `window`, or within `within` after the last one (per device: supervision)."""

    type: Literal["absence"]
    match: Match = Field(default_factory=Match)
    window: ScheduleSpec | None = Field(default=None, description="daily window that needs a matching event")
    within: Duration | Literal["supervision"] | None = Field(
        default=None, description="longest allowed silence; `supervision` uses the device's interval"
    )

    @model_validator(mode="after")
    def _window_or_within(self) -> AbsenceRule:
        if (self.window is None) == (self.within is None):
            msg = "an absence rule needs exactly one of `window` or `within`"
            raise ValueError(msg)
        if self.within == "supervision" and self.subject != "device":
            msg = "`within: supervision` needs `subject: device`"
            raise ValueError(msg)
        return self


class SequenceRule(_RuleBase):
    """`first` not followed by `then` within `within` (bed exit without return)."""

    type: Literal["sequence"]
    first: Match
    then: Match
    within: Duration


class CountRule(_RuleBase):
    """At least `count` matching events within `within`."""

    type: Literal["count"]
    match: Match
    count: int = Field(ge=2, le=10_000)
    within: Duration


class BaselineRule(_RuleBase):
    """A resident's matching events in an hour bucket deviate from their own last days by z >= `z`."""

    type: Literal["baseline"]
    match: Match
    history_days: int = Field(default=14, ge=3, le=60)
    min_days: int = Field(default=7, ge=2, le=60)
    z: float = Field(default=3.0, gt=0)
    min_std: float = Field(default=1.0, gt=0, description="floor of the standard deviation, against quiet baselines")


Rule = Annotated[
    InstantRule | SustainedRule | AbsenceRule | SequenceRule | CountRule | BaselineRule, Field(discriminator="type")
]


class DailyWindow(_Window):
    """A daily window of local wall-clock time for one resident (every day; may cross midnight)."""

    @property
    def pair(self) -> tuple[str, str]:
        """(start, end) as the engine's `ResidentProfile` takes it."""
        return self.start, self.end


class RuleTuning(_Strict):
    """What a profile changes in one rule for the residents who have it; a field left out keeps the pack's value."""

    enabled: bool | None = Field(
        default=None, description="turn the rule on (also one the pack leaves off) or off for the resident"
    )
    threshold: float | None = Field(default=None, description="replaces the number in the rule's `match.value`")
    clear_at: float | None = Field(default=None, description="replaces the number in the rule's `clear.value`")
    within: Duration | None = Field(default=None, description="replaces `within` (sequence, count, absence)")
    for_: Duration | None = Field(default=None, alias="for", description="replaces `for` (sustained)")
    schedule: DailyWindow | None = Field(
        default=None, description="when the rule may raise; for an absence rule with `window`, the window"
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _changes_something(self) -> RuleTuning:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            msg = "says nothing to change: give enabled, threshold, clear_at, within, for or schedule"
            raise ValueError(msg)
        return self


class RuleProfile(_Strict):
    """A named set of changes to the pack's care rules that a nurse assigns to a resident (`vaka resident profile`,
    the admin page): night hours, durations, thresholds, which rules are on."""

    description: str = Field(default="", max_length=300, description="what the profile is for, for the nurse")
    night: DailyWindow | None = Field(
        default=None, description="replaces the pack's `night` schedule for every rule that uses it"
    )
    rules: dict[str, RuleTuning] = Field(default_factory=dict, description="rule id -> what changes")

    @model_validator(mode="after")
    def _changes_something(self) -> RuleProfile:
        if self.night is None and not self.rules:
            msg = "a profile changes something: give `night` or `rules`"
            raise ValueError(msg)
        return self


class RulePack(_Strict):
    """One rules file: named schedules, a list of rules and named profiles of per-resident changes."""

    version: Literal[1] = 1
    schedules: dict[str, ScheduleSpec] = Field(default_factory=dict, description="named local windows, e.g. night")
    rules: list[Rule] = Field(default_factory=list)
    profiles: dict[Annotated[str, Field(pattern=_ID)], RuleProfile] = Field(
        default_factory=dict, description="profile name -> what it changes for the residents who have it"
    )


def describe_error(error: dict[str, Any]) -> str:
    """A pydantic error as one plain sentence."""
    message = str(error.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    if error.get("type") == "enum" and "expected" in error.get("ctx", {}):
        return f"unknown kind {error.get('input')!r}"
    if error.get("type") == "extra_forbidden":
        return f"unknown field {error['loc'][-1]!r}"
    if error.get("type") == "string_pattern_mismatch" and error["loc"][-1:] == ("[key]",):
        return "a name is lower-case letters, digits and '_', starting with a letter (like wanders_at_night)"
    if error.get("type") == "missing":
        return f"missing field {error['loc'][-1]!r}"
    return message
