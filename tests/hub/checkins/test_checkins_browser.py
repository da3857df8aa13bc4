"""The check-in list in Debian's Chromium, phone-sized: a task on time, a look shown straight from the gateway, the
second look after 'not visible', and axe on the list in both languages."""

from __future__ import annotations

import pytest
from aiohttp import web
from playwright.async_api import Browser, expect

from hub.web.staff.context import CONTEXT
from tests.hub.checkins.conftest import CheckinSite, on_the_route
from tests.hub.desk_support import decision
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


async def test_the_route_has_the_due_visits_with_the_alarms_done_in_a_tap_in_both_languages(
    checkin_site: CheckinSite, browser: Browser
) -> None:
    """Phone-sized, on the hub's clock: r1's camera check-in turned into a visit (camera not working) is on the route
    next door with the resident's name, address and due time; the alarm across town comes after; "Visited" on the
    route takes it off and stays on the route; axe finds nothing serious in English or Swedish."""
    s = checkin_site
    site = s.site.site
    await on_the_route(s)
    (look,) = await s.service.tick()
    await s.service.record(look.id, s.site.staff["bo"], "camera_not_working")
    alarm = s.site.desk.lane.apply(decision(site, subject="r2", resident="r2", device="plug2", rule_id="alarm_button"))
    assert alarm is not None
    page = await staff_page(browser, s.site.url, site, "anna")
    await page.goto(f"{s.site.url}/staff/patrol?from=63.8258,20.2630")
    route = page.locator("li.patrol-stop")
    await expect(route).to_have_count(2)
    visit = route.nth(0)
    await expect(visit.locator(".stop-what")).to_have_text("Check-in visit")
    await expect(visit.locator(".stop-home")).to_have_text("Karin Berg, Storgatan 1")
    await expect(visit.locator(".visit-due")).to_have_text("at 22:50")  # made a visit at once, due now
    await expect(visit.locator(".minutes")).to_have_text("0 min away")
    await expect(route.nth(1).locator(".stop-what")).to_have_text("Alarm button")
    found = await axe_violations(page)
    assert found == [], [(v["id"], v["help"]) for v in found]
    await page.get_by_role("button", name="Svenska").click()
    await expect(page.locator("h1")).to_have_text("Rutt: larm och besök i restidsordning")
    await expect(visit.locator(".stop-what")).to_have_text("Tillsynsbesök")
    await expect(visit.locator(".visit-due")).to_have_text("kl. 22:50")
    found = await axe_violations(page)
    assert found == [], [(v["id"], v["help"]) for v in found]
    s.site.clock.advance(40 * 60)  # 23:30: the visit's half hour is over
    await page.reload()
    await expect(visit.locator(".overdue-badge")).to_have_text("Försenad")
    await visit.get_by_role("button", name="Besökt, allt väl").click()
    await page.wait_for_url(f"{s.site.url}/staff/patrol?from=63.8258,20.2630")  # still counted from here
    await expect(page.locator("li.patrol-stop")).to_have_count(1)
    await expect(page.locator("li.patrol-stop .stop-what")).to_have_text("Larmknapp")
    async with s.site.db.acquire() as conn:
        outcome = await conn.fetchval("SELECT outcome FROM checkins WHERE id = $1", f"{look.id}-visit")
    assert outcome == "visited"
    await page.context.close()
