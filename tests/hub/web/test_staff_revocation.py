"""Sessions end everywhere (issue 9, finding 2) over plain HTTP/WebSocket: disable, unit change, per-delivery checks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from hub.notify.websocket import SESSION_ENDED, STAFF_CHANGED
from tests.conftest import PG_DSN
from tests.hub.desk_support import RecordingNotifier, decision
from tests.hub.test_cli import vaka
from tests.hub.web.conftest import StaffSite
from tests.hub.web.test_staff_http import login


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def open_page(site: StaffSite, client: aiohttp.ClientSession, name: str) -> aiohttp.ClientWebSocketResponse:
    assert (await login(client, site.url, f"{name}-{site.site}")).status == 303
    ws = await client.ws_connect(f"{site.url}/staff/ws", origin=site.url)
    assert (await ws.receive_json(timeout=2))["type"] == "snapshot"
    return ws


async def closed_with(ws: aiohttp.ClientWebSocketResponse, within_s: float = 5.0) -> int:
    """Read until the hub closes the socket; returns the close code. Fails on an alarm or when it stays open."""
    deadline = time.monotonic() + within_s
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            assert ws.close_code is not None
            return ws.close_code
        assert msg.type is aiohttp.WSMsgType.TEXT
        assert '"type":"alarm"' not in msg.data, "an alarm reached a page that should have been closed"


async def test_disabling_an_account_closes_its_pages_and_ends_its_sessions(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    ws = await open_page(staff_site, client, "anna")
    async with staff_site.db.acquire() as conn:
        await conn.execute("UPDATE staff SET active = false WHERE id = $1", staff_site.staff["anna"].id)
    assert await closed_with(ws) == SESSION_ENDED
    async with client.get(f"{staff_site.url}/staff/", allow_redirects=False) as resp:
        assert resp.status == 303  # to the login form
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect(f"{staff_site.url}/staff/ws", origin=staff_site.url)
    assert (await login(client, staff_site.url, f"anna-{staff_site.site}")).status == 401


async def test_deleting_an_account_closes_its_pages(staff_site: StaffSite, client: aiohttp.ClientSession) -> None:
    ws = await open_page(staff_site, client, "bo")
    async with staff_site.db.acquire() as conn:
        await conn.execute("DELETE FROM staff WHERE id = $1", staff_site.staff["bo"].id)
    assert await closed_with(ws) == SESSION_ENDED


async def test_a_unit_change_closes_the_page_and_the_directory_follows_at_once(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    carl = staff_site.staff["carl"]
    ws = await open_page(staff_site, client, "carl")  # unit B
    async with staff_site.db.acquire() as conn:
        await conn.execute("UPDATE staff_units SET unit = 'A' WHERE staff_id = $1", carl.id)
    assert await closed_with(ws) == STAFF_CHANGED
    ws = await client.ws_connect(f"{staff_site.url}/staff/ws", origin=staff_site.url)  # the session stands
    await ws.receive_json(timeout=2)
    a_alarm = staff_site.desk.lane.apply(decision(staff_site.site))  # unit A: carl's now
    b_alarm = staff_site.desk.lane.apply(decision(staff_site.site, device="button3", resident="r3", subject="r3"))
    assert a_alarm is not None
    assert b_alarm is not None
    message = await ws.receive_json(timeout=2)
    assert message["alarm"]["id"] == a_alarm.id
    with pytest.raises(TimeoutError):
        await ws.receive_json(timeout=0.5)  # nothing of unit B any more
    assert carl.id in {s.id for s in staff_site.desk.directory.who_sees(a_alarm.site, a_alarm.unit)}
    assert carl.id not in {s.id for s in staff_site.desk.directory.who_sees(b_alarm.site, b_alarm.unit)}
    await ws.close()


async def test_a_logged_out_session_gets_no_delivery_even_before_its_page_is_swept(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    from hub.web.staff.context import CONTEXT

    ws = await open_page(staff_site, client, "anna")
    sessions = staff_site.staff_app[CONTEXT].sessions
    sessions._sessions.clear()  # ended here without the logout handler (as an expiry between two sweeps)
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    assert await closed_with(ws, within_s=1.0) == SESSION_ENDED


async def test_unconfirmed_alarms_of_a_unit_one_has_left_are_not_sent_again(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    anna = staff_site.staff["anna"]
    ws = await open_page(staff_site, client, "anna")
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    assert (await ws.receive_json(timeout=2))["alarm"]["id"] == alarm.id  # not confirmed
    await ws.close()
    async with staff_site.db.acquire() as conn:
        await conn.execute("UPDATE staff_units SET unit = 'B' WHERE staff_id = $1", anna.id)
    for _ in range(100):
        if anna.id not in {s.id for s in staff_site.desk.directory.who_sees(alarm.site, alarm.unit)}:
            break
        await asyncio.sleep(0.05)
    ws = await client.ws_connect(f"{staff_site.url}/staff/ws", origin=staff_site.url)
    assert (await ws.receive_json(timeout=2))["alarms"] == []
    with pytest.raises(TimeoutError):
        await ws.receive_json(timeout=0.5)
    await ws.close()


async def test_a_roster_signing_someone_off_reaches_the_running_hubs_escalation_within_seconds(
    staff_site: StaffSite, db_schema: str
) -> None:
    """Issue 28, finding 4: `vaka staff duty bo off` in another process; the hub's next alarm no longer reaches Bo
    (it used to, until the 30 s staff refresh)."""
    bo = staff_site.staff["bo"]
    assert staff_site.desk.duty.on_duty(bo) is not None
    env = {"VAKA_DB__DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": db_schema}
    done = await asyncio.to_thread(vaka, "staff", "duty", f"bo-{staff_site.site}", "off", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a running hub applies it within a second" in done.stdout
    deadline = time.monotonic() + 3.0
    while staff_site.desk.duty.on_duty(bo) is not None:
        assert time.monotonic() < deadline, "the running hub still has Bo on duty"
        await asyncio.sleep(0.05)
    channel = staff_site.desk.lane.dispatcher.notifiers[0]
    assert isinstance(channel, RecordingNotifier)
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    await staff_site.desk.lane.dispatcher.drain()
    reached = [names for tier, _, names in channel.escalations() if tier == 0]
    assert reached[0], "the alarm reached nobody"
    assert f"bo-{staff_site.site}" not in reached[0]
