"""Login throttling (issue 9, finding 4): per account and address, progressive, never a lock-out of the right
password from elsewhere, X-Forwarded-For believed only from a configured proxy, and kept across a restart."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from hub.web.staff import setup_staff
from hub.web.staff.throttle import ThrottlePolicy, client_address
from tests.hub.desk_support import PASSWORD
from tests.hub.web.conftest import StaffSite, free_port
from tests.hub.web.test_staff_http import login

PROXY = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.9", None, PROXY, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", PROXY, "203.0.113.9"),  # not from a proxy: the header is anyone's
        ("127.0.0.1", "198.51.100.1", [], "127.0.0.1"),  # no proxies configured: never believed
        ("127.0.0.1", "198.51.100.1", PROXY, "198.51.100.1"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.1", PROXY, "198.51.100.1"),  # the left entry was the client's own say
        ("127.0.0.1", "198.51.100.1, 10.1.2.3", PROXY, "198.51.100.1"),  # two proxies in a row
        ("127.0.0.1", "10.1.2.3", PROXY, "127.0.0.1"),  # only proxies: the peer
        ("127.0.0.1", "not an address", PROXY, "127.0.0.1"),
        ("127.0.0.1", "2001:db8::1", PROXY, "2001:db8::1"),
        (None, None, PROXY, "?"),
    ],
)
def test_the_client_address_believes_x_forwarded_for_only_from_a_trusted_proxy(
    peer: str | None, forwarded: str | None, trusted: list[ipaddress.IPv4Network], expected: str
) -> None:
    assert client_address(peer, forwarded, trusted) == expected


def test_the_delay_grows_with_each_failure_and_has_a_ceiling() -> None:
    policy = ThrottlePolicy(free_failures=3, first_delay_s=2.0, max_delay_s=60.0)
    assert [policy.delay_after(n) for n in range(1, 10)] == [0, 0, 0, 2, 4, 8, 16, 32, 60]


@pytest.fixture(autouse=True)
def long_first_delay(staff_site: StaffSite) -> None:
    """A first wait of a minute, so a loaded machine cannot outlast it between two attempts of a test."""
    from hub.web.staff.context import CONTEXT

    staff_site.settings.http.login_first_delay_s = 60.0
    ctx = staff_site.staff_app[CONTEXT]
    assert ctx.throttle is not None
    ctx.throttle.policy = ThrottlePolicy(first_delay_s=60.0)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def login_from(
    client: aiohttp.ClientSession, site: StaffSite, name: str, address: str, password: str = PASSWORD, url: str = ""
) -> aiohttp.ClientResponse:
    """Log in as if from `address` behind the test's reverse proxy (127.0.0.1, configured as trusted)."""
    client.cookie_jar.clear()
    base = url or site.url
    client.headers["Origin"] = base
    async with client.get(f"{base}/staff/login") as form:
        token = re.search(r'name="csrf" value="([^"]+)"', await form.text())
    assert token is not None
    return await client.post(
        f"{base}/staff/login",
        data={"csrf": token.group(1), "username": f"{name}-{site.site}", "password": password},
        headers={"X-Forwarded-For": address},
        allow_redirects=False,
    )


async def test_wrong_passwords_from_one_address_never_block_the_right_password_from_another(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    staff_site.settings.http.trusted_proxies = PROXY  # type: ignore[assignment]
    attacker = "203.0.113.66"
    statuses = [(await login_from(client, staff_site, "bo", attacker, "guess")).status for _ in range(8)]
    assert statuses[:4] == [401, 401, 401, 401]
    assert set(statuses[4:]) == {429}  # the attacker's pair waits …
    resp = await login_from(client, staff_site, "bo", attacker)
    assert resp.status == 429  # … even with the right password
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await login_from(client, staff_site, "bo", "198.51.100.7")).status == 303  # bo's own phone
    assert (await login_from(client, staff_site, "anna", attacker)).status == 303  # a colleague behind the same NAT


async def test_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_throttle(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    assert staff_site.settings.http.trusted_proxies == []
    for n in range(4):
        assert (await login_from(client, staff_site, "bo", f"198.51.100.{n}", "guess")).status == 401
    assert (await login_from(client, staff_site, "bo", "198.51.100.200")).status == 429  # still 127.0.0.1 to us


async def test_the_throttle_survives_a_restart(staff_site: StaffSite, client: aiohttp.ClientSession) -> None:
    for _ in range(4):
        assert (await login(client, staff_site.url, f"bo-{staff_site.site}", "guess")).status == 401
    assert (await login(client, staff_site.url, f"bo-{staff_site.site}")).status == 429
    # a new staff application on the same database, as after `vaka serve` restarted
    port = free_port()
    app = web.Application()
    setup_staff(
        app,
        desk=staff_site.desk,
        db=staff_site.db,
        settings=staff_site.settings,
        metrics=staff_site.metrics,
        spawner=staff_site.desk.spawner,
    )
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        client.cookie_jar.clear()
        resp = await login(client, f"http://127.0.0.1:{port}", f"bo-{staff_site.site}", origin=staff_site.url)
        assert resp.status == 429
    finally:
        await runner.cleanup()


async def test_behind_a_trusted_proxy_the_access_log_records_the_client_not_the_proxy(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    staff_site.settings.http.trusted_proxies = PROXY  # type: ignore[assignment]
    assert (await login_from(client, staff_site, "anna", "198.51.100.23")).status == 303
    async with client.get(f"{staff_site.url}/staff/residents", headers={"X-Forwarded-For": "198.51.100.23"}) as page:
        assert page.status == 200
    await staff_site.desk.lane.store.flushed()
    async with staff_site.db.acquire() as conn:
        addresses = await conn.fetch("SELECT DISTINCT address FROM resident_access_log WHERE purpose = 'resident_list'")
    assert [str(r["address"]) for r in addresses] == ["198.51.100.23"]


async def test_many_addresses_guessing_at_one_account_take_the_slow_path(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    """90 wrong passwords from 30 addresses (3 each: every pair stays free) used to meet no 429 at all; past the
    per-account cap every address, the real one included, gets one attempt per `account_delay_s`."""
    from hub.web.staff.context import CONTEXT

    staff_site.settings.http.trusted_proxies = PROXY  # type: ignore[assignment]
    ctx = staff_site.staff_app[CONTEXT]
    assert ctx.throttle is not None
    ctx.throttle.policy = ThrottlePolicy(first_delay_s=60.0, account_free_failures=20, account_delay_s=30.0)
    statuses = [
        (await login_from(client, staff_site, "bo", f"203.0.113.{n}", "guess")).status
        for n in range(30)
        for _ in range(3)
    ]
    assert statuses[:20] == [401] * 20
    assert statuses.count(429) >= 60
    resp = await login_from(client, staff_site, "bo", "198.51.100.7")
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) <= 31  # a short wait, never a lock-out
    assert (await login_from(client, staff_site, "anna", "203.0.113.1")).status == 303  # other accounts: as usual
