"""The simulated population: residents, the devices in each home, and the inventory file that describes them."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from hub.model import Device, Inventory, Resident, Site
from hub.simulation.config import SimConfig


@dataclass(frozen=True, slots=True)
class DeviceKind:
    """How one kind of device behaves: id suffix, supervision, heartbeat period, battery, safety."""

    kind: str
    suffix: str
    supervision_interval_s: int
    safety: bool = False
    battery: bool = True

    @property
    def heartbeat_s(self) -> float:
        """Heartbeat period: half the supervision interval, so two missed heartbeats make a device silent."""
        return self.supervision_interval_s / 2


KINDS: dict[str, DeviceKind] = {
    k.kind: k
    for k in (
        DeviceKind("bed_sensor", "bed", 3600),
        DeviceKind("motion_bedroom", "pir-bed", 1800),
        DeviceKind("motion_bathroom", "pir-bath", 1800),
        DeviceKind("motion_hall", "pir-hall", 1800),
        DeviceKind("presence_bathroom", "pres-bath", 1800),
        DeviceKind("door_entrance", "door", 1800),
        DeviceKind("fall_radar", "radar", 600, safety=True, battery=False),
        DeviceKind("alarm_button", "button", 600, safety=True),
        DeviceKind("thermometer", "temp", 1800),
        DeviceKind("camera", "cam", 1200, battery=False),
        DeviceKind("medication_robot", "robot", 1200),
        DeviceKind("water_sensor", "water", 3600),
        DeviceKind("smoke_detector", "smoke", 600, safety=True),
    )
}
HOME_KINDS = tuple(k for k in KINDS if k != "medication_robot")


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One device in a simulated home."""

    id: str
    kind: DeviceKind
    resident_id: str
    index: int  # position in the simulation's device list


@dataclass(frozen=True, slots=True)
class SimResident:
    """One simulated resident and their devices, by kind."""

    id: str
    room: str
    unit: str
    number: int
    has_robot: bool
    devices: dict[str, SimDevice]


def build_population(config: SimConfig, robot_draws: list[float]) -> list[SimResident]:
    """Create residents r-0001… with rooms A01… and their devices; `robot_draws` decides who has a robot."""
    residents: list[SimResident] = []
    index = 0
    for i in range(config.residents):
        number = config.first_resident + i
        unit_no, slot = divmod(i, config.residents_per_unit)
        letter = _unit_letters(unit_no)
        rid = f"r-{number:04d}"
        has_robot = robot_draws[i] < config.robot_share
        devices: dict[str, SimDevice] = {}
        for kind_name in (*HOME_KINDS, "medication_robot") if has_robot else HOME_KINDS:
            kind = KINDS[kind_name]
            devices[kind_name] = SimDevice(f"{config.site}-r{number:04d}-{kind.suffix}", kind, rid, index)
            index += 1
        residents.append(
            SimResident(rid, f"{letter}{slot + 1:02d}", f"unit-{letter.lower()}", number, has_robot, devices)
        )
    return residents


def _unit_letters(n: int) -> str:
    letters = string.ascii_uppercase
    return letters[n] if n < len(letters) else letters[n // len(letters) - 1] + letters[n % len(letters)]


def build_inventory(config: SimConfig, residents: list[SimResident]) -> Inventory:
    """The inventory matching the simulated site, valid for `vaka site load`."""
    site = Site(
        id=config.site,
        name=config.site_name,
        timezone=config.timezone,
        residents=[Resident(id=r.id, room=r.room, unit=r.unit) for r in residents],
        devices=[
            Device(
                id=d.id,
                kind=d.kind.kind,
                vendor="native",
                resident=r.id,
                supervision_interval_s=d.kind.supervision_interval_s,
                safety=d.kind.safety,
            )
            for r in residents
            for d in r.devices.values()
        ],
    )
    return Inventory(sites=[site])


def write_inventory(inventory: Inventory, path: Path) -> None:
    """Write the inventory as YAML."""
    text = yaml.safe_dump(inventory.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
