"""A small care unit for rule tests: one resident with every device kind, and helpers to replay a night."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from alarms.directory import DeviceInfo, Directory, ResidentProfile, RuleOverride
from alarms.engine import Engine
from alarms.rules import RuleSet, default_pack_path, load_rules
from hub.model import AlarmDecision, DecisionAction, Event, EventKind

SITE = "unit1"
RESIDENT = "r1"
PACK: RuleSet = load_rules([default_pack_path()])

DEVICE_KINDS = {
    "bed": "bed_sensor",
    "mot": "motion_bedroom",
    "hall": "motion_hall",
    "bath": "presence_bathroom",
    "door": "door_entrance",
    "radar": "fall_radar",
    "button": "alarm_button",
    "thermo": "thermometer",
    "cam": "camera",
    "robot": "medication_robot",
    "water": "water_sensor",
    "smoke": "smoke_detector",
}
SAFETY = {"radar", "button", "smoke"}


def directory(
    *,
    away: bool = False,
    maintenance: Iterable[str] = (),
    overrides: dict[str, RuleOverride] | None = None,
    night: tuple[str, str] | None = None,
    zone: str = "Europe/Stockholm",
    supervision_s: float = 24 * 3600,
) -> Directory:
    """One resident with one device of every kind (device id = short name)."""
    devices = {
        name: DeviceInfo(
            name, SITE, kind, RESIDENT, supervision_s, safety=name in SAFETY, maintenance=name in maintenance
        )
        for name, kind in DEVICE_KINDS.items()
    }
    profile = ResidentProfile(RESIDENT, SITE, away=away, night=night, overrides=overrides or {})
    return Directory(site_zones={SITE: zone}, devices=devices, residents={RESIDENT: profile})


def local(text: str, zone: str = "Europe/Stockholm") -> datetime:
    """An aware UTC datetime from local "YYYY-MM-DD HH:MM" in `zone`."""
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def ev(at: datetime, device: str, kind: EventKind | str, value: float | None = None, **extra: Any) -> Event:
    """An event from one of the home's devices (or any other device id)."""
    return Event(ts=at, site=SITE, device_id=device, kind=EventKind(kind), value=value, **extra)


def run(
    engine: Engine, events: Iterable[Event], until: datetime | None = None, *, close: bool = False
) -> list[AlarmDecision]:
    """Feed events in order (now = ts), then tick to `until`; `close` closes each alarm right after it is raised."""
    out: list[AlarmDecision] = []
    for event in events:
        out += engine.feed(event, event.ts)
    if until is not None:
        out += engine.tick(until)
    if close:
        for decision in out:
            if decision.action is DecisionAction.RAISE:
                engine.alarm_closed(decision.key, decision.at)
    return out


def fresh(start: datetime, directory_: Directory | None = None, rules: RuleSet = PACK) -> Engine:
    """An engine whose watching starts at `start`."""
    engine = Engine(rules, directory_ or directory())
    engine.tick(start)
    return engine


def care(decisions: Iterable[AlarmDecision]) -> list[tuple[str, str]]:
    """(action, key) of decisions, ignoring device supervision."""
    return [(d.action.value, d.key) for d in decisions if d.rule_id != "device_silent"]


def with_rule(rule_id: str, **changes: Any) -> RuleSet:
    """The default pack with one rule changed."""
    rules = tuple(replace_rule(r, **changes) if r.id == rule_id else r for r in PACK.rules)
    return replace(PACK, rules=rules)


def replace_rule(rule: Any, **changes: Any) -> Any:
    """A pydantic rule with fields changed."""
    return rule.model_copy(update=changes)


T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
__all__ = ["T0", "timedelta"]
