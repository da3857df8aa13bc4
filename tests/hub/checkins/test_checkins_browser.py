"""The check-in list in Debian's Chromium, phone-sized: a task on time, a look shown straight from the gateway, the
second look after 'not visible', and axe on the list in both languages."""

from __future__ import annotations

import pytest
from aiohttp import web
from playwright.async_api import Browser, expect

from hub.web.staff import CONTEXT
from tests.hub.checkins.conftest import CheckinSite
from tests.hub.web.conftest import CHROMIUM, staff_page
from tests.hub.web.test_staff_browser import axe_violations

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"),
]


async def test_a_night_patrol_looks_in_and_gets_a_second_look(checkin_site: CheckinSite, browser: Browser) -> None:
    s = checkin_site
    app: web.Application = s.site.staff_app
    app[CONTEXT].checkins = s.service
    await s.service.tick()
    page = await staff_page(browser, s.site.url, s.site.site, "anna")
    colleague = await staff_page(browser, s.site.url, s.site.site, "bo")  # the same unit, another phone
    other_unit = await staff_page(browser, s.site.url, s.site.site, "carl")
    for p in (page, colleague, other_unit):
        await p.goto(f"{s.site.url}/staff/checkins")
    await expect(colleague.locator("li.checkin")).to_contain_text(s.resident)
    await expect(other_unit.locator("li.checkin")).to_have_count(0)
    task = page.locator("li.checkin")
    await expect(task).to_have_count(1)
    await expect(task).to_contain_text(s.resident)
    await expect(task).to_contain_text("23:00")
    assert await axe_violations(page) == []
    await task.get_by_role("button", name="Look").click()
    frame = page.frame_locator("iframe.live-view")
    await expect(frame.locator("body")).to_contain_text("live view")
    await page.get_by_role("button", name="Not visible").click()
    await page.wait_for_url(f"{s.site.url}/staff/checkins")
    await expect(page.locator("li.checkin")).to_contain_text("Second look")
    # the live view came from the gateway to the browser; the hub only asked for the URL
    assert [p for _, p, _ in s.gateway.requests].count("/api/v1/view-tokens") == 1
    for p in (page, colleague, other_unit):
        await p.context.close()
