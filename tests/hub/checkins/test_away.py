"""A resident marked away or in hospital gets no check-in (issue 26): no task while the mark is set, the open ones
close as 'away', and a look into the empty home (or an outcome for it) is refused and logged. Through the service
and in Debian's Chromium."""

from __future__ import annotations

import pytest
from aiohttp import web
from playwright.async_api import Browser, expect

from hub.checkins.service import CheckinError
from hub.store.inventory import set_resident_away
from hub.web.staff.context import CONTEXT
from tests.hub.checkins.conftest import CheckinSite
from tests.hub.web.conftest import CHROMIUM, staff_page


async def _away(s: CheckinSite, away: bool) -> None:
    async with s.site.db.acquire() as conn:
        assert await set_resident_away(conn, s.resident, away)


async def _log(s: CheckinSite, action: str) -> list[tuple[str, str, str]]:
    async with s.site.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT checkin_id, actor, detail FROM checkin_log WHERE action = $1 ORDER BY seq", action
        )
    return [(r["checkin_id"], r["actor"], r["detail"]) for r in rows]


async def test_away_means_no_check_in_and_no_look(checkin_site: CheckinSite) -> None:
    s = checkin_site
    anna = s.site.staff["anna"]
    (task,) = await s.service.tick()  # 22:50: the 23:00 camera slot is open
    await _away(s, True)  # `vaka resident away` or the admin page, between two ticks

    with pytest.raises(CheckinError, match="marked away or in hospital") as refused:
        await s.service.look(task.id, anna)
    assert refused.value.code == "away"
    with pytest.raises(CheckinError, match="marked away or in hospital"):
        await s.service.record(task.id, anna, "seen_calm")
    assert await _log(s, "look_refused") == [
        (task.id, f"staff:{anna.id}", "the resident is marked away or in hospital")
    ]
    assert await _log(s, "outcome_refused") == [
        (task.id, f"staff:{anna.id}", "the resident is marked away or in hospital")
    ]

    (closed,) = await s.service.tick()  # the next tick closes it
    assert (closed.id, closed.state, closed.outcome) == (task.id, "done", "away")
    assert await s.service.open_for(anna) == []
    assert (task.id, "hub", "away: the resident is marked away or in hospital") in await _log(s, "done")

    s.site.clock.advance(3 * 3600)  # 01:50: the 02:00 camera slot
    assert await s.service.tick() == []
    s.site.clock.advance(3 * 3600)  # 04:50: the 05:00 visit
    assert await s.service.tick() == []
    assert await s.service.open_for(anna) == []

    async with s.site.db.acquire() as conn:
        tasks = await conn.fetch("SELECT id, outcome FROM checkins ORDER BY id")
        looks = await conn.fetchval("SELECT count(*) FROM checkin_looks")
        read = await conn.fetchval("SELECT count(*) FROM resident_access_log WHERE purpose = 'camera_look'")
    assert [(r["id"], r["outcome"]) for r in tasks] == [(task.id, "away")]
    assert (looks, read) == (0, 0)
    assert s.gateway.requests == []  # the hub never asked for a view into the home

    await _away(s, False)  # back home: the next slot is a check-in again
    s.site.clock.advance(24 * 3600 - 6 * 3600)  # 22:50 the next evening
    (again,) = await s.service.tick()
    assert again.resident_id == s.resident
    assert again.state == "open"


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium")
async def test_the_look_into_an_away_residents_home_is_refused_in_the_browser(
    checkin_site: CheckinSite, browser: Browser
) -> None:
    s = checkin_site
    app: web.Application = s.site.staff_app
    app[CONTEXT].checkins = s.service
    await s.service.tick()
    page = await staff_page(browser, s.site.url, s.site.site, "anna")
    await page.goto(f"{s.site.url}/staff/checkins")
    task = page.locator("li.checkin")
    await expect(task).to_have_count(1)
    await _away(s, True)  # set while the list is open on the phone
    await task.get_by_role("button", name="Look").click()
    await expect(page.locator("p.reason")).to_have_text(
        "The resident is marked away or in hospital: no check-in, no camera view."
    )
    # nobody is home: the page offers no 'camera not working' (a visit) for it
    await expect(page.get_by_role("button", name="Camera not working")).to_have_count(0)
    await expect(page.locator("iframe.live-view")).to_have_count(0)
    assert s.gateway.requests == []
    await s.service.tick()
    await page.goto(f"{s.site.url}/staff/checkins")
    await expect(page.locator("li.checkin")).to_have_count(0)
    await page.context.close()
