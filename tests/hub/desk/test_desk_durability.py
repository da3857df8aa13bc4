"""Nothing the desk owes is kept in memory only: alarm log rows, escalation steps, outcomes and access-log rows made
while the database is away survive a restart of the hub (`vaka serve`, SIGTERM) before the database comes back."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.model import Inventory
from hub.settings import DbSettings
from hub.staff import Role
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from hub.store.staff import create_staff
from tests.hub.desk_support import PASSWORD, sites_for
from tests.hub.test_durability import HubProcess
from tests.services import PrivateMosquitto, PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


async def _prepare(pg: PrivatePostgres, site: str) -> None:
    """Schema, the site's inventory and one staff member, before the hub starts."""
    conn = await asyncpg.connect(pg.dsn)
    try:
        await migrate(conn, DbSettings(dsn=pg.dsn, db_schema="public"))  # type: ignore[arg-type]
        await load_inventory(conn, Inventory(sites=sites_for(site)))
        await create_staff(conn, username=f"anna-{site}", password=PASSWORD, role=Role.STAFF, units=[(site, "A")])
    finally:
        await conn.close()


def _publish_fall(broker: PrivateMosquitto, site: str) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"radar-{site}", protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    payload = {"ts": datetime.now(UTC).isoformat(), "kind": "fall_detected", "seq": 1}
    client.publish(f"vaka/v1/{site}/{site}-radar1/event", json.dumps(payload), qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


async def _csrf(client: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    async with client.get(url) as resp:
        html = await resp.text()
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1), html


async def _stored(pg: PrivatePostgres, alarm_id: str, staff_id: int) -> tuple[list[str], tuple[str, str], int]:
    conn = await asyncpg.connect(pg.dsn, timeout=2)
    try:
        actions = [
            r["action"] for r in await conn.fetch("SELECT action FROM desk_alarm_log WHERE alarm_id = $1", alarm_id)
        ]
        row = await conn.fetchrow("SELECT state, outcome FROM desk_alarms WHERE id = $1", alarm_id)
        reads = await conn.fetchval(
            "SELECT count(*) FROM resident_access_log WHERE staff_id = $1 AND purpose = 'alarm_list'", staff_id
        )
    finally:
        await conn.close()
    return sorted(actions), (row["state"], row["outcome"]) if row else ("", ""), int(reads)


async def test_a_restart_during_a_database_outage_loses_no_row_the_desk_owes(tmp_path: Path, unique: str) -> None:
    site = f"s{unique}"
    with PrivatePostgres() as pg, PrivateMosquitto() as broker:
        await _prepare(pg, site)
        hub = HubProcess(pg, broker, tmp_path, site)
        try:
            hub.start()
            await asyncio.to_thread(hub.wait_status, "ready")
            url = f"http://127.0.0.1:{hub.http_port}"
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
                csrf, _ = await _csrf(client, f"{url}/staff/login")
                form = {"csrf": csrf, "username": f"anna-{site}", "password": PASSWORD}
                async with client.post(f"{url}/staff/login", data=form, allow_redirects=False) as resp:
                    assert resp.status == 303
                async with client.get(f"{url}/staff/") as resp:
                    staff_id = None  # read from the database below
                await asyncio.to_thread(pg.stop)

                await asyncio.to_thread(_publish_fall, broker, site)
                alarm_id = ""
                for _ in range(100):  # the alarm reaches the page from memory, database or not
                    csrf, html = await _csrf(client, f"{url}/staff/")  # each view is an access-log row
                    found = re.search(r'data-id="([0-9a-f]{32})"', html)
                    if found:
                        alarm_id = found.group(1)
                        break
                    await asyncio.sleep(0.1)
                assert alarm_id, "the fall never reached the staff page"
                fetch = {"X-Requested-With": "fetch"}
                async with client.post(
                    f"{url}/staff/alarms/{alarm_id}/accept", data={"csrf": csrf}, headers=fetch
                ) as r:
                    assert r.status == 200, await r.text()
                resolve = {"csrf": csrf, "outcome": "assisted", "note": "helped up"}
                async with client.post(f"{url}/staff/alarms/{alarm_id}/resolve", data=resolve, headers=fetch) as r:
                    assert r.status == 200, await r.text()

            hub.stop()  # SIGTERM while the database is still away
            hub.start()  # and up again, the database still away
            await asyncio.to_thread(pg.start)

            conn = await asyncpg.connect(pg.dsn)
            try:
                staff_id = await conn.fetchval("SELECT id FROM staff WHERE username = $1", f"anna-{site}")
            finally:
                await conn.close()
            expected = sorted(["raised", "escalated", "accepted", "resolved"])
            stored: tuple[list[str], tuple[str, str], int] = ([], ("", ""), 0)
            for _ in range(300):
                stored = await _stored(pg, alarm_id, staff_id)
                if stored[0] == expected and stored[2] >= 1:
                    break
                await asyncio.sleep(0.2)
            actions, (state, outcome), reads = stored
            assert actions == expected, "every step of the alarm is in the alarm log, each once"
            assert (state, outcome) == ("resolved", "assisted")
            assert reads >= 1, "the page views made during the outage are in the access log"
        finally:
            hub.stop()
