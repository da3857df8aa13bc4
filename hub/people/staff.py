"""Staff: who answers alarms, their role and the care units they work in (the model; no database, no hashing).

Storage and passwords live in `hub.store.staff`, login sessions in `hub.web.staff.sessions`, `vaka staff add` in
`hub.cli`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from hub.model import VakaError

ALL_UNITS = "*"


class StaffError(VakaError):
    """A staff account cannot be created or changed as asked."""


class Role(enum.StrEnum):
    """What a person may do: staff answer alarms, nurses are escalated to, admins lead the team, managers read the
    follow-up of their units (no alarms, no residents)."""

    STAFF = "staff"
    NURSE = "nurse"
    ADMIN = "admin"
    MANAGER = "manager"


@dataclass(frozen=True, slots=True)
class StaffMember:
    """One person who answers alarms, with the care units they work in (`(site, unit)`, unit `*` for all)."""

    id: int
    username: str
    role: Role
    units: frozenset[tuple[str, str]]
    display_name: str = ""
    phone: str | None = None
    lang: str = "sv"

    @property
    def label(self) -> str:
        """The name other staff see on an alarm they have taken."""
        return self.display_name or self.username

    def sees(self, site: str, unit: str | None) -> bool:
        """True when an alarm or resident of this site and unit is theirs; unit None means the whole site.

        Managers follow their units up in aggregate (the follow-up page) and never see an alarm or a resident.
        """
        if self.role is Role.MANAGER:
            return False
        if unit is None:
            return any(s == site for s, _ in self.units)
        return (site, unit) in self.units or (site, ALL_UNITS) in self.units

    def holds(self, site: str, unit: str) -> bool:
        """True when (site, unit) lies within the units this person holds; unit `*` (the whole site) only when she
        holds the whole site. The one authorisation rule: a person grants, sees or acts only within what she holds."""
        if unit == ALL_UNITS:
            return (site, ALL_UNITS) in self.units
        return (site, unit) in self.units or (site, ALL_UNITS) in self.units

    def within_mine(self, wanted: frozenset[tuple[str, str]]) -> frozenset[tuple[str, str]]:
        """The units asked for, each within mine: a wildcard `site/*` is expanded against my own units of that site
        (never the site's); StaffError for anything outside them, so nothing is widened by writing `*`."""
        out: set[tuple[str, str]] = set()
        for site, unit in wanted:
            if self.holds(site, unit):
                out.add((site, unit))
                continue
            mine = {(s, u) for s, u in self.units if s == site} if unit == ALL_UNITS else set()
            if not mine:
                msg = f"{site}/{unit} is not one of your units"
                raise StaffError(msg)
            out |= mine
        return frozenset(out)

    def may_manage(self, other_units: frozenset[tuple[str, str]], other_role: Role) -> bool:
        """A nurse manages staff and nurses whose every unit she holds; an admin anyone whose every unit he holds;
        an admin or manager account takes an admin. Managers and staff manage no one."""
        if self.role not in (Role.NURSE, Role.ADMIN):
            return False
        if other_role in (Role.ADMIN, Role.MANAGER) and self.role is not Role.ADMIN:
            return False
        return bool(other_units) and all(self.holds(site, unit) for site, unit in other_units)

    def shares_a_unit(self, other_units: frozenset[tuple[str, str]]) -> bool:
        """True when the other person works in one of my units (she is listed on my admin page)."""
        return any(
            self.holds(site, unit) or (unit == ALL_UNITS and any(s == site for s, _ in self.units))
            for site, unit in other_units
        )

    @property
    def sites(self) -> frozenset[str]:
        """Sites this person works at."""
        return frozenset(s for s, _ in self.units)

    def as_row(self) -> tuple[Any, ...]:
        """The member as plain values (the hub's local copies on disk keep it so); `from_row` reads it back."""
        return (self.id, self.username, self.role.value, sorted(self.units), self.display_name, self.phone, self.lang)

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | list[Any]) -> StaffMember:
        """Inverse of `as_row`."""
        sid, username, role, units, display_name, phone, lang = row
        return cls(
            id=int(sid),
            username=str(username),
            role=Role(role),
            units=frozenset((str(site), str(unit)) for site, unit in units),
            display_name=str(display_name),
            phone=phone,
            lang=str(lang),
        )
