"""The relatives page in Debian's Chromium: invitation, password and passkey login, only consented residents,
revocation reaching an open page within 60 s, four languages without serious accessibility violations, Arabic RTL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from hub.relatives.consent import Scope
from tests.hub.relatives.conftest import RelativesSite
from tests.hub.web.conftest import ARGS, CHROMIUM
from tests.hub.web.test_staff_browser import AXE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"),
]
PASSWORD = "mammas natt 2026"
DAUGHTER = "dotter@example.se"


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def phone(browser: Browser) -> tuple[BrowserContext, Page]:
    ctx = await browser.new_context(viewport={"width": 390, "height": 844}, locale="sv-SE")
    ctx.set_default_timeout(10_000)
    return ctx, await ctx.new_page()


async def accept_invitation(page: Page, link: str, lang: str = "en") -> None:
    await page.goto(f"{link}?lang={lang}")
    await page.get_by_label("New password (at least 8 characters)").fill(PASSWORD)
    await page.get_by_label("The same password again").fill(PASSWORD)
    await page.get_by_role("button", name="Save the password").click()
    await expect(page.locator(".notice")).to_have_text("Welcome! Your password is saved.")


async def axe_serious(page: Page) -> list[dict[str, Any]]:
    await page.evaluate(AXE.read_text())
    result = await page.evaluate("async () => JSON.stringify((await axe.run(document)).violations)")
    return [v for v in json.loads(result) if v.get("impact") in ("serious", "critical")]


async def test_password_login_sees_last_night_of_the_consented_resident_only(
    chromium: Browser, relatives_site: RelativesSite
) -> None:
    r1, r2 = relatives_site.home.resident(1), relatives_site.home.resident(2)
    await relatives_site.grant(DAUGHTER, r1, Scope.NIGHT_SUMMARY, Scope.DEVICE_HEALTH)
    link = await relatives_site.invite(DAUGHTER, r1)
    ctx, page = await phone(chromium)
    await accept_invitation(page, link)
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/relative/login")

    await page.goto(f"{relatives_site.url}/relative/login?lang=en")
    await page.get_by_label("E-mail address").fill(DAUGHTER)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(f"{relatives_site.url}/relative/")
    links = page.locator("ul.residents a")
    await expect(links).to_have_count(1)
    await links.first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Resident {r1}")
    await expect(page.locator("section.night .summary")).to_have_text("A calm night.")
    await expect(page.locator("section.devices")).to_contain_text("The technology at home works.")
    await expect(page.locator("section.notices")).to_have_count(0)

    # a resident never shared with her: the same answer as an id Vaka does not know (no enumeration)
    response = await page.goto(f"{relatives_site.url}/relative/residents/{r2}")
    assert response is not None
    assert response.status == 404
    await expect(page.get_by_role("alert")).to_have_text("This is no longer shared with you.")
    await ctx.close()


async def test_passkey_added_and_used_through_chromiums_virtual_authenticator(
    chromium: Browser, relatives_site: RelativesSite
) -> None:
    r1 = relatives_site.home.resident(1)
    await relatives_site.grant(DAUGHTER, r1, Scope.NIGHT_SUMMARY)
    ctx, page = await phone(chromium)
    cdp = await ctx.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    await accept_invitation(page, await relatives_site.invite(DAUGHTER, r1))
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page.locator("#passkey-message")).to_have_text(
        "The passkey is saved. Next time you can sign in with it."
    )
    async with relatives_site.home.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM relative_passkeys") == 1

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/relative/login")
    await page.goto(f"{relatives_site.url}/relative/login?lang=en")
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await page.wait_for_url(f"{relatives_site.url}/relative/")
    await expect(page.locator("ul.residents a")).to_have_text(f"Resident {r1}")
    async with relatives_site.home.db.acquire() as conn:
        assert await conn.fetchval("SELECT last_used_at FROM relative_passkeys") is not None
    await ctx.close()


async def test_revocation_reaches_the_open_page_within_60_s(chromium: Browser, relatives_site: RelativesSite) -> None:
    r1 = relatives_site.home.resident(1)
    assert relatives_site.home.settings.relatives.refresh_s <= 60
    await relatives_site.grant(DAUGHTER, r1, Scope.NIGHT_SUMMARY)
    ctx, page = await phone(chromium)
    await accept_invitation(page, await relatives_site.invite(DAUGHTER, r1))
    await page.goto(f"{relatives_site.url}/relative/residents/{r1}?lang=en")
    await expect(page.locator("section.night .summary")).to_have_text("A calm night.")

    revoked = await asyncio.to_thread(
        relatives_site.home.vaka,
        "consent", "revoke", r1, "--relative", DAUGHTER, "--recorded-by", f"nils-{relatives_site.home.site}",
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    started = time.monotonic()
    await expect(page.get_by_role("alert")).to_have_text("This is no longer shared with you.", timeout=60_000)
    assert time.monotonic() - started < 60
    await expect(page.locator("section.night")).to_have_count(0)
    await ctx.close()


async def test_an_invitation_link_cannot_be_used_twice_or_after_expiry(
    chromium: Browser, relatives_site: RelativesSite
) -> None:
    r1 = relatives_site.home.resident(1)
    link = await relatives_site.invite(DAUGHTER, r1)
    ctx, page = await phone(chromium)
    await accept_invitation(page, link)
    other_ctx, other = await phone(chromium)
    await other.goto(f"{link}?lang=en")
    await expect(other.get_by_role("alert")).to_have_text("The link has already been used. Sign in with your password.")
    await expect(other.get_by_label("New password (at least 8 characters)")).to_have_count(0)

    old = await relatives_site.invite("son@example.se", r1, at=datetime.now(UTC) - timedelta(hours=73))
    await other.goto(f"{old}?lang=en")
    await expect(other.get_by_role("alert")).to_contain_text("The link has expired")
    await ctx.close()
    await other_ctx.close()


@pytest.mark.parametrize("lang", ["sv", "en", "fi", "ar"])
async def test_four_languages_without_serious_violations_and_arabic_right_to_left(
    chromium: Browser, relatives_site: RelativesSite, lang: str
) -> None:
    r1 = relatives_site.home.resident(1)
    await relatives_site.grant(DAUGHTER, r1, Scope.NIGHT_SUMMARY, Scope.ALARM_NOTICE, Scope.DEVICE_HEALTH)
    ctx, page = await phone(chromium)
    await page.goto(f"{relatives_site.url}/relative/login?lang={lang}")
    found = await axe_serious(page)
    assert found == [], [(v["id"], v["help"]) for v in found]
    await page.goto(f"{await relatives_site.invite(DAUGHTER, r1)}?lang={lang}")
    assert await axe_serious(page) == []
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#password2").fill(PASSWORD)
    await page.locator("form button[type=submit]").click()
    await page.wait_for_url("**/relative/?welcome=1")
    assert await axe_serious(page) == []
    await page.goto(f"{relatives_site.url}/relative/residents/{r1}")
    found = await axe_serious(page)
    assert found == [], [(v["id"], v["help"]) for v in found]
    assert await page.evaluate("document.documentElement.lang") == lang
    direction = await page.evaluate("getComputedStyle(document.querySelector('main')).direction")
    assert direction == ("rtl" if lang == "ar" else "ltr")
    assert await page.evaluate("document.documentElement.dir") == ("rtl" if lang == "ar" else "ltr")
    await ctx.close()
