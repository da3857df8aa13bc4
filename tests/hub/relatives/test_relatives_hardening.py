"""The relatives' routes share the staff routes' hardening: malformed bodies are a 400 (never a 500 with a traceback),
and the login throttle holds per (account, address) with a per-account cap across addresses, so nobody who knows a
relative's e-mail can lock her out, and many addresses together cannot guess on."""

from __future__ import annotations

import ipaddress
import re

import aiohttp
import pytest

from hub.web.staff.throttle import ThrottlePolicy
from tests.hub.relatives.conftest import DAUGHTER, PASSWORD, Relative, RelativesSite

MALFORMED = [
    ("application/x-www-form-urlencoded; charset=no-such-charset", b"email=a&password=b"),
    ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="email"\r\n\r\nbroken'),
    ("application/x-www-form-urlencoded", b"email=\xff\xfe&password=%ff"),
    ("application/json", b'{"id": \xff'),
]


@pytest.mark.parametrize(("content_type", "body"), MALFORMED, ids=["charset", "multipart", "not-utf8", "json"])
@pytest.mark.parametrize("path", ["/relative/login", "/relative/invite/sometoken", "/relative/passkey/login"])
async def test_malformed_bodies_are_a_400(
    relatives_site: RelativesSite, path: str, content_type: str, body: bytes
) -> None:
    async with aiohttp.ClientSession(base_url=relatives_site.url, headers={"Origin": relatives_site.url}) as http:
        resp = await http.post(path, data=body, headers={"Content-Type": content_type})
        text = await resp.text()
    assert 400 <= resp.status < 500, text
    assert "Traceback" not in text
    assert resp.headers.get("X-Content-Type-Options") == "nosniff"


async def login_from(site: RelativesSite, address: str, email: str, password: str) -> aiohttp.ClientResponse:
    """A sign-in as if from `address`, behind the test's trusted reverse proxy."""
    async with aiohttp.ClientSession(
        base_url=site.url, cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": site.url}
    ) as http:
        page = await http.get("/relative/login?lang=en", headers={"X-Forwarded-For": address})
        csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert csrf is not None
        form = {"csrf": csrf.group(1), "email": email, "password": password, "lang": "en"}
        resp = await http.post(
            "/relative/login", data=form, headers={"X-Forwarded-For": address}, allow_redirects=False
        )
        await resp.read()
        return resp


@pytest.fixture
def behind_a_proxy(relatives_site: RelativesSite) -> None:
    relatives_site.home.settings.http.trusted_proxies = [ipaddress.ip_network("127.0.0.1/32")]  # type: ignore[list-item]


async def test_wrong_passwords_from_another_address_do_not_lock_a_relative_out(
    relatives_site: RelativesSite, daughter: Relative, behind_a_proxy: None
) -> None:
    statuses = [(await login_from(relatives_site, "203.0.113.66", DAUGHTER, "guess")).status for _ in range(6)]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[-1] == 429  # the guesser waits …
    assert (await login_from(relatives_site, "203.0.113.66", DAUGHTER, PASSWORD)).status == 429  # … even if right
    assert (await login_from(relatives_site, "198.51.100.7", DAUGHTER, PASSWORD)).status == 303  # her own phone
    assert (await login_from(relatives_site, "203.0.113.66", "son@example.se", "guess")).status == 401  # not held


async def test_many_addresses_guessing_at_one_relative_are_slowed_down(
    relatives_site: RelativesSite, daughter: Relative, behind_a_proxy: None
) -> None:
    from hub.web.relatives import CONTEXT

    ctx = relatives_site.app[CONTEXT]
    ctx.throttle.policy = ThrottlePolicy(free_failures=3, account_free_failures=20, account_delay_s=30.0)
    statuses = [
        (await login_from(relatives_site, f"203.0.113.{n}", DAUGHTER, "guess")).status
        for n in range(30)
        for _ in (1, 2)
    ]
    assert statuses[:20] == [401] * 20
    assert statuses.count(429) >= 35
    limited = await login_from(relatives_site, "198.51.100.7", DAUGHTER, PASSWORD)
    assert limited.status == 429  # the slow path: one attempt per 30 s for the account …
    assert int(limited.headers["Retry-After"]) <= 31  # … a short wait, never a lock-out
