"""Consents on the staff page: nurses and admins of the resident's unit record, revoke and invite; others cannot.
Staff reads are in the access log with where they came from."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import PG_DSN
from tests.hub.web.conftest import CHROMIUM, StaffSite, staff_page
from tests.hub.web.test_staff_browser import axe_violations
from tests.hub.web.test_staff_http import csrf_of, login


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def test_a_nurse_records_revokes_and_invites(staff_site: StaffSite, client: aiohttp.ClientSession) -> None:
    url, site = staff_site.url, staff_site.site
    r1 = f"{site}-r1"
    assert (await login(client, url, f"nils-{site}")).status == 303
    residents = await (await client.get(f"{url}/staff/residents")).text()
    assert f'href="/staff/residents/{r1}/consents"' in residents
    page = await client.get(f"{url}/staff/residents/{r1}/consents")
    assert page.status == 200
    html = await page.text()
    assert "No consents recorded." in html
    form = {"csrf": csrf_of(html), "action": "grant", "relative": "dotter@example.se", "given_by": "representative"}
    missing_shown = await client.post(f"{url}/staff/residents/{r1}/consents", data={**form, "scope": "night_summary"})
    assert missing_shown.status == 400
    assert "confirm that the consent text was shown" in await missing_shown.text()
    granted = await client.post(
        f"{url}/staff/residents/{r1}/consents",
        data=[*form.items(), ("scope", "night_summary"), ("scope", "device_health"), ("shown", "yes"),
              ("until", "2099-12-31")],
    )  # fmt: skip
    html = await granted.text()
    assert granted.status == 200
    assert "The consent is recorded." in html
    assert html.count('class="consent-live"') == 2
    assert "legal representative" in html
    assert f"nils-{site}" in html
    assert "through 2099-12-31" in html

    invited = await client.post(
        f"{url}/staff/residents/{r1}/consents",
        data={"csrf": form["csrf"], "action": "invite", "relative": "dotter@example.se"},
    )
    link = re.search(r'id="invite-link" readonly value="([^"]+)"', await invited.text())
    assert link is not None
    assert link.group(1).startswith(f"{url}/relative/invite/")

    revoked = await client.post(
        f"{url}/staff/residents/{r1}/consents",
        data={"csrf": form["csrf"], "action": "revoke", "relative": "dotter@example.se"},
    )
    html = await revoked.text()
    assert "The consent is revoked." in html
    assert html.count('class="consent-revoked"') == 2
    async with staff_site.db.acquire() as conn:
        reads = await conn.fetchval(
            "SELECT count(*) FROM resident_access_log WHERE resident_id = $1 AND purpose = 'consents'", r1
        )
    assert reads == 5  # every view of the consents, the refused grant included


async def test_staff_and_other_units_cannot(staff_site: StaffSite, client: aiohttp.ClientSession) -> None:
    url, site = staff_site.url, staff_site.site
    assert (await login(client, url, f"anna-{site}")).status == 303
    assert 'consents"' not in await (await client.get(f"{url}/staff/residents")).text()
    assert (await client.get(f"{url}/staff/residents/{site}-r1/consents")).status == 403
    other = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        assert (await login(other, url, f"nils-{site}")).status == 303
        assert (await other.get(f"{url}/staff/residents/{site}-r3/consents")).status == 404  # unit B
    finally:
        await other.close()


async def test_staff_reads_are_logged_with_where_from_and_printed(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    url, site = staff_site.url, staff_site.site
    assert (await login(client, url, f"anna-{site}")).status == 303
    assert (await client.get(f"{url}/staff/residents")).status == 200
    await staff_site.desk.lane.store.flushed()
    async with staff_site.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT resident_id, role, purpose, address, staff_id FROM resident_access_log ORDER BY resident_id"
        )
    assert [(r["resident_id"], r["role"], r["purpose"], r["address"]) for r in rows] == [
        (f"{site}-r1", "staff", "resident_list", "127.0.0.1"),
        (f"{site}-r2", "staff", "resident_list", "127.0.0.1"),
    ]
    printed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hub.cli", "access-log", f"{site}-r1", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "VAKA_DB__DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": staff_site.settings.db.db_schema},
    )
    assert printed.returncode == 0, printed.stderr
    lines = [json.loads(line) for line in printed.stdout.splitlines()]
    assert [(x["who"], x["role"], x["what"], x["from"]) for x in lines] == [
        (f"anna-{site}", "staff", "resident_list", "127.0.0.1")
    ]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium")
async def test_the_consents_page_records_in_chromium_without_serious_violations(
    browser: Browser, staff_site: StaffSite
) -> None:
    site = staff_site.site
    page = await staff_page(browser, staff_site.url, site, "nils")
    await page.goto(f"{staff_site.url}/staff/residents")
    await page.get_by_role("link", name=f"{site}-r1").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Consents for {site}-r1")
    assert await axe_violations(page) == []
    form = page.locator("form.grant")
    await form.get_by_label("Relative's e-mail address").fill("dotter@example.se")
    await form.get_by_label("Night summary").check()
    await form.get_by_label("legal representative").check()
    await form.get_by_label("The resident was shown the consent text, version").check()
    await form.get_by_role("button", name="Record consent").click()
    await expect(page.get_by_role("status")).to_have_text("The consent is recorded.")
    await expect(page.locator("tr.consent-live")).to_have_count(1)
    found = await axe_violations(page)
    assert found == [], [(v["id"], v["help"]) for v in found]
