"""A resident's check-in plan: the agreed times (local, with a window), camera or physical per slot, the consent and
care decision it rests on, and the nights the resident opted out of. Read from YAML (`vaka checkin plan FILE`)."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.model import VakaError


class PlanError(VakaError):
    """A plan file with mistakes; the message lists each with its place."""


class Slot(BaseModel):
    """One agreed time, e.g. 02:00 ±15 min by camera."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: time = Field(description="local time of the check-in, HH:MM")
    window_min: int = Field(default=15, ge=1, le=120, description="the task may be done this many minutes either side")
    mode: Literal["camera", "physical"] = Field(default="camera", description="a look by camera or a visit")

    @field_validator("at", mode="before")
    @classmethod
    def _hhmm(cls, value: Any) -> Any:
        if isinstance(value, int):  # YAML reads 23:00 as a sexagesimal int
            return time(value // 60 % 24, value % 60) if value < 24 * 60 else value
        return value


class Plan(BaseModel):
    """One resident's night check-ins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resident: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", description="pseudonymous resident id")
    consent_ref: str = Field(min_length=1, max_length=200, description="the camera consent (resident and co-residents)")
    care_decision_ref: str = Field(
        min_length=1, max_length=200, description="the care decision granting night supervision"
    )
    camera: str | None = Field(default=None, description="the camera device id (required for camera slots)")
    travel_minutes: int = Field(
        default=0, ge=0, le=600, description="one way to the home: a look instead of a visit saves twice this"
    )
    slots: list[Slot] = Field(min_length=1, max_length=24)
    opt_out_nights: list[date] = Field(
        default_factory=list, description="nights (the evening's date) without check-ins"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        if any(s.mode == "camera" for s in self.slots) and not self.camera:
            msg = "camera slots need `camera`: the device id of the resident's camera"
            raise ValueError(msg)
        times = [s.at for s in self.slots]
        if len(set(times)) != len(times):
            msg = "two slots at the same time"
            raise ValueError(msg)
        return self


class PlanFile(BaseModel):
    """The file `vaka checkin plan` reads."""

    model_config = ConfigDict(extra="forbid")

    plans: list[Plan]


def _line_of(node: yaml.Node, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the YAML node at `loc`, as close as the path allows."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
    return node.start_mark.line + 1


def load_plans(path: Path) -> list[Plan]:
    """The plans of a file; PlanError naming `file:line: where: what` for every mistake."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"{path}: cannot read: {exc.strerror}"
        raise PlanError(msg) from exc
    return parse_plans(text, str(path))


def parse_plans(text: str, source: str = "plans") -> list[Plan]:
    """The plans in YAML `text`; PlanError naming `source:line: where: what` for every mistake."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"{source}: not valid YAML: {exc}"
        raise PlanError(msg) from exc
    try:
        return PlanFile.model_validate(data).plans
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            line = _line_of(node, tuple(err["loc"])) if node is not None else 1
            lines.append(f"{source}:{line}: {where}: {err['msg']}")
        raise PlanError("\n".join(lines)) from exc


def dump_plans(plans: list[Plan]) -> str:
    """Plans as the YAML a nurse edits (the same shape `vaka checkin plan` reads)."""
    data = {"plans": [p.model_dump(mode="json", exclude_defaults=True) for p in plans]}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
