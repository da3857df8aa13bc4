"""Check-in tasks against the real database and an HTTP camera gateway double: created on time for the right unit,
looks granted only inside the slot, the physical visit when the look is not enough, overdue tasks become alarms."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from hub.checkins.service import CheckinError, CheckinService
from hub.model import AlarmCategory, DecisionAction, Severity
from tests.hub.checkins.conftest import CheckinSite
from tests.hub.desk_support import decision


async def test_a_task_appears_at_its_slot_for_the_residents_unit_only(checkin_site: CheckinSite) -> None:
    s = checkin_site
    created = await s.service.tick()
    assert [t.id for t in created] == [f"ci-{s.resident}-20261126-2300"]
    assert await s.service.tick() == []  # the same slot is one task
    assert [t.id for t in await s.service.open_for(s.site.staff["anna"])] == [created[0].id]
    assert await s.service.open_for(s.site.staff["carl"]) == []  # unit B
    topic, payload = s.site.published[-1]
    assert topic == f"vaka/v1/{s.site.site}/checkins/{created[0].id}"
    assert json.loads(payload)["state"] == "open"
    assert "room" not in json.loads(payload)


async def test_a_look_is_granted_inside_the_slot_and_refused_outside_it(checkin_site: CheckinSite) -> None:
    s = checkin_site
    (task,) = await s.service.tick()
    anna = s.site.staff["anna"]
    _, url, expires = await s.service.look(task.id, anna)
    assert 30 <= (expires - datetime.now(UTC)).total_seconds() <= 60  # a short-lived view
    assert url.startswith(f"{s.gateway.url}/live/{s.camera}")
    assert s.gateway.requests == [
        ("POST", "/api/v1/view-tokens", {"camera_id": s.camera, "viewer": f"staff:{anna.id}", "ttl_s": 45})
    ]
    with pytest.raises(CheckinError, match="not a check-in of your units"):
        await s.service.look(task.id, s.site.staff["carl"])
    s.site.clock.advance(30 * 60)  # 23:20 local: the window closed at 23:15
    with pytest.raises(CheckinError, match="outside the planned slot"):
        await s.service.look(task.id, anna)
    async with s.site.db.acquire() as conn:
        looks = await conn.fetch("SELECT staff_id, camera_device_id FROM checkin_looks")
        access = await conn.fetch("SELECT resident_id, purpose FROM resident_access_log WHERE purpose = 'camera_look'")
        refused = await conn.fetch("SELECT actor, detail FROM checkin_log WHERE action = 'look_refused' ORDER BY seq")
    assert [(r["staff_id"], r["camera_device_id"]) for r in looks] == [(anna.id, s.camera)]
    assert [r["resident_id"] for r in access] == [s.resident]
    assert [r["detail"] for r in refused] == ["not a check-in of your units", "outside the planned slot"]
    # the hub asked for viewing URLs only: it never fetched the stream
    assert all(path == "/api/v1/view-tokens" for _, path, _ in s.gateway.requests)


async def test_not_visible_twice_makes_a_physical_visit(checkin_site: CheckinSite) -> None:
    s = checkin_site
    (task,) = await s.service.tick()
    anna = s.site.staff["anna"]
    await s.service.look(task.id, anna)
    _, second = await s.service.record(task.id, anna, "not_visible")
    assert second is not None
    assert (second.mode, second.attempt, second.reason) == ("camera", 2, "second_look")
    s.site.clock.advance(10 * 60)
    await s.service.look(second.id, anna)  # the second look's own window: 20 minutes
    _, visit = await s.service.record(second.id, anna, "not_visible")
    assert visit is not None
    assert (visit.mode, visit.reason) == ("physical", "not_visible_twice")
    assert [t.id for t in await s.service.open_for(anna)] == [visit.id]
    done, _ = await s.service.record(visit.id, anna, "visited")
    assert done.state == "done"


async def test_a_silent_camera_turns_the_slot_into_a_visit_at_once(checkin_site: CheckinSite) -> None:
    s = checkin_site
    s.site.desk.lane.apply(decision(s.site.site, DecisionAction.RAISE, rule_id="device_silent", subject="cam1",
                               category=AlarmCategory.TECHNICAL, severity=Severity.MEDIUM, device="cam1", resident=None))  # fmt: skip
    (task,) = await s.service.tick()
    assert (task.mode, task.reason) == ("physical", "camera_down")
    with pytest.raises(CheckinError, match="only an open camera check-in"):
        await s.service.look(task.id, s.site.staff["anna"])


async def test_tasks_survive_a_restart_and_overdue_ones_ring(checkin_site: CheckinSite) -> None:
    s = checkin_site
    (task,) = await s.service.tick()
    restarted = CheckinService(s.site.db, s.site.desk, lambda *a, **k: None, s.site.clock, None)
    assert [t.id for t in await restarted.open_for(s.site.staff["anna"])] == [task.id]
    s.site.clock.advance(30 * 60)  # the window closed
    await restarted.tick()
    overdue = [a for a in s.site.desk.machine.open_alarms_for(s.site.staff["anna"]) if a.rule_id == "checkin_overdue"]
    assert [(a.resident_id, a.category) for a in overdue] == [(s.resident, AlarmCategory.CARE)]
    await restarted.tick()
    assert (
        len([a for a in s.site.desk.machine.open_alarms_for(s.site.staff["anna"]) if a.rule_id == "checkin_overdue"])
        == 1
    )


async def test_a_hub_of_the_ha_profile_leaves_another_hubs_site_to_it(checkin_site: CheckinSite) -> None:
    """Two hubs share the check-in plans: the one not owning the site neither creates its tasks nor marks one overdue
    (a mark it made would swallow the owner's alarm: its desk does not act for the site)."""
    s = checkin_site
    other = CheckinService(s.site.db, s.site.desk, lambda *a, **k: None, s.site.clock, None, owns=lambda site: False)
    assert await other.tick() == []
    (task,) = await s.service.tick()
    s.site.clock.advance(30 * 60)  # the window closed
    await other.tick()
    async with s.site.db.acquire() as conn:
        assert await conn.fetchval("SELECT overdue_alarmed FROM checkins WHERE id = $1", task.id) is False
    await s.service.tick()  # the owner
    overdue = [a for a in s.site.desk.machine.open_alarms_for(s.site.staff["anna"]) if a.rule_id == "checkin_overdue"]
    assert [a.resident_id for a in overdue] == [s.resident]


async def test_a_gateway_that_sends_an_image_is_refused(checkin_site: CheckinSite) -> None:
    s = checkin_site
    s.gateway.content_type = "image/jpeg"
    (task,) = await s.service.tick()
    with pytest.raises(CheckinError, match="not a viewing URL"):
        await s.service.look(task.id, s.site.staff["anna"])


async def test_the_follow_up_counts_digital_and_physical_check_ins(checkin_site: CheckinSite) -> None:
    from hub.followup.indicators import Scope, compute, month

    s = checkin_site
    anna = s.site.staff["anna"]
    (first,) = await s.service.tick()
    await s.service.look(first.id, anna)
    await s.service.record(first.id, anna, "seen_calm")  # a visit avoided: 2 x 12 travel minutes
    s.site.clock.advance(3 * 3600)  # 01:50 local: the 02:00 slot
    (second,) = await s.service.tick()
    await s.service.look(second.id, anna)
    _, look_again = await s.service.record(second.id, anna, "not_visible")
    assert look_again is not None
    await s.service.look(look_again.id, anna)
    _, visit = await s.service.record(look_again.id, anna, "camera_not_working")
    assert visit is not None
    await s.service.record(visit.id, anna, "visited")
    async with s.site.db.acquire() as conn:
        r = await compute(conn, Scope(s.site.site, "A"), month("2026-11"))
    assert r.get("checkins.done", mode="camera") == 1
    assert r.get("checkins.done", mode="physical") == 1
    assert r.get("checkins.second_looks") == 1
    assert r.get("checkins.journeys_avoided") == 1
    assert r.get("checkins.travel_minutes_saved") == 24


async def test_nurses_edit_plans_on_the_staff_page_with_mistakes_on_their_line(checkin_site: CheckinSite) -> None:
    import re

    import aiohttp

    from hub.web.staff.context import CONTEXT
    from tests.hub.web.test_staff_http import login

    s = checkin_site
    s.site.staff_app[CONTEXT].checkins = s.service
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await login(client, s.site.url, f"anna-{s.site.site}")
        async with client.get(f"{s.site.url}/staff/checkins/plans") as page:
            assert page.status == 403  # staff do not keep plans
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await login(client, s.site.url, f"nils-{s.site.site}")
        async with client.get(f"{s.site.url}/staff/checkins/plans") as page:
            html = await page.text()
        assert "samtycke-2026-11" in html
        csrf = re.search(r'name="csrf" value="([^"]+)"', html)
        assert csrf is not None
        broken = f"plans:\n  - resident: {s.resident}\n    consent_ref: c\n    care_decision_ref: d\n    camera: {s.camera}\n    slots:\n      - at: '26:00'\n"
        async with client.post(
            f"{s.site.url}/staff/checkins/plans", data={"csrf": csrf.group(1), "plans": broken}
        ) as bad:
            assert bad.status == 400
            assert "plans:7: plans.0.slots.0.at:" in await bad.text()
        other = f"plans:\n  - resident: {s.site.site}-r3\n    consent_ref: c\n    care_decision_ref: d\n    slots: [{{at: '23:00', mode: physical}}]\n"
        async with client.post(
            f"{s.site.url}/staff/checkins/plans", data={"csrf": csrf.group(1), "plans": other}
        ) as refused:
            assert refused.status == 403  # r3 lives in unit B; nils is a nurse of A
        fixed = broken.replace("'26:00'", "'01:30'")
        async with client.post(f"{s.site.url}/staff/checkins/plans", data={"csrf": csrf.group(1), "plans": fixed},
                               allow_redirects=False) as ok:  # fmt: skip
            assert ok.status == 303
    async with s.site.db.acquire() as conn:
        slots = await conn.fetchval("SELECT slots FROM checkin_plans WHERE resident_id = $1", s.resident)
        audit = await conn.fetchval("SELECT count(*) FROM admin_audit_log WHERE action = 'checkin_plan'")
    assert "01:30" in slots
    assert audit == 1


async def test_an_alarm_during_the_slot_shows_on_the_check_in(checkin_site: CheckinSite) -> None:
    import aiohttp

    from hub.web.staff.context import CONTEXT
    from tests.hub.desk_support import decision
    from tests.hub.web.test_staff_http import login

    s = checkin_site
    s.site.staff_app[CONTEXT].checkins = s.service
    await s.service.tick()
    s.site.desk.lane.apply(decision(s.site.site, at=s.site.clock.now()))  # a fall of r1 at 22:50 local, in the slot
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await login(client, s.site.url, f"anna-{s.site.site}")
        async with client.get(f"{s.site.url}/staff/checkins") as page:
            html = await page.text()
    assert "Alarm during the check-in" in html
    assert "22:50" in html


async def test_without_a_gateway_a_refused_look_offers_the_visit_in_one_tap_in_swedish(
    checkin_site: CheckinSite,
) -> None:
    import re

    import aiohttp

    from hub.web.staff.context import CONTEXT
    from tests.hub.web.test_staff_http import login

    s = checkin_site
    no_gateway = CheckinService(s.site.db, s.site.desk, lambda *a, **k: None, s.site.clock, None)
    s.site.staff_app[CONTEXT].checkins = no_gateway
    (task,) = await no_gateway.tick()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await login(client, s.site.url, f"anna-{s.site.site}")
        async with client.get(f"{s.site.url}/staff/checkins") as page:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert csrf is not None
        await client.post(f"{s.site.url}/staff/lang", data={"csrf": csrf.group(1), "lang": "sv", "back": "/staff/"})
        async with client.post(f"{s.site.url}/staff/checkins/{task.id}/look", data={"csrf": csrf.group(1)}) as refused:
            assert refused.status == 403
            html = await refused.text()
        assert "Ingen kameratjänst är inställd" in html
        assert 'value="camera_not_working"' in html
        async with client.post(f"{s.site.url}/staff/checkins/{task.id}/outcome",
                               data={"csrf": csrf.group(1), "outcome": "camera_not_working"}) as done:  # fmt: skip
            assert done.status == 200  # back on the list
    (visit,) = await no_gateway.open_for(s.site.staff["anna"])
    assert (visit.id, visit.mode, visit.reason) == (f"{task.id}-visit", "physical", "camera_not_working")
