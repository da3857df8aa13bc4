"""The site inventory in the database: sites, pseudonymous residents and their devices."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import asyncpg

from hub.model import Device, Inventory, Resident, Site


async def load_inventory(conn: asyncpg.Connection, inventory: Inventory) -> dict[str, int]:
    """Insert or update every site, resident and device in one transaction; returns how many of each were loaded.

    Idempotent: loading the same file twice changes nothing. Nothing is deleted, and a device's `maintenance`
    flag (set by staff) is left as it is.
    """
    sites = [(s.id, s.name, s.timezone) for s in inventory.sites]
    residents = [(r.id, s.id, r.room, r.unit) for s in inventory.sites for r in s.residents]
    devices = [
        (d.id, s.id, d.kind, d.vendor, d.resident, d.supervision_interval_s, d.safety, d.installed, d.removed)
        for s in inventory.sites
        for d in s.devices
    ]
    async with conn.transaction():
        await conn.executemany(
            """
            INSERT INTO sites (id, name, timezone) VALUES ($1, $2, $3)
            ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, timezone = EXCLUDED.timezone, updated_at = now()
            WHERE (sites.name, sites.timezone) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.timezone)
            """,
            sites,
        )
        await conn.executemany(
            """
            INSERT INTO residents (id, site, room, unit) VALUES ($1, $2, $3, $4)
            ON CONFLICT (id) DO UPDATE SET site = EXCLUDED.site, room = EXCLUDED.room, unit = EXCLUDED.unit,
                updated_at = now()
            WHERE (residents.site, residents.room, residents.unit)
                IS DISTINCT FROM (EXCLUDED.site, EXCLUDED.room, EXCLUDED.unit)
            """,
            residents,
        )
        await conn.executemany(
            """
            INSERT INTO devices (id, site, kind, vendor, resident, supervision_interval_s, safety, installed_on,
                                 removed_on)
            VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, (now() AT TIME ZONE 'Europe/Stockholm')::date), $9)
            ON CONFLICT (id) DO UPDATE SET site = EXCLUDED.site, kind = EXCLUDED.kind, vendor = EXCLUDED.vendor,
                resident = EXCLUDED.resident, supervision_interval_s = EXCLUDED.supervision_interval_s,
                safety = EXCLUDED.safety,
                -- a file without dates keeps the history already recorded
                installed_on = coalesce($8, devices.installed_on), removed_on = coalesce($9, devices.removed_on),
                updated_at = now()
            WHERE (devices.site, devices.kind, devices.vendor, devices.resident, devices.supervision_interval_s,
                   devices.safety, devices.installed_on, devices.removed_on)
                IS DISTINCT FROM (EXCLUDED.site, EXCLUDED.kind, EXCLUDED.vendor, EXCLUDED.resident,
                   EXCLUDED.supervision_interval_s, EXCLUDED.safety, coalesce($8, devices.installed_on),
                   coalesce($9, devices.removed_on))
            """,
            devices,
        )
    return {"sites": len(sites), "residents": len(residents), "devices": len(devices)}


async def fetch_sites(conn: asyncpg.Connection) -> list[Site]:
    """Every site with its residents and devices, ordered by id."""
    residents: dict[str, list[Resident]] = defaultdict(list)
    for row in await conn.fetch("SELECT id, site, room, unit, away FROM residents ORDER BY id"):
        residents[row["site"]].append(Resident(id=row["id"], room=row["room"], unit=row["unit"], away=row["away"]))
    devices: dict[str, list[Device]] = defaultdict(list)
    # a device taken away (removed_on today or earlier, in the follow-up zone) is no longer in the inventory the hub
    # supervises: its silence is not a fault
    for row in await conn.fetch(
        "SELECT id, site, kind, vendor, resident, supervision_interval_s, safety, maintenance "
        "FROM devices WHERE removed_on IS NULL OR removed_on > (now() AT TIME ZONE 'Europe/Stockholm')::date "
        "ORDER BY id"
    ):
        devices[row["site"]].append(
            Device(
                id=row["id"],
                kind=row["kind"],
                vendor=row["vendor"],
                resident=row["resident"],
                supervision_interval_s=row["supervision_interval_s"],
                safety=row["safety"],
                maintenance=row["maintenance"],
            )
        )
    return [
        Site(
            id=row["id"],
            name=row["name"],
            timezone=row["timezone"],
            residents=residents.get(row["id"], []),
            devices=devices.get(row["id"], []),
        )
        for row in await conn.fetch("SELECT id, name, timezone FROM sites ORDER BY id")
    ]


async def set_resident_away(conn: asyncpg.Connection, resident_id: str, away: bool) -> bool:
    """Mark a resident away (or in hospital) or back home; False when there is no such resident."""
    result = await conn.execute("UPDATE residents SET away = $2, updated_at = now() WHERE id = $1", resident_id, away)
    return bool(result.endswith(" 1"))


async def set_device_maintenance(conn: asyncpg.Connection, device_id: str, maintenance: bool) -> bool:
    """Take a device out for service or put it back; False when there is no such device."""
    result = await conn.execute(
        "UPDATE devices SET maintenance = $2, updated_at = now() WHERE id = $1", device_id, maintenance
    )
    return bool(result.endswith(" 1"))


async def inventory_version(conn: asyncpg.Connection) -> tuple[object, ...]:
    """A cheap fingerprint of the inventory: when it is unchanged, there is nothing to reload."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT max(updated_at) FROM sites), (SELECT max(updated_at) FROM residents),
               (SELECT max(updated_at) FROM devices), (SELECT count(*) FROM residents), (SELECT count(*) FROM devices)
        """
    )
    return tuple(row) if row is not None else ()


async def rule_profiles(conn: asyncpg.Connection) -> dict[str, str]:
    """Every resident's rule profile name, by resident id (residents without one are absent)."""
    return {
        r["resident_id"]: r["profile"]
        for r in await conn.fetch("SELECT resident_id, profile FROM resident_rule_profiles")
    }


async def rule_profiles_version(conn: asyncpg.Connection) -> tuple[object, ...]:
    """Changes with every change of a resident's rule profile (migration 320): cheap enough to ask every second."""
    row = await conn.fetchrow("SELECT count(*), max(version) FROM resident_rule_profiles")
    return tuple(row) if row is not None else ()


async def set_rule_profile(
    conn: asyncpg.Connection, resident_id: str, profile: str | None, set_by: str, at: datetime
) -> tuple[bool, str | None]:
    """Give a resident a rule profile, or none (`profile` None: the pack's values): (whether the resident exists,
    the profile they had before). The caller checks the name against the loaded rule packs."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT count(*) FROM residents WHERE id = $1", resident_id):
            return False, None
        before: str | None = await conn.fetchval(
            "SELECT profile FROM resident_rule_profiles WHERE resident_id = $1 FOR UPDATE", resident_id
        )
        if profile is None:
            await conn.execute("DELETE FROM resident_rule_profiles WHERE resident_id = $1", resident_id)
        else:
            await conn.execute(
                "INSERT INTO resident_rule_profiles (resident_id, profile, set_by, set_at) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (resident_id) DO UPDATE SET profile = EXCLUDED.profile, set_by = EXCLUDED.set_by, "
                "set_at = EXCLUDED.set_at",
                resident_id,
                profile,
                set_by,
                at,
            )
    return True, before
