"""The manager's follow-up page: only their units, every view logged, charts and downloads; no alarms for managers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from hub.desk.escalation import audience_members
from hub.people.staff import Role, StaffMember
from hub.store.staff import create_staff
from tests.hub.desk_support import PASSWORD
from tests.hub.web.conftest import CHROMIUM, StaffSite
from tests.hub.web.test_staff_browser import axe_violations
from tests.hub.web.test_staff_http import login


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def _managers(site: StaffSite) -> dict[str, StaffMember]:
    """mona manages unit A, maja the whole site; last month had two alarms in A and one in B."""
    raised = (site.clock.now().replace(day=1) - timedelta(days=10)).replace(hour=2)
    async with site.db.acquire() as conn:
        out = {
            "mona": await create_staff(conn, username=f"mona-{site.site}", password=PASSWORD, role=Role.MANAGER,
                                       units=[(site.site, "A")], lang="sv"),
            "maja": await create_staff(conn, username=f"maja-{site.site}", password=PASSWORD, role=Role.MANAGER,
                                       units=[(site.site, "*")], lang="en"),
        }  # fmt: skip
        for n, unit in enumerate(("A", "A", "B")):
            await conn.execute(
                "INSERT INTO desk_alarms (id, key, rule_id, category, severity, site, unit, state, outcome, raised_at, "
                "updated_at, closed_at) VALUES ($1, $1, 'fall', 'care', 4, $2, $3, 'resolved', 'assisted', $4, $4, $4)",
                f"fu-{n}", site.site, unit, raised + timedelta(minutes=n),
            )  # fmt: skip
    return out


async def _views(site: StaffSite, staff_id: int) -> list[tuple[str, str]]:
    async with site.db.acquire() as conn:
        rows = await conn.fetch("SELECT action, target FROM admin_audit_log WHERE staff_id = $1 ORDER BY seq", staff_id)
    return [(r["action"], r["target"]) for r in rows]


async def test_a_manager_sees_only_their_units_and_every_view_is_logged(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    managers = await _managers(staff_site)
    url, site = staff_site.url, staff_site.site
    resp = await login(client, url, f"mona-{site}")
    assert resp.status in (302, 303)
    async with client.get(f"{url}/staff/", allow_redirects=False) as home:
        assert (home.status, home.headers["Location"]) == (302, "/staff/followup")
    async with client.get(f"{url}/staff/followup") as page:
        html = await page.text()
        assert page.status == 200
    assert f'value="{site}/A"' in html
    assert f'value="{site}/B"' not in html
    assert "Trygghetslarm per natt" not in html  # charts are images
    assert html.count('<img src="/staff/followup/chart/') == 3
    assert "Larm" in html  # the Swedish indicator table
    for scope in (f"{site}/B", f"{site}/*", "other/A"):
        async with client.get(f"{url}/staff/followup", params={"scope": scope}) as other:
            assert other.status == 403
    async with client.get(f"{url}/staff/followup/chart/nights.svg", params={"scope": f"{site}/A"}) as chart:
        assert chart.content_type == "image/svg+xml"
        assert (await chart.text()).lstrip().startswith("<?xml")
    async with client.get(f"{url}/staff/followup/report.json", params={"scope": f"{site}/A"}) as dl:
        data = await dl.json()
    assert data["unit"] == "A"
    care = [v for v in data["values"] if v["indicator"] == "alarms.count"]
    assert [v["value"] for v in care] == [2]  # unit B's alarm is not in A's report
    async with client.get(f"{url}/staff/followup/report.pdf", params={"scope": f"{site}/A"}) as pdf:
        assert (await pdf.read()).startswith(b"%PDF")
    assert await _views(staff_site, managers["mona"].id) == [
        ("followup_view", f"{site}/A"), ("followup_download_json", f"{site}/A"), ("followup_download_pdf", f"{site}/A")
    ]  # fmt: skip


async def test_staff_cannot_open_it_and_managers_get_no_alarms(
    staff_site: StaffSite, client: aiohttp.ClientSession
) -> None:
    managers = await _managers(staff_site)
    await login(client, staff_site.url, f"anna-{staff_site.site}")
    async with client.get(f"{staff_site.url}/staff/followup") as page:
        assert page.status == 403
    everyone = [*staff_site.staff.values(), *managers.values()]
    for audience in ("unit", "nurse", "lead", "technical"):
        reached = audience_members(audience, everyone, staff_site.site, "A")
        assert not any(m.role is Role.MANAGER for m in reached)
    assert not managers["maja"].sees(staff_site.site, "A")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium")
async def test_the_page_renders_with_its_charts_in_chromium(staff_site: StaffSite, browser: Browser) -> None:
    await _managers(staff_site)
    ctx = await browser.new_context(viewport={"width": 1024, "height": 900})
    ctx.set_default_timeout(15_000)
    page = await ctx.new_page()
    await page.goto(f"{staff_site.url}/staff/login?lang=en")
    await page.get_by_label("User name").fill(f"maja-{staff_site.site}")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{staff_site.url}/staff/followup")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Follow-up")
    await expect(page.get_by_role("cell", name="Alarms", exact=True).first).to_be_visible()
    images = page.locator("figure img")
    await expect(images).to_have_count(3)
    for i in range(3):
        await expect(images.nth(i)).to_have_js_property("complete", True)
        assert await images.nth(i).evaluate("img => img.naturalWidth") > 0
    await page.get_by_label("Care unit").select_option(f"{staff_site.site}/*")
    assert await axe_violations(page) == []
    await ctx.close()
