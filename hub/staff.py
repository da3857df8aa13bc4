"""Staff: who answers alarms, their role and the care units they work in (the model; no database, no hashing).

Storage and passwords live in `hub.store.staff`, login sessions in `hub.web.staff.sessions`, `vaka staff add` in
`hub.cli`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

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

    @property
    def sites(self) -> frozenset[str]:
        """Sites this person works at."""
        return frozenset(s for s, _ in self.units)
