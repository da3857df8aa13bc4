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

from hub.model import Device, Inventory
from hub.people.staff import Role
from hub.settings import DbSettings, HttpSettings
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
            async with aiohttp.ClientSession(
                cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": HttpSettings().public_url}
            ) as client:
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


def _publish(broker: PrivateMosquitto, site: str, device: str, kind: str, seq: int) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{device}-{seq}", protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    payload = {"ts": datetime.now(UTC).isoformat(), "kind": kind, "seq": seq}
    client.publish(f"vaka/v1/{site}/{site}-{device}/event", json.dumps(payload), qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


async def _on_page(client: aiohttp.ClientSession, url: str, known: set[str]) -> tuple[str, str]:
    """Wait for a new alarm on the staff page; its id and the page's CSRF token."""
    for _ in range(100):
        csrf, html = await _csrf(client, f"{url}/staff/")
        new = set(re.findall(r'data-id="([0-9a-f]{32})"', html)) - known
        if new:
            return new.pop(), csrf
        await asyncio.sleep(0.1)
    raise AssertionError("the alarm never reached the staff page")


async def test_a_restart_with_the_database_away_resumes_the_desk(tmp_path: Path, unique: str) -> None:
    """Issue 22.3: press A (database up), stop PostgreSQL, press B and close it on the page, restart the hub, press
    C, start PostgreSQL. On the old main /staff/ answered 500, C escalated to nobody (the desk started without
    staff), and the engine's open alarms were raised again under new ids: two open alarms per key."""
    site = f"s{unique}"
    sites = sites_for(site)
    sites[0].devices.append(Device(id=f"{site}-button1", kind="alarm_button", resident=f"{site}-r1", safety=True))
    with PrivatePostgres() as pg, PrivateMosquitto() as broker:
        conn = await asyncpg.connect(pg.dsn)
        try:
            await migrate(conn, DbSettings(dsn=pg.dsn, db_schema="public"))  # type: ignore[arg-type]
            await load_inventory(conn, Inventory(sites=sites))
            await create_staff(
                conn, username=f"anna-{site}", password=PASSWORD, role=Role.STAFF, units=[(site, "A"), (site, "B")]
            )
        finally:
            await conn.close()
        hub = HubProcess(pg, broker, tmp_path, site)
        try:
            hub.start()
            await asyncio.to_thread(hub.wait_status, "ready")
            url = f"http://127.0.0.1:{hub.http_port}"
            async with aiohttp.ClientSession(
                cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": HttpSettings().public_url}
            ) as client:
                csrf, _ = await _csrf(client, f"{url}/staff/login")
                form = {"csrf": csrf, "username": f"anna-{site}", "password": PASSWORD}
                async with client.post(f"{url}/staff/login", data=form, allow_redirects=False) as resp:
                    assert resp.status == 303  # and anna is on duty: signing in starts the shift
                await asyncio.to_thread(_publish, broker, site, "radar1", "fall_detected", 1)
                a_id, _ = await _on_page(client, url, set())

                await asyncio.to_thread(pg.stop)
                await asyncio.to_thread(_publish, broker, site, "button3", "alarm_button", 2)
                b_id, csrf = await _on_page(client, url, {a_id})
                fetch = {"X-Requested-With": "fetch"}
                async with client.post(f"{url}/staff/alarms/{b_id}/accept", data={"csrf": csrf}, headers=fetch) as r:
                    assert r.status == 200, await r.text()
                resolve = {"csrf": csrf, "outcome": "assisted", "note": "helped"}
                async with client.post(f"{url}/staff/alarms/{b_id}/resolve", data=resolve, headers=fetch) as r:
                    assert r.status == 200, await r.text()

                hub.stop()
                hub.start()  # the database still away
                async with client.get(f"{url}/staff/") as resp:
                    assert resp.status == 200, "the staff page failed for a signed-in nurse after the restart"
                    html = await resp.text()
                assert a_id in html, "the open alarm from before the restart is not on the page"
                assert b_id not in html
                async with aiohttp.ClientSession(
                    cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": HttpSettings().public_url}
                ) as fresh:
                    csrf, _ = await _csrf(fresh, f"{url}/staff/login")
                    form = {"csrf": csrf, "username": f"anna-{site}", "password": PASSWORD}
                    async with fresh.post(f"{url}/staff/login", data=form, allow_redirects=False) as resp:
                        assert resp.status == 503, "a login the hub cannot check must say so, not fail"
                        assert "database" in (await resp.text()).lower()
                await asyncio.to_thread(_publish, broker, site, "button1", "alarm_button", 3)
                c_id, _ = await _on_page(client, url, {a_id})

            await asyncio.to_thread(pg.start)
            open_per_key: list[int] = []
            for _ in range(300):
                conn = await asyncpg.connect(pg.dsn, timeout=2)
                try:
                    b_state = await conn.fetchval("SELECT state FROM desk_alarms WHERE id = $1", b_id)
                    c_log = await conn.fetch("SELECT action FROM desk_alarm_log WHERE alarm_id = $1", c_id)
                    open_per_key = [
                        r["n"]
                        for r in await conn.fetch(
                            "SELECT count(*) AS n FROM desk_alarms WHERE site = $1 AND closed_at IS NULL GROUP BY key",
                            site,
                        )
                    ]
                    unreached = await conn.fetchval(
                        "SELECT count(*) FROM desk_alarms WHERE site = $1 AND rule_id = 'nobody_reached'", site
                    )
                    a_rows = await conn.fetchval("SELECT count(*) FROM desk_alarms WHERE id = $1", a_id)
                finally:
                    await conn.close()
                if b_state == "resolved" and c_log and a_rows == 1:
                    break
                await asyncio.sleep(0.2)
            assert b_state == "resolved"
            assert a_rows == 1
            assert open_per_key
            assert max(open_per_key) == 1, f"alarms open twice under one key: {open_per_key}"
            assert unreached == 0, "an alarm after the restart reached nobody: the desk had no staff on duty"
            assert "escalated" in {r["action"] for r in c_log}
        finally:
            hub.stop()
