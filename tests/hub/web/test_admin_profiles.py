"""Rule profiles on the nurse's admin page over HTTP, against the real database: nurses and admins only, residents of
their own units only, names from the loaded rule packs only (a clear message otherwise), CSRF like every form, and
every change a row in the append-only admin_audit_log."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.hub.web.conftest import StaffSite
from tests.hub.web.test_staff_http import csrf_of, login


@pytest.fixture
async def nurse(staff_site: StaffSite) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await login(client, staff_site.url, f"nils-{staff_site.site}")
        yield client


async def admin_html(site: StaffSite, client: aiohttp.ClientSession) -> str:
    async with client.get(f"{site.url}/staff/admin") as page:
        assert page.status == 200
        return await page.text()


async def set_profile(
    site: StaffSite, client: aiohttp.ClientSession, resident: str, profile: str, csrf: str | None = None
) -> tuple[int, str]:
    """Post the form; (status, the done or error message the page then shows)."""
    token = csrf if csrf is not None else csrf_of(await admin_html(site, client))
    async with client.post(f"{site.url}/staff/admin/resident-profile", allow_redirects=False,
                           data={"csrf": token, "id": resident, "profile": profile}) as resp:  # fmt: skip
        location = resp.headers.get("Location", "")
        if resp.status != 303:
            return resp.status, ""
    async with client.get(f"{site.url}{location}") as page:
        shown = re.search(r'<p class="(?:done|error)" role="(?:status|alert)">(.*?)</p>', await page.text(), re.S)
    return resp.status, html.unescape(shown.group(1)) if shown else ""


def selected(page: str, resident: str) -> str:
    """The profile chosen in a resident's form ('' for none)."""
    form = re.search(rf'<li id="admin-profile-{re.escape(resident)}">(.*?)</li>', page, re.S)
    assert form is not None
    choice = re.search(r'<option value="([^"]*)" selected>', form.group(1))
    assert choice is not None
    return choice.group(1)


async def test_a_nurse_gives_a_resident_of_her_unit_a_profile_and_every_change_is_audited(
    staff_site: StaffSite, nurse: aiohttp.ClientSession
) -> None:
    site, r1 = staff_site.site, f"{staff_site.site}-r1"
    page = await admin_html(staff_site, nurse)
    text = re.sub(r"<[^>]+>", "", page)
    assert "Rule profiles" in text
    assert "Walks at night (wanders_at_night)" in text  # the catalogue, in words
    assert "Night 21:00–08:00" in text
    assert "Out of bed, not back: after 10 min" in text
    assert selected(page, r1) == ""
    assert f'id="admin-profile-{site}-r3"' not in page  # unit B is not hers

    saved = (303, f"Done: Rule profile of {r1} saved")
    assert await set_profile(staff_site, nurse, r1, "wanders_at_night") == saved
    assert selected(await admin_html(staff_site, nurse), r1) == "wanders_at_night"
    assert await set_profile(staff_site, nurse, r1, "camera_watch") == saved
    assert await set_profile(staff_site, nurse, r1, "") == (303, f"Done: {r1} has no rule profile now")
    assert selected(await admin_html(staff_site, nurse), r1) == ""

    async with staff_site.db.acquire() as conn:
        audit = [
            (r["staff_id"], r["action"], r["target"], r["detail"])
            for r in await conn.fetch("SELECT staff_id, action, target, detail FROM admin_audit_log ORDER BY seq")
        ]
        left = await conn.fetchval("SELECT count(*) FROM resident_rule_profiles")
    nils = staff_site.staff["nils"].id
    assert audit == [
        (nils, "resident_profile", r1, "profile=wanders_at_night was=none"),
        (nils, "resident_profile", r1, "profile=camera_watch was=wanders_at_night"),
        (nils, "resident_profile", r1, "profile=none was=camera_watch"),
    ]
    assert left == 0


async def test_mistakes_are_refused_with_a_clear_message_and_change_nothing(
    staff_site: StaffSite, nurse: aiohttp.ClientSession
) -> None:
    site = staff_site.site
    assert await set_profile(staff_site, nurse, f"{site}-r1", "night_owl") == (
        303,
        "No such rule profile in the loaded rule packs.",
    )
    assert await set_profile(staff_site, nurse, f"{site}-r3", "sleeps_late") == (303, "That is not in your units.")
    assert await set_profile(staff_site, nurse, f"{site}-r1", "sleeps_late", csrf="forged") == (403, "")
    async with staff_site.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM resident_rule_profiles") == 0
        assert await conn.fetchval("SELECT count(*) FROM admin_audit_log") == 0


async def test_only_nurses_and_admins_set_profiles_and_an_admin_reaches_the_whole_site(
    staff_site: StaffSite, nurse: aiohttp.ClientSession
) -> None:
    site = staff_site.site
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff:
        await login(staff, staff_site.url, f"anna-{site}")
        async with staff.get(f"{staff_site.url}/staff/") as page:
            token = csrf_of(await page.text())
        async with staff.post(f"{staff_site.url}/staff/admin/resident-profile", allow_redirects=False,
                              data={"csrf": token, "id": f"{site}-r1", "profile": "sleeps_late"}) as resp:  # fmt: skip
            assert resp.status == 403
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as admin:
        await login(admin, staff_site.url, f"lisa-{site}")
        assert await set_profile(staff_site, admin, f"{site}-r3", "sleeps_late") == (
            303,
            f"Done: Rule profile of {site}-r3 saved",
        )
    async with staff_site.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT profile, set_by FROM resident_rule_profiles WHERE resident_id = $1", f"{site}-r3"
        )
    assert row is not None
    assert (row["profile"], row["set_by"]) == ("sleeps_late", f"staff:{staff_site.staff['lisa'].id}")


async def test_a_profile_the_loaded_packs_no_longer_define_is_said_on_the_page(
    staff_site: StaffSite, nurse: aiohttp.ClientSession
) -> None:
    site = staff_site.site
    async with staff_site.db.acquire() as conn:
        await conn.execute(
            "INSERT INTO resident_rule_profiles (resident_id, profile, set_by, set_at) VALUES ($1, 'old_one', 'cli', now())",
            f"{site}-r2",
        )
    page = await admin_html(staff_site, nurse)
    assert "Profile old_one is not in the loaded rule packs: the pack&#39;s values apply." in page
