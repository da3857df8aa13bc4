"""What the desk knows about sites and staff: units, rooms, safety devices, and who sees what."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from hub.model import Resident, Site
from hub.people.staff import StaffMember

DEFAULT_ZONE = "Europe/Stockholm"


class DeskDirectory:
    """The inventory and staff as the desk needs them, replaced whole on each reload."""

    def __init__(self) -> None:
        self.staff: list[StaffMember] = []
        self._sites: dict[str, Site] = {}
        self._residents: dict[tuple[str, str], Resident] = {}
        self._device_resident: dict[tuple[str, str], str | None] = {}
        self._safety: set[tuple[str, str]] = set()
        self.duty: dict[int, datetime] = {}  # staff id -> end of the shift they signed on to

    def set_sites(self, sites: Iterable[Site]) -> None:
        """Replace the inventory."""
        self._sites = {s.id: s for s in sites}
        self._residents = {(s.id, r.id): r for s in self._sites.values() for r in s.residents}
        self._device_resident = {(s.id, d.id): d.resident for s in self._sites.values() for d in s.devices}
        self._safety = {(s.id, d.id) for s in self._sites.values() for d in s.devices if d.safety}

    def set_staff(self, staff: Iterable[StaffMember]) -> None:
        """Replace the staff directory."""
        self.staff = list(staff)

    def set_duty(self, duty: dict[int, datetime]) -> None:
        """Replace who is signed on to a shift (staff id -> until)."""
        self.duty = dict(duty)

    def on_duty(self, staff: StaffMember, now: datetime) -> bool:
        """True while the person's shift lasts."""
        until = self.duty.get(staff.id)
        return until is not None and until > now

    @property
    def site_count(self) -> int:
        """Sites known."""
        return len(self._sites)

    def site_ids(self) -> list[str]:
        """The ids of the sites of the inventory."""
        return list(self._sites)

    def site(self, site_id: str) -> Site | None:
        """A site of the inventory."""
        return self._sites.get(site_id)

    def zone(self, site_id: str) -> str:
        """The site's time zone."""
        site = self._sites.get(site_id)
        return site.timezone if site else DEFAULT_ZONE

    def resident(self, site: str, resident_id: str | None) -> Resident | None:
        """A resident of the inventory."""
        return self._residents.get((site, resident_id)) if resident_id else None

    def resident_of_device(self, site: str, device_id: str) -> str | None:
        """The id of the resident a device belongs to (None: a shared or unknown device)."""
        return self._device_resident.get((site, device_id))

    def knows_device(self, site: str, device_id: str) -> bool:
        """True when the device is in the inventory."""
        return (site, device_id) in self._device_resident

    def is_safety_device(self, site: str, device_id: str | None) -> bool:
        """True for a fall radar, alarm button, smoke detector … (`devices.safety`)."""
        return device_id is not None and (site, device_id) in self._safety

    def unit_of(self, site: str, resident_id: str | None, device_id: str | None) -> str | None:
        """The unit of the resident, or of the device's resident; None when neither is known."""
        if resident_id is None and device_id is not None:
            resident_id = self._device_resident.get((site, device_id))
        resident = self.resident(site, resident_id)
        return resident.unit if resident else None

    def who_sees(self, site: str, unit: str | None) -> list[StaffMember]:
        """Everyone whose units include this one (unit None: the whole site)."""
        return [s for s in self.staff if s.sees(site, unit)]

    def residents_for(self, staff: StaffMember) -> list[tuple[Site, Resident]]:
        """Residents of this person's units, by site and room."""
        return sorted(
            ((self._sites[site], r) for (site, _), r in self._residents.items() if staff.sees(site, r.unit)),
            key=lambda sr: (sr[0].id, sr[1].room),
        )
