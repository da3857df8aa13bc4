"""The inventory as the other parts need it: the engine's Directory, and devices by id for ingest."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from alarms.directory import DeviceInfo, Directory, ResidentProfile
from alarms.rules import RuleSet
from hub.model import Device, Site

logger = logging.getLogger(__name__)


def build_directory(
    sites: Sequence[Site], rules: RuleSet | None = None, profiles: Mapping[str, str] | None = None
) -> Directory:
    """The rule engine's view of the sites: zones, devices with their supervision, resident profiles.

    `profiles` names each resident's rule profile (`resident_rule_profiles`); `rules` holds what the names mean. A name
    the loaded packs do not define leaves the pack's values for that resident, with a warning.
    """
    directory = Directory()
    profiles = profiles or {}
    for site in sites:
        directory.site_zones[site.id] = site.timezone
        for device in site.devices:
            directory.devices[device.id] = DeviceInfo(
                device_id=device.id,
                site=site.id,
                kind=device.kind,
                resident_id=device.resident,
                supervision_interval_s=float(device.supervision_interval_s),
                safety=device.safety,
                maintenance=device.maintenance,
            )
        for resident in site.residents:
            name = profiles.get(resident.id)
            if name is not None and (rules is None or name not in rules.profiles):
                logger.warning(
                    "rule profile %r of resident %s is not in the loaded rule packs: the pack's values apply",
                    name,
                    resident.id,
                )
            if rules is None:
                directory.residents[resident.id] = ResidentProfile(resident.id, site.id, away=resident.away)
            else:
                directory.residents[resident.id] = rules.resident_profile(
                    resident.id, site.id, away=resident.away, profile=name
                )
    return directory


def devices_by_id(sites: Sequence[Site]) -> dict[str, Device]:
    """Every device of every site, by id."""
    return {device.id: device for site in sites for device in site.devices}
