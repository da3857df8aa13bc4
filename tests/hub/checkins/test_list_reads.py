"""The check-in list shows whom to look in on (issue 26): the name from the resident directory and the room, each
view in the access log with the client's address, a look in the access log with the address too, and a look's
outcome can carry a short note."""

from __future__ import annotations

import re

import aiohttp

from hub.web.staff.context import CONTEXT
from tests.hub.checkins.conftest import CheckinSite, on_the_route
from tests.hub.web.test_staff_http import login


async def test_the_list_names_the_resident_and_room_and_every_read_has_its_address(checkin_site: CheckinSite) -> None:
    s = checkin_site
    await on_the_route(s)  # r1 is Karin Berg in the directory, room 101 in the inventory
    s.site.staff_app[CONTEXT].checkins = s.service
    (task,) = await s.service.tick()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await login(client, s.site.url, f"anna-{s.site.site}")
        async with client.get(f"{s.site.url}/staff/checkins") as page:
            html = await page.text()
        card = html[html.index(f'id="checkin-{task.id}"') :]
        assert "<strong>Karin Berg</strong>" in card
        assert "Room 101" in card
        csrf = re.search(r'name="csrf" value="([^"]+)"', html)
        assert csrf is not None
        async with client.post(f"{s.site.url}/staff/checkins/{task.id}/look", data={"csrf": csrf.group(1)}) as look:
            assert look.status == 200
            looked = await look.text()
            assert 'name="note"' in looked
            assert "Look: Karin Berg</h1>" in looked
        form = {"csrf": csrf.group(1), "outcome": "seen_calm", "note": "asleep in the armchair, lamp on"}
        async with client.post(
            f"{s.site.url}/staff/checkins/{task.id}/outcome", data=form, allow_redirects=False
        ) as done:
            assert done.status == 303
    await s.site.desk.lane.store.flushed()
    async with s.site.db.acquire() as conn:
        reads = await conn.fetch(
            "SELECT purpose, resident_id, address FROM resident_access_log WHERE purpose IN ('checkin_list',"
            " 'camera_look') ORDER BY seq"
        )
        note = await conn.fetchval("SELECT note FROM checkins WHERE id = $1", task.id)
        logged = await conn.fetchval(
            "SELECT detail FROM checkin_log WHERE checkin_id = $1 AND action = 'done'", task.id
        )
    assert {(r["purpose"], r["resident_id"], r["address"]) for r in reads} == {
        ("checkin_list", s.resident, "127.0.0.1"),
        ("camera_look", s.resident, "127.0.0.1"),
    }
    assert note == "asleep in the armchair, lamp on"
    assert logged == "seen_calm: asleep in the armchair, lamp on"


async def test_plans_night_log_and_home_reads_carry_the_address(checkin_site: CheckinSite) -> None:
    from tests.hub.desk_support import decision

    s = checkin_site
    await on_the_route(s)
    s.site.staff_app[CONTEXT].checkins = s.service
    alarm = s.site.desk.lane.apply(decision(s.site.site, at=s.site.clock.now()))  # a fall of r1
    assert alarm is not None
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await login(client, s.site.url, f"nils-{s.site.site}")
        for path in ("/staff/checkins/plans", "/staff/log", f"/staff/alarms/{alarm.id}/home"):
            async with client.get(f"{s.site.url}{path}") as page:
                assert page.status == 200, path
    await s.site.desk.lane.store.flushed()
    async with s.site.db.acquire() as conn:
        reads = await conn.fetch(
            "SELECT purpose, address FROM resident_access_log WHERE purpose IN ('checkin_plans', 'night_log', 'home')"
        )
    assert {(r["purpose"], r["address"]) for r in reads} == {
        ("checkin_plans", "127.0.0.1"),
        ("night_log", "127.0.0.1"),
        ("home", "127.0.0.1"),
    }
