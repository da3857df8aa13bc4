"""The inventory as the other parts need it: the engine's Directory, and devices by id for ingest."""

from __future__ import annotations

from collections.abc import Sequence

from alarms.directory import DeviceInfo, Directory, ResidentProfile
from hub.model import Device, Site


def build_directory(sites: Sequence[Site]) -> Directory:
    """The rule engine's view of the sites: zones, devices with their supervision, resident profiles."""
    directory = Directory()
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
            directory.residents[resident.id] = ResidentProfile(
                resident_id=resident.id, site=site.id, away=resident.away
            )
    return directory


def devices_by_id(sites: Sequence[Site]) -> dict[str, Device]:
    """Every device of every site, by id."""
    return {device.id: device for site in sites for device in site.devices}
