"""Issue 9, finding 6 on the staff page: error responses keep the security headers, malformed bodies get a 400,
and every read of a resident's data through an action reply or a re-sent alarm is in the access log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from hub.model import Outcome
from tests.hub.desk_support import decision
from tests.hub.web.conftest import StaffSite
from tests.hub.web.test_staff_http import csrf_of, login

SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options")


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def logged_in(site: StaffSite, client: aiohttp.ClientSession, name: str = "anna") -> str:
    """Log in; returns the page's CSRF token."""
    assert (await login(client, site.url, f"{name}-{site.site}")).status == 303
    async with client.get(f"{site.url}/staff/") as page:
        return csrf_of(await page.text())


async def test_error_responses_carry_the_security_headers(staff_site: StaffSite, client: aiohttp.ClientSession) -> None:
    url = staff_site.url
    token = await logged_in(staff_site, client)
    cases = [
        ("GET", f"{url}/staff/no-such-page", {}, 404),
        ("PUT", f"{url}/staff/login", {}, 405),
        ("POST", f"{url}/staff/alarms/nope/accept", {}, 403),  # no CSRF token
        ("POST", f"{url}/staff/alarms/nope/explode", {"X-CSRF-Token": token}, 404),
    ]
    for method, target, headers, status in cases:
        async with client.request(method, target, headers=headers, allow_redirects=False) as resp:
            assert resp.status == status, (method, target)
            for name in SECURITY_HEADERS:
                assert name in resp.headers, (method, target, name)
    async with aiohttp.ClientSession() as stranger, stranger.get(f"{url}/staff/ws") as resp:
        assert resp.status == 401
        assert all(name in resp.headers for name in SECURITY_HEADERS)


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/staff/login", "multipart/form-data", b"--x\r\nnot a part"),
        ("/staff/login", "multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\nbroken"),
        ("/staff/login", "application/x-www-form-urlencoded", b"csrf=%ZZ&username=\xff\xfe"),
        ("/staff/push/subscribe", "application/json", b"{not json"),
        ("/staff/push/subscribe", "application/json", b"[1, 2]"),
        ("/staff/push/subscribe", "application/json", b'{"endpoint": 5, "keys": "x"}'),
        ("/staff/alarms/{alarm}/resolve", "multipart/form-data; boundary=x", b"--x\r\n\r\n--x"),
        ("/staff/alarms/{alarm}/resolve", "multipart/form-data", b""),  # found by tests/hub/web/test_staff_fuzz.py
        ("/staff/alarms/{alarm}/resolve", "application/x-www-form-urlencoded", b"outcome=%ZZ%00"),
    ],
)
async def test_a_malformed_body_gets_a_400_with_a_clear_message_and_no_traceback(
    staff_site: StaffSite,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    path: str,
    content_type: str,
    body: bytes,
) -> None:
    token = await logged_in(staff_site, client)
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    target = staff_site.url + path.format(alarm=alarm.id)
    headers = {"Content-Type": content_type, "X-CSRF-Token": token, "X-Requested-With": "fetch"}
    async with client.post(target, data=body, headers=headers, allow_redirects=False) as resp:
        text = await resp.text()
        assert resp.status in (400, 403), text  # 403: a login form whose CSRF field could not be read
        assert "Traceback" not in text
        assert text.strip()
    assert "Traceback" not in caplog.text
    assert "Error handling request" not in caplog.text
    assert staff_site.desk.machine.get(alarm.id) is not None  # nothing was resolved by a broken form


async def test_the_reply_to_an_action_is_a_logged_read(staff_site: StaffSite, client: aiohttp.ClientSession) -> None:
    site = staff_site.site
    alarm = staff_site.desk.lane.apply(decision(site))
    assert alarm is not None
    token = await logged_in(staff_site, client, "bo")
    await staff_site.desk.lane.store.flushed()
    async with staff_site.db.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM resident_access_log WHERE purpose = 'alarm_action'")
    action = f"{staff_site.url}/staff/alarms/{alarm.id}/accept"
    async with client.post(action, data={"csrf": token}, headers={"X-Requested-With": "fetch"}) as resp:
        reply = await resp.json()
    assert reply["alarm"]["room"] == "101"
    await staff_site.desk.lane.store.flushed()
    async with staff_site.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT staff_id, resident_id FROM resident_access_log WHERE purpose = 'alarm_action' ORDER BY seq"
        )
    assert before == 0
    assert [(r["staff_id"], r["resident_id"]) for r in rows] == [(staff_site.staff["bo"].id, f"{site}-r1")]


async def test_alarms_sent_again_on_reconnect_are_logged_reads(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    site = staff_site.site
    await logged_in(staff_site, client)
    ws_url = f"{staff_site.url}/staff/ws"
    ws = await client.ws_connect(ws_url, origin=staff_site.url)
    await ws.receive_json(timeout=2)
    alarm = staff_site.desk.lane.apply(decision(site))
    assert alarm is not None
    await ws.receive_json(timeout=2)  # not confirmed
    await ws.close()
    staff_site.desk.actions.resolve(
        alarm.id, staff_site.staff["bo"], Outcome.FALSE_ALARM
    )  # closed: not in the next snapshot
    await staff_site.desk.lane.store.flushed()
    async with staff_site.db.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM resident_access_log WHERE staff_id = $1", _anna(staff_site))
    ws = await client.ws_connect(ws_url, origin=staff_site.url)
    assert (await ws.receive_json(timeout=2))["alarms"] == []
    again = await ws.receive_json(timeout=2)
    assert again["alarm"]["id"] == alarm.id
    assert again["alarm"]["room"] == "101"
    await ws.send_str(json.dumps({"type": "receipt", "nid": again["nid"]}))
    await ws.close()
    await staff_site.desk.lane.store.flushed()
    async with staff_site.db.acquire() as conn:
        after = await conn.fetchval("SELECT count(*) FROM resident_access_log WHERE staff_id = $1", _anna(staff_site))
    assert after == before + 1


def _anna(site: StaffSite) -> int:
    return site.staff["anna"].id


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("helped\x00 up", "helped up"),
        ("line one\r\nline two\tend", "line one\nline two\tend"),
        ("bell\x07\x7f", "bell"),
    ],
)
def test_form_text_loses_what_postgresql_cannot_store(typed: str, kept: str) -> None:
    """Issue 22.7: a staff note with NUL was accepted by the page's form and then refused by PostgreSQL."""
    from multidict import MultiDict, MultiDictProxy

    from hub.web.bodies import field

    assert field(MultiDictProxy(MultiDict({"note": typed})), "note", 4000) == kept
