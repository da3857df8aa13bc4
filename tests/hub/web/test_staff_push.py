"""Web Push is no server-side request forgery (issue 9, finding 5): endpoints only on the push services, never a
private address (at subscribe, at send, after DNS), and a subscription belongs to whoever registered it.

The push service here is a real local HTTP server (the test's own), reached only because each test that delivers
to it allows 127.0.0.1 explicitly; the defaults refuse it."""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
from collections.abc import AsyncIterator

import aiohttp
import http_ece
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hub.notify.push_guard import GuardedResolver, PushEndpointError, check_endpoint, check_subscription_endpoint
from hub.settings import NotifySettings
from tests.hub.desk_support import decision
from tests.hub.web.conftest import StaffSite
from tests.hub.web.test_staff_http import allow_local_push_service, csrf_of, login


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc", None),
        ("https://updates.push.services.mozilla.com/wpush/v2/abc", None),
        ("https://web.push.apple.com/QGx1", None),
        ("https://wns2-by3p.notify.windows.com/w/?token=abc", None),
        ("http://fcm.googleapis.com/fcm/send/abc", "https"),
        ("https://user:pw@fcm.googleapis.com/fcm/send/abc", "user name"),
        ("https://fcm.googleapis.com.evil.example/x", "not a known push service"),
        ("https://evilfcm.googleapis.com/x", "not a known push service"),
        ("https://push.services.mozilla.com.evil.example/x", "not a known push service"),
        ("https://169.254.169.254/latest/meta-data/", "not a known push service"),
        ("https://127.0.0.1:8080/staff/", "not a known push service"),
        ("https://localhost/x", "not a known push service"),
        ("file:///etc/passwd", "https"),
        ("https://fcm.googleapis.com:99999/x", "not a valid URL"),
        ("https://fcm.googleapis.com:443/fcm/send/abc", None),
        ("https://fcm.googleapis.com:8443/fcm/send/abc", "port 443"),
        ("https://updates.push.services.mozilla.com:22/wpush/v2/abc", "port 443"),
    ],
)
def test_only_https_endpoints_on_the_push_services_pass(url: str, refusal: str | None) -> None:
    settings = NotifySettings()
    if refusal is None:
        check_endpoint(url, settings)
    else:
        with pytest.raises(PushEndpointError, match=refusal):
            check_endpoint(url, settings)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "[::1]", "[::ffff:127.0.0.1]", "[fe80::1]"]
)
def test_an_allowed_host_that_is_a_private_address_is_still_refused(host: str) -> None:
    settings = NotifySettings(push_allowed_hosts=[host.strip("[]")])
    with pytest.raises(PushEndpointError, match="private"):
        check_endpoint(f"https://{host}/push", settings)


async def test_a_name_resolving_to_a_private_address_is_refused_at_subscribe_and_at_connect() -> None:
    settings = NotifySettings(push_allowed_hosts=["localhost"])
    with pytest.raises(PushEndpointError, match="resolves to a private"):
        await check_subscription_endpoint("https://localhost/push/x", settings)
    resolver = GuardedResolver([])
    with pytest.raises(OSError, match="no public address"):
        await resolver.resolve("localhost", 443)
    allowed = GuardedResolver([ipaddress.ip_network("127.0.0.0/8")])
    assert {r["host"] for r in await allowed.resolve("localhost", 443)} == {"127.0.0.1"}
    await resolver.close()
    await allowed.close()


class PushService:
    """The test's own push service: records what it is sent."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, bytes]] = []
        app = web.Application()
        app.router.add_post("/push/{id}", self._receive)
        self.server = TestServer(app, host="127.0.0.1")

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        self.pushed.append((request.match_info["id"], await request.read()))
        return web.Response(status=201)

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server.port}/push/{name}"


@pytest.fixture
async def push_service() -> AsyncIterator[PushService]:
    service = PushService()
    await service.server.start_server()
    try:
        yield service
    finally:
        await service.server.close()


def browser_keys() -> tuple[ec.EllipticCurvePrivateKey, bytes, dict[str, str]]:
    key = ec.generate_private_key(ec.SECP256R1())
    auth = secrets.token_bytes(16)
    raw = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return key, auth, {"p256dh": b64(raw), "auth": b64(auth)}


async def session_for(site: StaffSite, name: str) -> tuple[aiohttp.ClientSession, str]:
    client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    assert (await login(client, site.url, f"{name}-{site.site}")).status == 303
    async with client.get(f"{site.url}/staff/") as page:
        return client, csrf_of(await page.text())


async def subscribe(
    client: aiohttp.ClientSession, site: StaffSite, token: str, endpoint: str, keys: dict[str, str]
) -> tuple[int, str]:
    async with client.post(
        f"{site.url}/staff/push/subscribe", json={"endpoint": endpoint, "keys": keys}, headers={"X-CSRF-Token": token}
    ) as resp:
        return resp.status, await resp.text()


async def test_internal_endpoints_are_refused_at_subscribe_with_the_production_defaults(
    staff_site: StaffSite, push_service: PushService
) -> None:
    client, token = await session_for(staff_site, "bo")
    _, _, keys = browser_keys()
    try:
        for endpoint in (
            push_service.url("bo"),
            push_service.url("bo", host="localhost"),
            "https://169.254.169.254/latest/meta-data/",
            f"https://127.0.0.1:{staff_site.port}/staff/logout",
            "https://10.0.0.1/admin",
        ):
            status, text = await subscribe(client, staff_site, token, endpoint, keys)
            assert status == 400, endpoint
            assert "push" in text
    finally:
        await client.close()
    staff_site.desk.lane.apply(decision(staff_site.site))
    await staff_site.desk.lane.dispatcher.drain()
    assert push_service.pushed == []
    async with staff_site.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM push_subscriptions") == 0


async def test_a_subscription_cannot_be_taken_over_by_another_staff_member(
    staff_site: StaffSite, push_service: PushService
) -> None:
    allow_local_push_service(staff_site)
    bo, bo_token = await session_for(staff_site, "bo")
    anna, anna_token = await session_for(staff_site, "anna")
    bo_key, bo_auth, bo_keys = browser_keys()
    _, _, anna_keys = browser_keys()
    endpoint = push_service.url("bo-phone")
    try:
        assert (await subscribe(bo, staff_site, bo_token, endpoint, bo_keys))[0] == 200
        status, text = await subscribe(anna, staff_site, anna_token, endpoint, anna_keys)
        assert status == 409
        assert "another staff member" in text
        assert (await subscribe(bo, staff_site, bo_token, endpoint, bo_keys))[0] == 200  # bo again: fine
    finally:
        await bo.close()
        await anna.close()
    async with staff_site.db.acquire() as conn:
        row = await conn.fetchrow("SELECT staff_id, p256dh FROM push_subscriptions WHERE endpoint = $1", endpoint)
    assert row is not None
    assert (row["staff_id"], row["p256dh"]) == (staff_site.staff["bo"].id, bo_keys["p256dh"])
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    await staff_site.desk.lane.dispatcher.drain()
    assert [name for name, _ in push_service.pushed] == ["bo-phone"]
    payload = json.loads(
        http_ece.decrypt(push_service.pushed[0][1], private_key=bo_key, auth_secret=bo_auth, version="aes128gcm")
    )
    assert payload["alarm_id"] == alarm.id  # only bo's browser can read it


async def test_a_stored_endpoint_that_now_resolves_to_a_private_address_gets_no_request(
    staff_site: StaffSite, push_service: PushService
) -> None:
    """As after DNS rebinding: the name was public at subscribe, it points inside at send time."""
    notify = staff_site.settings.notify
    notify.push_allowed_hosts = ["localhost"]  # the name is allowed; its address is not
    notify.push_allow_http = True
    client, _ = await session_for(staff_site, "bo")  # on duty: a recipient of the escalation
    await client.close()
    _, _, keys = browser_keys()
    async with staff_site.db.acquire() as conn:
        await conn.execute(
            "INSERT INTO push_subscriptions (endpoint, staff_id, p256dh, auth) VALUES ($1, $2, $3, $4)",
            push_service.url("bo", host="localhost"),
            staff_site.staff["bo"].id,
            keys["p256dh"],
            keys["auth"],
        )
    staff_site.desk.lane.apply(decision(staff_site.site))
    await staff_site.desk.lane.dispatcher.drain()
    assert push_service.pushed == []
    assert staff_site.metrics.notifications_failed.labels("webpush")._value.get() == 1
