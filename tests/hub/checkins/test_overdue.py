"""Overdue check-ins end honestly (issue 26): staff close one with what truly happened (visited instead, not needed,
other with a note); at the end of the night the hub closes the rest as 'missed' with who was on duty, the follow-up
counts them as missed, and they leave the list; an overdue second look becomes a visit."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from hub.checkins.service import CheckinError
from hub.followup.indicators import Scope, compute, month
from hub.web.staff.context import CONTEXT
from tests.hub.checkins.conftest import CheckinSite
from tests.hub.web.test_staff_http import login


async def _night_shift(s: CheckinSite, *names: str) -> None:
    """Only these staff on duty, 22:00-07:00 local (21:00-06:00 UTC) on 26/27 November."""
    async with s.site.db.acquire() as conn:
        await conn.execute("DELETE FROM staff_duty")
        await conn.executemany(
            "INSERT INTO staff_duty (staff_id, since, until) VALUES ($1, $2, $3)",
            [
                (s.site.staff[n].id, datetime(2026, 11, 26, 21, tzinfo=UTC), datetime(2026, 11, 27, 6, tzinfo=UTC))
                for n in names
            ],
        )


async def _tasks(s: CheckinSite) -> dict[str, tuple[str, str | None, list[int] | None, str | None]]:
    async with s.site.db.acquire() as conn:
        rows = await conn.fetch("SELECT id, state, outcome, on_duty, note FROM checkins ORDER BY id")
    return {r["id"]: (r["state"], r["outcome"], r["on_duty"], r["note"]) for r in rows}


async def test_overdue_tasks_are_closed_truly_by_staff_or_as_missed_at_the_end_of_the_night(
    checkin_site: CheckinSite,
) -> None:
    s = checkin_site
    anna, carl = s.site.staff["anna"], s.site.staff["carl"]
    await _night_shift(s, "anna", "carl")  # carl is on duty, in unit B
    (eleven,) = await s.service.tick()  # 22:50
    with pytest.raises(CheckinError, match="does not fit"):
        await s.service.record(eleven.id, anna, "not_needed")  # not overdue yet: look first
    s.site.clock.advance(30 * 60)  # 23:20: its window closed
    await s.service.tick()
    assert [t.id for t in await s.service.open_for(anna)] == [eleven.id]  # overdue, still on the list

    s.site.clock.advance(2 * 3600 + 30 * 60)  # 01:50: the 02:00 look
    (two,) = await s.service.tick()
    s.site.clock.advance(30 * 60)  # 02:20: overdue too
    await s.service.tick()
    with pytest.raises(CheckinError, match="say in a note") as no_note:
        await s.service.record(two.id, anna, "other")
    assert no_note.value.code == "note_needed"
    with pytest.raises(CheckinError, match="longer than 200"):
        await s.service.record(two.id, anna, "other", "x" * 201)
    assert (await _tasks(s))[two.id][0] == "open"  # nothing recorded
    done, follow = await s.service.record(two.id, anna, "visited_instead", "  went by   on the round ")
    assert (done.state, done.outcome, follow) == ("done", "visited_instead", None)
    assert (await _tasks(s))[two.id] == ("done", "visited_instead", None, "went by on the round")

    s.site.clock.advance(2 * 3600 + 30 * 60)  # 04:50: the 05:00 visit
    (five,) = await s.service.tick()
    s.site.clock.advance(2 * 3600 + 9 * 60)  # 06:59: the night is not over
    await s.service.tick()
    assert [t.id for t in await s.service.open_for(anna)] == [eleven.id, five.id]
    s.site.clock.advance(60)  # 07:00
    closed = await s.service.tick()
    assert sorted(t.id for t in closed) == sorted([eleven.id, five.id])
    assert await s.service.open_for(anna) == []  # they left the list
    tasks = await _tasks(s)
    assert tasks[eleven.id] == ("done", "missed", [anna.id], None)  # carl works in unit B
    assert tasks[five.id] == ("done", "missed", [anna.id], None)
    async with s.site.db.acquire() as conn:
        logged = await conn.fetchval(
            "SELECT detail FROM checkin_log WHERE checkin_id = $1 AND action = 'done'", eleven.id
        )
        r = await compute(conn, Scope(s.site.site, "A"), month("2026-11"))
    assert logged == f"missed: not done in its window; on duty: staff:{anna.id}"
    assert carl.id not in (tasks[eleven.id][2] or [])
    assert r.get("checkins.missed") == 2
    assert r.get("checkins.overdue") == 3
    assert r.get("checkins.done", mode="physical") == 1  # the visit instead; a missed visit is not a done one
    assert r.get("checkins.done", mode="camera") == 0


async def test_an_overdue_second_look_becomes_a_visit(checkin_site: CheckinSite) -> None:
    s = checkin_site
    anna = s.site.staff["anna"]
    (task,) = await s.service.tick()
    await s.service.look(task.id, anna)
    _, second = await s.service.record(task.id, anna, "not_visible")
    assert second is not None
    s.site.clock.advance(21 * 60)  # the second look's 20 minutes are over
    changed = await s.service.tick()
    visit = next(t for t in changed if t.mode == "physical")
    assert (visit.id, visit.reason, visit.state) == (f"{task.id}-visit", "second_look_overdue", "open")
    assert [t.id for t in await s.service.open_for(anna)] == [visit.id]
    assert (await _tasks(s))[second.id][:2] == ("done", "missed")
    overdue = [a for a in s.site.desk.machine.open_alarms_for(anna) if a.rule_id == "checkin_overdue"]
    assert len(overdue) == 1  # and the alarm rings as before


async def test_the_list_offers_the_true_endings_for_an_overdue_task(checkin_site: CheckinSite) -> None:
    s = checkin_site
    s.site.staff_app[CONTEXT].checkins = s.service
    (task,) = await s.service.tick()
    s.site.clock.advance(30 * 60)
    await s.service.tick()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        await login(client, s.site.url, f"anna-{s.site.site}")
        async with client.get(f"{s.site.url}/staff/checkins") as page:
            html = await page.text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', html)
        assert csrf is not None
        for label in ("Visited instead", "Not needed", "Other (say what)"):
            assert label in html
        assert "Camera not working" not in html
        assert f'action="/staff/checkins/{task.id}/look"' not in html  # the slot is over: no look
        form = {"csrf": csrf.group(1), "outcome": "other"}
        async with client.post(f"{s.site.url}/staff/checkins/{task.id}/outcome", data=form) as bad:
            assert bad.status == 400
            assert "say in a note what happened" in await bad.text()
        form["note"] = "the daughter called: she sleeps at hers tonight"
        async with client.post(
            f"{s.site.url}/staff/checkins/{task.id}/outcome", data=form, allow_redirects=False
        ) as ok:
            assert ok.status == 303
    assert (await _tasks(s))[task.id] == ("done", "other", None, form["note"])
    assert s.site.clock.now() - task.window_end < timedelta(hours=1)
