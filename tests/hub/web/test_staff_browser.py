"""The staff page in Debian's Chromium (headless, Playwright, no browser download): live alarms, accept, units, axe."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.hub.desk_support import decision
from tests.hub.web.conftest import CHROMIUM, StaffSite, staff_page

AXE = Path(__file__).with_name("axe.min.js")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium")


async def pages_connected(site: StaffSite, n: int) -> None:
    """Wait until `n` staff pages hold a live connection to the hub."""
    for _ in range(100):
        if site.desk.pages.client_count >= n:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"only {site.desk.pages.client_count} of {n} staff pages connected")


async def test_alarm_reaches_both_pages_of_the_unit_and_acceptance_shows_on_the_other(
    browser: Browser, staff_site: StaffSite
) -> None:
    anna = await staff_page(browser, staff_site.url, staff_site.site, "anna")
    bo = await staff_page(browser, staff_site.url, staff_site.site, "bo")
    carl = await staff_page(browser, staff_site.url, staff_site.site, "carl")  # unit B
    await pages_connected(staff_site, 3)

    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    card = f"#alarm-{alarm.id}"
    for page in (anna, bo):
        await expect(page.locator(card)).to_be_visible(timeout=1000)
        await expect(page.locator(card).locator(".room")).to_have_text("101")
        await expect(page.locator(card).locator(".nobody")).to_be_visible()
    assert await anna.evaluate("document.body.classList.contains('is-ringing')")

    await anna.locator(card).get_by_role("button", name="Accept").click()
    await expect(bo.locator(card).locator(".accepted-by")).to_have_text("Anna", timeout=1000)
    await expect(bo.locator(card).locator(".state")).to_have_text("Accepted")
    await expect(bo.locator(card).get_by_role("button", name="Accept")).to_be_hidden()
    assert not await bo.evaluate("document.body.classList.contains('is-ringing')")

    await anna.locator(card).get_by_role("button", name="On my way").click()
    await expect(bo.locator(card).locator(".state")).to_have_text("On the way", timeout=1000)
    await anna.locator(card).get_by_role("button", name="On site").click()
    resolve = anna.locator(card).locator("form.act-resolve")
    await resolve.get_by_label("Outcome").select_option("false_alarm")
    await resolve.get_by_label("Note (optional)").fill("radar saw the cat")
    await resolve.get_by_role("button", name="Resolve").click()
    for page in (anna, bo):
        await expect(page.locator(card)).to_have_count(0, timeout=1000)

    assert await carl.locator("li.alarm").count() == 0
    assert staff_site.desk.machine.get(alarm.id) is None


async def test_page_says_plainly_when_the_connection_is_lost(browser: Browser, staff_site: StaffSite) -> None:
    page = await staff_page(browser, staff_site.url, staff_site.site, "anna")
    await pages_connected(staff_site, 1)
    await staff_site.stop_serving()
    await expect(page.locator("#conn-lost")).to_be_visible(timeout=3000)
    await staff_site.start_serving()
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    await expect(page.locator(f"#alarm-{alarm.id}")).to_be_visible(timeout=5000)  # caught up on reconnect
    await expect(page.locator("#conn-lost")).to_be_hidden()


async def test_a_page_whose_hub_stopped_stops_its_clock_and_its_buttons(
    browser: Browser, staff_site: StaffSite
) -> None:
    """Issue 28, finding 5: with the hub gone the page's ages kept counting (at 30x in the demo) and "Accept" stayed
    clickable; now the clock stands still and nothing can be pressed until the hub answers again."""
    staff_site.clock.speed = 30.0  # a demo's simulated clock: the page moves its ages on at 30x between messages
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    page = await staff_page(browser, staff_site.url, staff_site.site, "anna")
    await pages_connected(staff_site, 1)
    running = await page.evaluate("window.vakaHubNow()")
    await page.wait_for_timeout(300)
    assert await page.evaluate("window.vakaHubNow()") > running
    accept = page.locator(f"#alarm-{alarm.id}").get_by_role("button", name="Accept")
    await expect(accept).to_be_enabled()
    await staff_site.stop_serving()
    await expect(page.locator("#conn-lost")).to_be_visible(timeout=3000)
    await expect(accept).to_be_disabled()
    stood = await page.evaluate("window.vakaHubNow()")
    await page.wait_for_timeout(300)  # the clock would have moved 9 s of hub time by now
    assert await page.evaluate("window.vakaHubNow()") == stood
    await staff_site.start_serving()
    await expect(page.locator("#conn-lost")).to_be_hidden(timeout=5000)
    await expect(accept).to_be_enabled()
    moving = await page.evaluate("window.vakaHubNow()")
    await page.wait_for_timeout(300)
    assert await page.evaluate("window.vakaHubNow()") > moving  # it runs again from the hub's time


@pytest.mark.slow
async def test_a_page_stops_its_clock_as_soon_as_the_simulation_ends(browser: Browser, staff_site: StaffSite) -> None:
    """Running the demo (issue 28): when the simulated night ended the page's clock ran on at 300x until its next
    ping (10 s: 50 simulated minutes, "11:07" in the header while the hub stood at 10:30). The hub tells its pages of
    a rate change at its next tick."""
    staff_site.clock.speed = 300.0
    page = await staff_page(browser, staff_site.url, staff_site.site, "anna")
    await pages_connected(staff_site, 1)
    running = await page.evaluate("window.vakaHubNow()")
    await page.wait_for_timeout(100)
    assert await page.evaluate("window.vakaHubNow()") > running
    staff_site.clock.speed = 0.0  # the simulator's last clock message: speed 0
    staff_site.desk.lane.tick()
    hub_ms = staff_site.clock.now().timestamp() * 1000
    back = f"() => Math.abs(window.vakaHubNow() - {hub_ms}) < 1"  # the page's time is the hub's (to the ms)
    await page.wait_for_function(back, timeout=2000)  # not at the next ping, 10 s later
    await page.wait_for_timeout(300)
    assert await page.evaluate(back)  # and stands still


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: vendor it with `npm pack axe-core` (package/axe.min.js)")
    await page.evaluate(AXE.read_text())
    result = await page.evaluate("async () => JSON.stringify((await axe.run(document)).violations)")
    violations: list[dict[str, Any]] = json.loads(result)
    return [v for v in violations if v.get("impact") in ("serious", "critical")]


async def test_login_and_staff_pages_have_no_serious_accessibility_violations(
    browser: Browser, staff_site: StaffSite
) -> None:
    ctx = await browser.new_context(viewport={"width": 390, "height": 844})
    login = await ctx.new_page()
    await login.goto(f"{staff_site.url}/staff/login")
    assert await axe_violations(login) == []

    staff_site.desk.lane.apply(decision(staff_site.site))
    staff_site.desk.lane.apply(
        decision(staff_site.site, device="mystery-9", resident=None, subject="mystery-9", unregistered=True)
    )
    page = await staff_page(browser, staff_site.url, staff_site.site, "anna")
    await expect(page.locator("li.alarm")).to_have_count(2)
    found = await axe_violations(page)
    assert found == [], [(v["id"], v["help"]) for v in found]
    await page.goto(f"{staff_site.url}/staff/residents")
    assert await axe_violations(page) == []
