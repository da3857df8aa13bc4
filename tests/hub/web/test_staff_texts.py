"""Issue 28, finding 7: what the Swedish pages say comes from the catalogues — refusals (403, CSRF, signed out), the
admin page's done and error lines (fixed message ids, never text from the query string) and the kinds of device."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from hub.model import AlarmCategory
from tests.hub.desk_support import decision
from tests.hub.web.conftest import StaffSite
from tests.hub.web.test_staff_http import csrf_of, login


@pytest.fixture
async def swedish(staff_site: StaffSite) -> StaffSite:
    async with staff_site.db.acquire() as conn:
        await conn.execute("UPDATE staff SET lang = 'sv'")
    await staff_site.desk.restorer.refresh()
    return staff_site


async def signed_in(site: StaffSite, name: str) -> aiohttp.ClientSession:
    client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    assert (await login(client, site.url, f"{name}-{site.site}")).status == 303
    return client


@pytest.fixture
async def anna(swedish: StaffSite) -> AsyncIterator[aiohttp.ClientSession]:
    client = await signed_in(swedish, "anna")
    yield client
    await client.close()


@pytest.fixture
async def nils(swedish: StaffSite) -> AsyncIterator[aiohttp.ClientSession]:
    client = await signed_in(swedish, "nils")
    yield client
    await client.close()


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_refusals_are_in_the_persons_language(swedish: StaffSite, anna: aiohttp.ClientSession) -> None:
    async with anna.get(f"{swedish.url}/staff/admin") as resp:
        assert resp.status == 403
        assert await resp.text() == "Administrationen är för sjuksköterskor och teamledare."
    async with anna.post(f"{swedish.url}/staff/duty", data={"csrf": "forged", "duty": "off"}) as resp:
        assert resp.status == 403
        assert await resp.text() == "Sidan var för gammal. Ladda om den och försök igen."
    async with (
        aiohttp.ClientSession() as stranger,
        stranger.post(
            f"{swedish.url}/staff/duty",
            data={"duty": "off"},
            headers={"Accept-Language": "sv-SE,sv;q=0.9", "Origin": swedish.url},
        ) as resp,
    ):
        assert resp.status == 401
        assert await resp.text() == "Du är utloggad. Logga in igen."


async def test_the_admin_page_says_only_its_own_words_of_what_happened(
    swedish: StaffSite, nils: aiohttp.ClientSession
) -> None:
    site = swedish.site
    async with nils.get(f"{swedish.url}/staff/admin") as page:
        token = csrf_of(await page.text())
    form = {"csrf": token, "username": f"ulla-{site}", "name": "Ulla", "role": "staff", "units": f"{site}/A",
            "password": "long-enough-1"}  # fmt: skip
    async with nils.post(f"{swedish.url}/staff/admin/staff-add", data=form) as page:
        shown = text_of(await page.text())
    assert f"Klart: Kontot ulla-{site} är skapat" in shown
    assert "added" not in shown
    async with nils.post(f"{swedish.url}/staff/admin/staff-add", data=form | {"units": "A"}) as page:
        assert "Skriv avdelningar som plats/avdelning" in text_of(await page.text())
    forged = "/staff/admin?done=staff_added&name=Ring+070-123+nu&error=Allt+%C3%A4r+trasigt"
    async with nils.get(f"{swedish.url}{forged}") as page:
        shown = text_of(await page.text())
    assert "Ring 070-123 nu" not in shown  # a name the page does not show is not repeated
    assert "Allt är trasigt" not in shown  # nor any text that is not a message id
    async with nils.get(f"{swedish.url}/staff/admin?done=Vaka+har+st%C3%A4ngts+av") as page:
        assert 'class="done"' not in await page.text()


async def test_the_residents_page_names_kinds_of_device_in_swedish(
    swedish: StaffSite, anna: aiohttp.ClientSession
) -> None:
    site = swedish.site
    silent = decision(
        site, rule_id="device_silent", category=AlarmCategory.TECHNICAL, subject="radar1", device="radar1"
    )
    swedish.desk.lane.apply(silent)
    async with anna.get(f"{swedish.url}/staff/residents") as page:
        shown = text_of(await page.text())
    assert "fall_radar" not in shown
    assert f"Fallradar {site}-radar1 : fel" in shown


async def test_activity_at_home_of_a_resident_marked_away_is_remarked_on(
    swedish: StaffSite, anna: aiohttp.ClientSession
) -> None:
    """Finding 10: "Senaste aktivitet: 23:21 (nyss)" for someone away, with no remark."""
    site = swedish.site
    now = swedish.clock.now()
    async with swedish.db.acquire() as conn:
        await conn.execute(
            "INSERT INTO events (ts, site, device_id, resident_id, kind) VALUES ($1, $2, $3, $4, 'motion')",
            now,
            site,
            f"{site}-plug2",
            f"{site}-r2",
        )
        await conn.execute("UPDATE residents SET away = true WHERE id = $1", f"{site}-r2")
    await swedish.desk.restorer.refresh(sites=True)
    async with anna.get(f"{swedish.url}/staff/residents") as page:
        html = await page.text()
    away = re.search(rf'id="resident-{site}-r2">(.*?)</li>\s*</ul>\s*</li>', html, re.S) or re.search(
        rf'id="resident-{site}-r2">(.*)', html, re.S
    )
    assert away is not None
    shown = text_of(away.group(1))
    assert "Senaste aktivitet" in shown
    assert "stämmer markeringen?" in shown
    assert "stämmer markeringen?" not in text_of(html.split(f'id="resident-{site}-r2"')[0])  # r1 is home
