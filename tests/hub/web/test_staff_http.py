"""Staff page security and delivery over plain HTTP/WebSocket: login, cookies, CSRF, rate limit, origin, receipts."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.hub.desk_support import PASSWORD, decision
from tests.hub.web.conftest import StaffSite


async def login(
    session: aiohttp.ClientSession, url: str, username: str, password: str = PASSWORD, *, origin: str | None = None
) -> aiohttp.ClientResponse:
    # a browser's Origin on every POST: the page's (http.public_url), which is `url` unless told otherwise
    session.headers["Origin"] = origin or url
    async with session.get(f"{url}/staff/login") as resp:
        token = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
    assert token is not None
    return await session.post(
        f"{url}/staff/login",
        data={"csrf": token.group(1), "username": username, "password": password},
        allow_redirects=False,
    )


@pytest.fixture
async def client(staff_site: StaffSite) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser without the browser: its cookies, and our Origin on every request (a browser sends it on POSTs)."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": staff_site.url}
    ) as session:
        yield session


def allow_local_push_service(site: StaffSite) -> None:
    """Let the push channel reach the test's own push service on 127.0.0.1 over http (off in production)."""
    import ipaddress

    site.settings.notify.push_allowed_hosts = ["127.0.0.1"]
    site.settings.notify.push_allowed_networks = [ipaddress.ip_network("127.0.0.1/32")]
    site.settings.notify.push_allow_http = True


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


async def test_login_sets_a_strict_httponly_cookie_and_wrong_passwords_are_refused(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    url = staff_site.url
    async with client.get(f"{url}/staff/", allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/staff/login"
    resp = await login(client, url, f"anna-{staff_site.site}", "not the password")
    assert resp.status == 401
    assert "Fel användarnamn eller lösenord" in await resp.text()
    resp = await login(client, url, f"anna-{staff_site.site}")
    assert resp.status == 303
    cookie = next(h for h in resp.headers.getall("Set-Cookie") if h.startswith("vaka_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # cookie_secure is off in tests (plain http)
    async with client.get(f"{url}/staff/") as page:
        assert page.status == 200
        html = await page.text()
        assert "Open alarms" in html  # anna's account is in English
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]


async def test_cookie_is_secure_when_the_settings_say_so(staff_site: StaffSite, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{staff_site.url}/staff/login") as form:
        token = csrf_of(await form.text())
    staff_site.settings.http.cookie_secure = True
    resp = await client.post(
        f"{staff_site.url}/staff/login",
        data={"csrf": token, "username": f"bo-{staff_site.site}", "password": PASSWORD},
        allow_redirects=False,
    )
    cookie = next(h for h in resp.headers.getall("Set-Cookie") if h.startswith("vaka_session="))
    assert "Secure" in cookie


async def test_login_is_rate_limited(staff_site: StaffSite, client: aiohttp.ClientSession) -> None:
    from hub.web.staff.context import CONTEXT
    from hub.web.staff.throttle import ThrottlePolicy

    throttle = staff_site.staff_app[CONTEXT].throttle
    assert throttle is not None
    throttle.policy = ThrottlePolicy(first_delay_s=60.0)  # a loaded machine cannot outlast the wait
    name = f"bo-{staff_site.site}"
    for _ in range(4):  # three free, the fourth earns a wait (tests/hub/web/test_staff_throttle.py)
        assert (await login(client, staff_site.url, name, "wrong password")).status == 401
    resp = await login(client, staff_site.url, name)  # even the right password waits now, from this address
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert staff_site.metrics.logins.labels("limited")._value.get() == 1


async def test_posts_need_the_csrf_token(staff_site: StaffSite, client: aiohttp.ClientSession) -> None:
    await login(client, staff_site.url, f"anna-{staff_site.site}")
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    action = f"{staff_site.url}/staff/alarms/{alarm.id}/accept"
    async with client.post(action, data={}, allow_redirects=False) as resp:
        assert resp.status == 403
    async with client.post(action, data={"csrf": "forged"}, allow_redirects=False) as resp:
        assert resp.status == 403
    async with client.get(f"{staff_site.url}/staff/") as page:
        token = csrf_of(await page.text())
    async with client.post(action, data={"csrf": token}, headers={"X-Requested-With": "fetch"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["alarm"]["accepted_by"] == "Anna"


async def test_websocket_needs_a_session_and_the_allowed_origin(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    ws_url = f"{staff_site.url}/staff/ws"
    with pytest.raises(aiohttp.WSServerHandshakeError) as no_session:
        await client.ws_connect(ws_url, origin=staff_site.url)
    assert no_session.value.status == 401
    await login(client, staff_site.url, f"anna-{staff_site.site}")
    with pytest.raises(aiohttp.WSServerHandshakeError) as wrong_origin:
        await client.ws_connect(ws_url, origin="http://evil.example")
    assert wrong_origin.value.status == 403
    ws = await client.ws_connect(ws_url, origin=staff_site.url)
    assert (await ws.receive_json(timeout=2))["type"] == "snapshot"
    await ws.close()


async def test_unconfirmed_notifications_are_sent_again_on_reconnect(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    await login(client, staff_site.url, f"anna-{staff_site.site}")
    ws_url = f"{staff_site.url}/staff/ws"
    ws = await client.ws_connect(ws_url, origin=staff_site.url)
    assert (await ws.receive_json(timeout=2))["alarms"] == []
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    first = await ws.receive_json(timeout=2)
    assert first["type"] == "alarm"
    assert first["alarm"]["id"] == alarm.id
    await ws.close()  # gone before confirming: the phone went into a lift

    ws = await client.ws_connect(ws_url, origin=staff_site.url)
    snapshot = await ws.receive_json(timeout=2)
    assert [a["id"] for a in snapshot["alarms"]] == [alarm.id]
    again = await ws.receive_json(timeout=2)
    assert again["nid"] == first["nid"]
    await ws.send_str(json.dumps({"type": "receipt", "nid": again["nid"]}))
    await ws.close()

    ws = await client.ws_connect(ws_url, origin=staff_site.url)
    await ws.receive_json(timeout=2)  # snapshot
    with pytest.raises(TimeoutError):
        await ws.receive_json(timeout=0.5)  # nothing unconfirmed left
    await ws.close()
    assert staff_site.metrics.notifications_delivered.labels("websocket")._value.get() == 1


async def test_every_read_of_resident_data_is_logged(staff_site: StaffSite, client: aiohttp.ClientSession) -> None:
    site = staff_site.site
    staff_site.desk.lane.apply(decision(site))
    await login(client, staff_site.url, f"anna-{site}")
    async with client.get(f"{staff_site.url}/staff/residents") as page:
        html = await page.text()
    assert f"{site}-r1" in html
    assert f"{site}-r2" in html
    assert f"{site}-r3" not in html  # unit B is not anna's
    async with client.get(f"{staff_site.url}/staff/"):
        pass
    await staff_site.desk.lane.store.flushed()
    anna = staff_site.staff["anna"]
    async with staff_site.db.acquire() as conn:
        rows = await conn.fetch("SELECT staff_id, resident_id, purpose FROM resident_access_log ORDER BY seq")
    assert {(r["resident_id"], r["purpose"]) for r in rows} == {
        (f"{site}-r1", "resident_list"),
        (f"{site}-r2", "resident_list"),
        (f"{site}-r1", "alarm_list"),
    }
    assert {r["staff_id"] for r in rows} == {anna.id}
    assert staff_site.metrics.resident_reads.labels("staff")._value.get() == 3


async def test_the_residents_page_counts_working_devices_in_the_right_number(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    """Each of anna's residents has one device: "1 device working", not "1 devices working" (nor, in Swedish,
    "1 enheter fungerar"; tests/hub/web/test_i18n.py has the catalogue's forms)."""
    await login(client, staff_site.url, f"anna-{staff_site.site}")
    async with client.get(f"{staff_site.url}/staff/residents") as page:
        html = await page.text()
    assert re.findall(r'<li class="ok">([^<]*)</li>', html) == ["1 device working", "1 device working"]


async def test_last_activity_shows_the_sites_clock_time_with_the_date_when_not_today(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    """At 02:14 on the hub's clock (CET), r1's last event at 01:05 reads "01:05", r2's of the evening before with
    its date: local clock times, counted from the hub's now, not the phone's or UTC."""
    from datetime import UTC, datetime

    site = staff_site.site
    staff_site.clock.t = datetime(2026, 11, 27, 1, 14, tzinfo=UTC)
    async with staff_site.db.acquire() as conn:
        await conn.executemany(
            "INSERT INTO events (ts, site, device_id, resident_id, kind) VALUES ($1, $2, $3, $4, 'motion')",
            [
                (datetime(2026, 11, 27, 0, 5, tzinfo=UTC), site, f"{site}-radar1", f"{site}-r1"),
                (datetime(2026, 11, 26, 22, 40, tzinfo=UTC), site, f"{site}-plug2", f"{site}-r2"),
            ],
        )
    await login(client, staff_site.url, f"anna-{site}")
    async with client.get(f"{staff_site.url}/staff/residents") as page:
        html = await page.text()
    text = re.sub(r"<[^>]+>", "", html)
    assert "Last activity: 01:05 (1 h 9 min ago)" in text
    assert "Last activity: 26 Nov 23:40 (2 h 34 min ago)" in text


async def test_staff_add_command_creates_and_updates_accounts_that_can_log_in(
    staff_site: StaffSite,
    client: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse
    import io

    from hub.cli import add_staff_arguments, staff_add_main

    parser = argparse.ArgumentParser()
    add_staff_arguments(parser)
    name = f"eva-{staff_site.site}"
    argv = [name, "--role", "nurse", "--unit", f"{staff_site.site}/A", "--password-stdin", "--lang", "en"]
    monkeypatch.setattr("sys.stdin", io.StringIO("first password\n"))
    assert await staff_add_main(parser.parse_args(argv), staff_site.settings) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("first password\n"))
    assert await staff_add_main(parser.parse_args(argv), staff_site.settings) == 1  # taken
    assert f"staff user name '{name}' is taken" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a password\n"))
    nobody = [f"nobody-{staff_site.site}", *argv[1:], "--update"]
    assert await staff_add_main(parser.parse_args(nobody), staff_site.settings) == 1  # nothing to update
    assert f"no staff member 'nobody-{staff_site.site}'" in capsys.readouterr().err
    assert (await login(client, staff_site.url, name, "first password")).status == 303
    monkeypatch.setattr("sys.stdin", io.StringIO("second password\n"))
    assert await staff_add_main(parser.parse_args([*argv, "--update"]), staff_site.settings) == 0
    async with client.get(f"{staff_site.url}/staff/", allow_redirects=False) as resp:
        assert resp.status == 303  # the old session ended with the password change
    assert (await login(client, staff_site.url, name, "first password")).status == 401
    assert (await login(client, staff_site.url, name, "second password")).status == 303
    async with staff_site.db.acquire() as conn:
        assert (await conn.fetchval("SELECT password_hash FROM staff WHERE username = $1", name)).startswith(
            "$argon2id$"
        )


async def test_someone_added_after_start_gets_alarms_before_the_directory_reloads(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    from hub.people.staff import Role
    from hub.store.staff import create_staff

    name = f"new-{staff_site.site}"
    async with staff_site.db.acquire() as conn:
        await create_staff(conn, username=name, password=PASSWORD, role=Role.STAFF, units=[(staff_site.site, "A")])
    assert name not in {s.username for s in staff_site.desk.directory.staff}
    await login(client, staff_site.url, name)
    ws = await client.ws_connect(f"{staff_site.url}/staff/ws", origin=staff_site.url)
    await ws.receive_json(timeout=2)  # snapshot
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    message = await ws.receive_json(timeout=2)
    assert message["alarm"]["id"] == alarm.id
    await ws.close()


async def test_a_subscribed_browser_gets_a_web_push_for_an_escalation(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    import base64
    import secrets

    import http_ece
    from aiohttp import web
    from aiohttp.test_utils import TestServer
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pushed: list[bytes] = []

    async def push_service(request: web.Request) -> web.StreamResponse:
        pushed.append(await request.read())
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/push/{id}", push_service)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    allow_local_push_service(staff_site)
    try:
        browser_key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        raw = browser_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        await login(client, staff_site.url, f"bo-{staff_site.site}")
        async with client.get(f"{staff_site.url}/staff/push/key") as resp:
            assert len(base64.urlsafe_b64decode((await resp.json())["key"] + "==")) == 65
        async with client.get(f"{staff_site.url}/staff/") as page:
            token = csrf_of(await page.text())
        subscription = {"endpoint": str(server.make_url("/push/bo")), "keys": {"p256dh": b64(raw), "auth": b64(auth)}}
        async with client.post(f"{staff_site.url}/staff/push/subscribe", json=subscription) as resp:
            assert resp.status == 403  # no CSRF token
        async with client.post(
            f"{staff_site.url}/staff/push/subscribe", json=subscription, headers={"X-CSRF-Token": token}
        ) as resp:
            assert resp.status == 200
        alarm = staff_site.desk.lane.apply(decision(staff_site.site))
        assert alarm is not None
        await staff_site.desk.lane.dispatcher.drain()
        assert len(pushed) == 1
        payload = json.loads(
            http_ece.decrypt(pushed[0], private_key=browser_key, auth_secret=auth, version="aes128gcm")
        )
        assert payload["alarm_id"] == alarm.id
        assert payload["tier"] == 0
    finally:
        await server.close()


async def test_an_idle_session_is_logged_out(staff_site: StaffSite, client: aiohttp.ClientSession) -> None:
    from hub.web.staff.context import CONTEXT

    await login(client, staff_site.url, f"anna-{staff_site.site}")
    async with client.get(f"{staff_site.url}/staff/", allow_redirects=False) as resp:
        assert resp.status == 200
    idle_s = staff_site.settings.http.session_idle_s
    for session in staff_site.staff_app[CONTEXT].sessions._sessions.values():
        session.last_seen_s -= idle_s + 1  # as if the phone had lain untouched past the idle timeout
    async with client.get(f"{staff_site.url}/staff/", allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "/staff/login"
    async with staff_site.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM staff_sessions") == 0


async def test_a_second_accept_is_refused_and_says_someone_else_has_it(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    staff_site.desk.actions.accept(alarm.id, staff_site.staff["anna"])
    await login(client, staff_site.url, f"bo-{staff_site.site}")
    async with client.get(f"{staff_site.url}/staff/") as page:
        token = csrf_of(await page.text())
    action = f"{staff_site.url}/staff/alarms/{alarm.id}/accept"
    async with client.post(action, data={"csrf": token}, headers={"X-Requested-With": "fetch"}) as resp:
        assert resp.status == 409
        assert (await resp.json())["ok"] is False
    async with client.post(action, data={"csrf": token}) as resp:  # a plain form, without JavaScript
        assert resp.url.query.get("error") == "state"
        assert "Someone else has already changed this alarm." in await resp.text()
    assert staff_site.desk.machine.get(alarm.id).accepted_by == "Anna"  # type: ignore[union-attr]
