"""Due check-in visits on the patrol's route (`/staff/patrol`), against the real database and the real staff page over
HTTP: visits and open alarms ordered together by travel time, each visit with the resident's name and address (a
logged read), its due time on the site's clock and an overdue mark, done from the route; camera looks kept apart."""

from __future__ import annotations

import re
from datetime import time

import aiohttp
import pytest

from hub.checkins.plan import Plan, Slot
from hub.checkins.service import save_plans
from tests.hub.checkins.conftest import CheckinSite, on_the_route
from tests.hub.desk_support import decision
from tests.hub.web.test_staff_http import csrf_of, login

HERE = "63.8258,20.2630"


@pytest.fixture
async def route(checkin_site: CheckinSite) -> CheckinSite:
    """r1 (camera check-ins, 23:00) lives next door, r2 (a planned visit at 23:00) across town, r3 in unit B."""
    s = checkin_site
    site = s.site.site
    await on_the_route(s)
    async with s.site.db.acquire() as conn:
        await save_plans(conn, [Plan(resident=f"{site}-r2", consent_ref="-", care_decision_ref="beslut-43",
                                     slots=[Slot(at=time(23, 0), mode="physical")])])  # fmt: skip
    await s.service.tick()  # 22:50 local: r1's camera look and r2's visit are due
    return s


async def patrol_html(s: CheckinSite, client: aiohttp.ClientSession, query: str = f"?from={HERE}") -> str:
    async with client.get(f"{s.site.url}/staff/patrol{query}") as page:
        assert page.status == 200
        return await page.text()


def stops(html: str) -> list[str]:
    """The route's stops in order: `alarm:<rule>` or `visit:<task id>`."""
    found = re.findall(r'<li class="patrol-stop patrol-(alarm|visit)[^"]*" id="stop-([^"]+)"', html)
    return [f"{kind}:{ident}" for kind, ident in found]


def stop(html: str, ident: str) -> str:
    match = re.search(rf'<li class="patrol-stop[^"]*" id="stop-{re.escape(ident)}">(.*?)</li>', html, re.S)
    assert match is not None, ident
    return match.group(0)


async def test_visits_and_alarms_are_one_route_by_travel_time_and_camera_looks_are_apart(route: CheckinSite) -> None:
    s = route
    site = s.site.site
    alarm = s.site.desk.lane.apply(decision(site, subject="r2", resident="r2", device="plug2", rule_id="alarm_button"))
    assert alarm is not None
    visit = f"ci-{site}-r2-20261126-2300"
    look = f"ci-{site}-r1-20261126-2300"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await login(client, s.site.url, f"anna-{site}")
        html = await patrol_html(s, client)
        # the alarm and the visit at r2's: the same journey, the alarm first; the camera look is no journey
        assert stops(html) == [f"alarm:{alarm.id}", f"visit:{visit}"]
        card = stop(html, visit)
        assert "Check-in visit" in card
        assert "Olle Ek, Ytterby 4" in card
        assert "at 23:00" in card  # the site's clock (CET), not UTC
        assert "Overdue" not in card
        assert f'action="/staff/checkins/{visit}/outcome"' in card
        assert f'href="/staff/checkins#checkin-{visit}"' in card
        looks = html[html.index('class="patrol-looks"') :]
        assert f'id="look-{look}"' in looks
        assert "Room 101" in looks
        assert "Karin Berg" not in html  # a look needs no address: r1's directory entry is not read

        # the camera does not work: r1's check-in becomes a visit next door, first on the route
        async with client.post(f"{s.site.url}/staff/checkins/{look}/outcome",
                               data={"csrf": csrf_of(html), "outcome": "camera_not_working"}) as done:  # fmt: skip
            assert done.status == 200
        html = await patrol_html(s, client)
        assert stops(html) == [f"visit:{look}-visit", f"alarm:{alarm.id}", f"visit:{visit}"]
        assert "The camera did not work: visit" in stop(html, f"{look}-visit")
        assert "Karin Berg, Storgatan 1" in stop(html, f"{look}-visit")
        assert 'class="patrol-looks"' not in html

        s.site.clock.advance(30 * 60)  # 23:20: r2's window (±15 min) closed
        html = await patrol_html(s, client)
        assert 'class="patrol-stop patrol-visit overdue"' in stop(html, visit)
        assert "Overdue" in stop(html, visit)

        # done from the route, back on the route
        async with client.post(f"{s.site.url}/staff/checkins/{visit}/outcome", allow_redirects=False,
                               data={"csrf": csrf_of(html), "outcome": "visited", "back": "/staff/patrol"}) as done:  # fmt: skip
            assert done.status == 303
            assert done.headers["Location"] == "/staff/patrol"
        assert stops(await patrol_html(s, client)) == [f"visit:{look}-visit", f"alarm:{alarm.id}"]

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await login(client, s.site.url, f"carl-{site}")  # unit B: none of it is his
        html = await patrol_html(s, client)
        assert stops(html) == []
        assert "No open alarms and no visits due." in html

    await s.site.desk.lane.store.flushed()
    async with s.site.db.acquire() as conn:
        reads = {
            (r["staff_id"], r["resident_id"])
            for r in await conn.fetch("SELECT staff_id, resident_id FROM resident_access_log WHERE purpose = 'patrol'")
        }
    anna = s.site.staff["anna"].id
    assert reads == {(anna, f"{site}-r1"), (anna, f"{site}-r2")}


async def test_without_a_starting_point_alarms_come_first_then_visits_by_due_time(route: CheckinSite) -> None:
    s = route
    site = s.site.site
    async with s.site.db.acquire() as conn:
        await save_plans(conn, [Plan(resident=f"{site}-r1", consent_ref="-", care_decision_ref="beslut-42",
                                     slots=[Slot(at=time(22, 45), mode="physical")])])  # fmt: skip
    s.site.clock.advance(60)  # 22:51: r1's 22:45 visit is due, and overdue at 23:00
    await s.service.tick()
    alarm = s.site.desk.lane.apply(decision(site))
    assert alarm is not None
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await login(client, s.site.url, f"anna-{site}")
        html = await patrol_html(s, client, "")
    assert stops(html) == [
        f"alarm:{alarm.id}",
        f"visit:ci-{site}-r1-20261126-2245",
        f"visit:ci-{site}-r2-20261126-2300",
    ]
    assert "No starting point" in html
