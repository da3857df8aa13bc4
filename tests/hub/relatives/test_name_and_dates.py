"""What a relative reads is hers to read (issue 26): the name the care team recorded (resident directory, only for a
resident consented to her, every read in the access log), the unit's phone number, and dates and times in the page's
language and the resident's zone, never ISO strings; in Arabic on a 390 px phone each date stays whole."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, async_playwright, expect

from hub.model import DirectoryEntry
from hub.people.residents import store_entries
from hub.relatives.consent import Scope
from tests.hub.relatives.conftest import DAUGHTER, PASSWORD, Relative, RelativesSite
from tests.hub.web.conftest import ARGS, CHROMIUM

ZONE = ZoneInfo("Europe/Stockholm")
PHONE = "+46 90 16 00 00"
ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d|\d\d:\d\dT|T\d\d:\d\d")
MONTHS = {"sv": "december", "en": "December", "fi": "joulukuuta", "ar": "ديسمبر"}


def visible_text(html: str) -> str:
    """The page's text without tags and attributes (a `datetime=` attribute may be ISO: it is for machines)."""
    return re.sub(r"<[^>]*>", " ", html)


async def _setup(site: RelativesSite) -> datetime:
    """Karin Berg (r1) in the directory, unit A's phone; the clock at 10:30 on 7 December 2026 after a fall at 02:10
    handled at 02:14 (local); the daughter's consent for r1 only."""
    home = site.home
    home.settings.relatives.unit_phones = {f"{home.site}/A": PHONE, "*": "+46 8 000 00 00"}
    morning = datetime(2026, 12, 7, 10, 30, tzinfo=ZONE)
    site.clock.advance((morning - site.clock()).total_seconds())
    handled = datetime(2026, 12, 7, 2, 14, tzinfo=ZONE)
    async with home.db.acquire() as conn:
        await store_entries(
            conn,
            [
                DirectoryEntry(resident=home.resident(1), name="Karin Berg", address="Storgatan 1"),
                DirectoryEntry(resident=home.resident(2), name="Olle Ek", address="Ytterby 4"),
            ],
        )
        await conn.execute(
            "INSERT INTO desk_alarms (id, key, rule_id, category, severity, site, unit, resident_id, reason, state,"
            " outcome, raised_at, updated_at, accepted_by, closed_at) VALUES ($1, $2, 'fall_detected', 'care', 4, $3,"
            " 'A', $4, 'x', 'resolved', 'assisted', $5, $5, 'Anna', $6)",
            uuid.uuid4().hex, f"fall:{uuid.uuid4().hex}", home.site, home.resident(1), handled - timedelta(minutes=4),
            handled,
        )  # fmt: skip
    await site.grant(DAUGHTER, home.resident(1), Scope.NIGHT_SUMMARY, Scope.ALARM_NOTICE, Scope.DEVICE_HEALTH)
    return handled


async def test_the_recorded_name_the_units_phone_and_dates_in_her_language(
    daughter: Relative, relatives_site: RelativesSite
) -> None:
    handled = await _setup(relatives_site)
    r1, r2 = relatives_site.home.resident(1), relatives_site.home.resident(2)
    status, listed = await daughter.get_json("/relative/api/v1/residents")
    assert listed == {"residents": [{"id": r1, "name": "Karin Berg", "scopes": sorted(s.value for s in Scope)}]}
    status, body = await daughter.get_json(f"/relative/api/v1/residents/{r1}/status")
    assert (status, body["name"], body["unit_phone"]) == (200, "Karin Berg", PHONE)
    assert body["alarm_notices"] == [{"handled_at": handled.isoformat(timespec="minutes"), "category": "care"}]
    status, body = await daughter.get_json(f"/relative/api/v1/residents/{r2}/status")
    assert status == 404  # never shared with her: as an unknown id (issue 24)
    assert "Olle" not in str(body)

    for lang in ("sv", "en", "fi", "ar"):
        html = await (await daughter.http.get(f"/relative/residents/{r1}?lang={lang}")).text()
        text = visible_text(html)
        assert "Karin Berg" in text
        assert r1 not in text  # the pseudonym means nothing to her
        assert f'href="tel:{PHONE.replace(" ", "")}"' in html
        assert not ISO_DATE.search(text), (lang, ISO_DATE.findall(text))
        assert MONTHS[lang] in text, lang
        home = await (await daughter.http.get(f"/relative/?lang={lang}")).text()
        assert "Karin Berg" in visible_text(home)
        assert "Olle Ek" not in home
    sv = visible_text(await (await daughter.http.get(f"/relative/residents/{r1}?lang=sv")).text())
    assert "söndag 6 december 2026" in sv  # the night of 6 to 7 December
    assert "7 december 2026 02:14" in sv  # the site's time, not UTC (01:14)

    async with relatives_site.home.db.acquire() as conn:
        rows = await conn.fetch("SELECT resident_id, purpose, address FROM resident_access_log ORDER BY seq")
    assert {r["resident_id"] for r in rows} == {r1}  # Olle's name was never read
    assert all(r["address"] == "127.0.0.1" for r in rows)
    assert {"status_page", "resident_list", "api_status", "api_residents"} <= {r["purpose"] for r in rows}


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium")
async def test_arabic_dates_stay_whole_on_a_390_px_phone(chromium: Browser, relatives_site: RelativesSite) -> None:
    await _setup(relatives_site)
    r1 = relatives_site.home.resident(1)
    ctx = await chromium.new_context(viewport={"width": 390, "height": 844}, locale="ar")
    ctx.set_default_timeout(10_000)
    page = await ctx.new_page()
    await page.goto(f"{await relatives_site.invite(DAUGHTER, r1)}?lang=ar")
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#password2").fill(PASSWORD)
    await page.locator("form button[type=submit]").click()
    await page.wait_for_url("**/relative/?welcome=1")
    await page.goto(f"{relatives_site.url}/relative/residents/{r1}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Karin Berg")
    await expect(page.locator(".unit-phone a")).to_have_text(PHONE)
    dates = page.locator("time.when")
    await expect(dates).to_have_count(3)  # the night, the time it was handled, the notice's date and time
    for i in range(3):
        when = dates.nth(i)
        assert "ديسمبر" in await when.inner_text() or i == 1
        # bidi runs (Arabic words, Latin digits) are separate boxes: on one line they share a top
        lines = await when.evaluate("e => new Set(Array.from(e.getClientRects(), r => Math.round(r.top))).size")
        box = await when.bounding_box()
        assert lines == 1, (i, await when.inner_text())  # one piece: not broken across lines
        assert box is not None
        assert box["x"] >= 0, box  # and on the screen
        assert box["x"] + box["width"] <= 390, box
    await ctx.close()
