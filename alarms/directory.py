"""What the engine knows about the homes: devices, residents and their rule profiles. Pure data built by the hub."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_ZONE = "Europe/Stockholm"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device of the inventory as the rules see it."""

    device_id: str
    site: str
    kind: str
    resident_id: str | None = None
    supervision_interval_s: float = 3600.0
    safety: bool = False
    maintenance: bool = False


@dataclass(frozen=True, slots=True)
class RuleOverride:
    """A resident's own setting for one rule; None keeps the pack's value."""

    enabled: bool | None = None
    threshold: float | None = None
    clear_at: float | None = None
    duration_s: float | None = None
    schedule: tuple[str, str] | None = None  # local ("HH:MM", "HH:MM")


@dataclass(frozen=True, slots=True)
class ResidentProfile:
    """A resident's rule profile: away (or in hospital) silences care alarms; overrides are keyed by rule id."""

    resident_id: str
    site: str
    away: bool = False
    night: tuple[str, str] | None = None  # replaces the pack's "night" schedule for this resident
    overrides: Mapping[str, RuleOverride] = field(default_factory=dict)


@dataclass
class Directory:
    """The inventory and profiles the engine evaluates against; the hub replaces it with `Engine.set_directory`."""

    site_zones: dict[str, str] = field(default_factory=dict)
    devices: dict[str, DeviceInfo] = field(default_factory=dict)
    residents: dict[str, ResidentProfile] = field(default_factory=dict)
