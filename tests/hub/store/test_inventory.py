"""The inventory's history: installation and removal days kept across loads, and a device taken away no longer
supervised."""

from __future__ import annotations

from datetime import date

from hub.model import Device, Inventory, Site
from hub.store.db import Database
from hub.store.inventory import fetch_sites, load_inventory


async def test_a_device_taken_away_is_no_longer_supervised(database: Database, unique: str) -> None:
    old, new = f"old-{unique}", f"new-{unique}"
    site = Site(
        id=f"s-{unique}",
        name="Solbacken",
        devices=[
            Device(id=old, kind="alarm_button", installed=date(2025, 1, 1), removed=date(2026, 1, 1)),
            Device(id=new, kind="alarm_button", installed=date(2025, 1, 1)),
        ],
    )
    undated = site.model_copy(
        update={"devices": [Device(id=old, kind="alarm_button"), Device(id=new, kind="alarm_button")]}
    )
    async with database.acquire() as conn:
        await load_inventory(conn, Inventory(sites=[site]))
        # a later file without dates keeps the history recorded
        await load_inventory(conn, Inventory(sites=[undated]))
        (loaded,) = [s for s in await fetch_sites(conn) if s.id == site.id]
        history = await conn.fetch(
            "SELECT id, installed_on, removed_on FROM devices WHERE site = $1 ORDER BY id", site.id
        )
    assert [d.id for d in loaded.devices] == [new]
    assert [(r["id"], r["installed_on"], r["removed_on"]) for r in history] == [
        (new, date(2025, 1, 1), None),
        (old, date(2025, 1, 1), date(2026, 1, 1)),
    ]


async def test_a_device_without_a_date_is_installed_the_day_it_enters_the_inventory(
    database: Database, unique: str
) -> None:
    site = Site(id=f"s-{unique}", name="Solbacken", devices=[Device(id=f"d-{unique}", kind="bed_sensor")])
    async with database.acquire() as conn:
        await load_inventory(conn, Inventory(sites=[site]))
        installed, today = await conn.fetchrow(
            "SELECT installed_on, (now() AT TIME ZONE 'Europe/Stockholm')::date FROM devices WHERE id = $1",
            f"d-{unique}",
        )
    assert installed == today


def test_a_removal_before_the_installation_is_refused() -> None:
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="removed 2025-01-01 is before installed 2026-01-01"):
        Device(id="x", kind="bed_sensor", installed=date(2026, 1, 1), removed=date(2025, 1, 1))
