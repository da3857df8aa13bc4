"""The night patrol's pages beyond the alarm list: the night log, going on and off duty, the page's language."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from hub.checkins.service import PHYSICAL_OUTCOMES
from hub.desk.night_log import night_log
from hub.model import AlarmState
from hub.people.residents import Home, read_homes, travel_minutes
from hub.texts.catalogue import LANGS, local_clock
from hub.web.bodies import field, read_form
from hub.web.reasons import note_text, reason_text
from hub.web.staff.context import CONTEXT, StaffContext
from hub.web.staff.pages import SESSION, redirect, render, safe_back
from hub.web.staff.sessions import Session

logger = logging.getLogger(__name__)

NIGHT_LOG_HOURS = 24.0


def _ctx(request: web.Request) -> StaffContext:
    return request.config_dict[CONTEXT]


def _session(request: web.Request) -> Session:
    session: Session = request[SESSION]
    return session


async def night_log_page(request: web.Request) -> web.StreamResponse:
    """Every alarm of my units of the last 24 h (the hub's clock), closed ones too, with who did what when."""
    ctx = _ctx(request)
    session = _session(request)
    staff = session.staff
    desk = ctx.desk
    now = desk.clock.now()
    zones = {site: desk.directory.zone(site) for site in staff.sites}
    names = {s.id: s.label for s in desk.directory.staff}
    async with ctx.db.acquire() as conn:
        alarms = await night_log(conn, staff, now, zones, names=names, hours=NIGHT_LOG_HOURS)
    desk.log_resident_reads(
        staff, ((a.site, a.resident_id) for a in alarms if a.resident_id), "night_log", request.remote
    )
    rooms = {
        a.id: (r.room if (r := desk.directory.resident(a.site, a.resident_id)) is not None else None) for a in alarms
    }
    lang = staff.lang
    return render(
        request,
        "staff/night_log.html",
        lang,
        staff=staff,
        csrf=session.csrf_token,
        page="log",
        alarms=alarms,
        rooms=rooms,
        reasons={a.id: reason_text(lang, a.rule_id, a.reason) for a in alarms},
        note_text=lambda rule_id, note: note_text(lang, rule_id, note),
        hours=int(NIGHT_LOG_HOURS),
    )


async def alarm_home(request: web.Request) -> web.StreamResponse:
    """The home of an alarm's resident, as much as each person needs (docs/staff.md, "The home"): the person on the way
    (holding it, en route or on site) gets everything, how to get in, contacts and notes included; a colleague of the
    unit on duty, or the holder before she sets off, gets the name and the address, so she can back up; anyone else of
    the unit nothing. Every answer with data is logged as a read of the resident's data."""
    ctx = _ctx(request)
    staff = _session(request).staff
    alarm = ctx.desk.machine.get(request.match_info["alarm_id"])
    if alarm is None or not staff.sees(alarm.site, alarm.unit):
        raise web.HTTPNotFound(text="no such open alarm in your units")
    rid = alarm.resident_id
    holder = alarm.accepted_by_id == staff.id
    on_the_way = holder and alarm.state in (AlarmState.EN_ROUTE, AlarmState.ON_SITE)
    on_duty = not ctx.settings.patrol.duty_required or ctx.desk.duty.on_duty(staff) is not None
    if rid is None or not (holder or on_duty):
        return web.json_response({"home": None}, headers={"Cache-Control": "no-store"})
    async with ctx.db.acquire() as conn:
        homes = await read_homes(conn, staff, [rid], with_access=frozenset({rid}) if on_the_way else frozenset())
    home = homes.get(rid)
    if home is None:
        return web.json_response({"home": None}, headers={"Cache-Control": "no-store"})
    ctx.desk.log_resident_reads(staff, [(alarm.site, rid)], "home_access" if on_the_way else "home", request.remote)
    return web.json_response(
        {
            "home": {
                "name": home.name,
                "address": home.address,
                "access": home.access,
                "access_withheld": not on_the_way,
                "contacts": [c.model_dump() for c in home.contacts] if on_the_way else [],
                "notes": home.notes if on_the_way else "",
            }
        },
        headers={"Cache-Control": "no-store"},
    )


def _point(text: str) -> tuple[float, float] | None:
    """ "63.82,20.26" as (latitude, longitude), None when absent or not a point."""
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError:
        return None
    return (lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else None


def _where(home: Home | None) -> tuple[float, float] | None:
    if home is None or home.latitude is None or home.longitude is None:
        return None
    return home.latitude, home.longitude


async def patrol_page(request: web.Request) -> web.StreamResponse:
    """The night's route: open alarms and due check-in visits of my units in the order of travel time from where I am
    (`?from=lat,lon`, else the home of the alarm I am on the way to or at); homes without coordinates come last.

    Visits are the check-in tasks to be done in person (planned visits, and camera check-ins turned into visits: not
    visible twice, camera not working, camera down at slot time). Camera looks need no journey: they are listed apart,
    by due time, and done on the check-in page. Every resident shown is logged as read (`patrol`)."""
    ctx = _ctx(request)
    session = _session(request)
    staff = session.staff
    desk = ctx.desk
    now = desk.clock.now()
    alarms = [a for a in desk.machine.open_alarms_for(staff) if a.resident_id]
    tasks = await ctx.checkins.open_for(staff) if ctx.checkins is not None else []
    visits = [t for t in tasks if t.mode == "physical"]
    looks = [t for t in tasks if t.mode != "physical"]
    wanted = list(dict.fromkeys([a.resident_id for a in alarms if a.resident_id] + [t.resident_id for t in visits]))
    async with ctx.db.acquire() as conn:
        homes = await read_homes(conn, staff, wanted)
    shown = {(a.site, a.resident_id) for a in alarms if a.resident_id} | {(t.site, t.resident_id) for t in tasks}
    desk.log_resident_reads(staff, sorted(shown), "patrol", request.remote)
    start = _point(request.query.get("from", ""))
    start_from = "position" if start else None
    if start is None:
        for a in alarms:
            mine = a.accepted_by_id == staff.id and a.state in (AlarmState.EN_ROUTE, AlarmState.ON_SITE)
            if mine and (here := _where(homes.get(a.resident_id or ""))) is not None:
                start, start_from = here, "current"
                break

    def minutes_to(home: Home | None) -> int | None:
        there = _where(home)
        return round(travel_minutes(start, there)) if start is not None and there is not None else None

    def clock(site: str, at: datetime) -> str:
        return local_clock(at, ZoneInfo(desk.directory.zone(site)), now, staff.lang)

    def room(site: str, resident_id: str) -> str | None:
        resident = desk.directory.resident(site, resident_id)
        return resident.room if resident is not None else None

    rows: list[dict[str, Any]] = []
    for a in alarms:
        home = homes.get(a.resident_id or "")
        rows.append({"kind": "alarm", "alarm": desk.view(a), "home": home, "minutes": minutes_to(home),
                     "located": _where(home) is not None})  # fmt: skip
    for task in visits:  # earliest due first (open_for's order): the overdue ones lead among equals
        home = homes.get(task.resident_id)
        rows.append({"kind": "visit", "task": task, "home": home, "minutes": minutes_to(home),
                     "located": _where(home) is not None, "room": room(task.site, task.resident_id), "due": clock(task.site, task.due_at),
                     "overdue": task.overdue(now)})  # fmt: skip
    # by travel time; at equal time (or none known) alarms before visits, each in its own order
    order = {id(r): i for i, r in enumerate(rows)}
    rows.sort(key=lambda r: (r["minutes"] is None, r["minutes"] or 0, r["kind"] != "alarm", order[id(r)]))
    camera_looks = [
        {"task": t, "room": room(t.site, t.resident_id), "due": clock(t.site, t.due_at), "overdue": t.overdue(now)}
        for t in looks
    ]
    return render(
        request,
        "staff/patrol.html",
        staff.lang,
        staff=staff,
        csrf=session.csrf_token,
        page="patrol",
        rows=rows,
        looks=camera_looks,
        start_from=start_from,
        physical_outcomes=PHYSICAL_OUTCOMES,
        back=request.path_qs,  # a language or duty switch keeps the route counted from the same place
    )


async def duty_submit(request: web.Request) -> web.StreamResponse:
    """Go on duty (a shift of `patrol.shift_hours`) or off duty; escalation reaches those on duty."""
    ctx = _ctx(request)
    session = _session(request)
    form = await read_form(request)
    if field(form, "duty", 8) == "on":
        ctx.desk.duty.sign_on(session.staff)
    else:
        ctx.desk.duty.sign_off(session.staff)
    return redirect(safe_back(field(form, "back", 200)))


async def lang_submit(request: web.Request) -> web.StreamResponse:
    """Switch the page's language for this person (kept on the account)."""
    ctx = _ctx(request)
    session = _session(request)
    form = await read_form(request)
    lang = field(form, "lang", 8)
    if lang not in LANGS:
        raise web.HTTPBadRequest(text="lang must be one of " + ", ".join(LANGS))
    async with ctx.db.acquire() as conn:
        await conn.execute("UPDATE staff SET lang = $2 WHERE id = $1", session.staff.id, lang)
    session.staff = replace(session.staff, lang=lang)
    logger.info("staff language staff=%s lang=%s", session.staff.id, lang)
    return redirect(safe_back(field(form, "back", 200)))


def add_patrol_routes(sub: web.Application) -> None:
    """The night log, duty and language routes of the staff sub-application."""
    sub.router.add_get("/log", night_log_page, name="night_log")
    sub.router.add_get("/alarms/{alarm_id}/home", alarm_home)
    sub.router.add_get("/patrol", patrol_page, name="patrol")
    sub.router.add_post("/duty", duty_submit)
    sub.router.add_post("/lang", lang_submit)
    from hub.web.staff.admin import add_admin_routes

    add_admin_routes(sub)
