"""The night patrol's check-in list: tasks of my units by due time, overdue marked; a camera look shown straight
from the gateway (the page's CSP admits that one origin in a frame, nothing passes through Vaka); one tap for the
outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from hub.checkins.plan import PlanError, dump_plans, parse_plans
from hub.checkins.service import (
    NOTE_MAX,
    OUTCOMES,
    OVERDUE_OUTCOMES,
    OVERDUE_RULE,
    PHYSICAL_OUTCOMES,
    CheckinError,
    CheckinService,
    Task,
    plan_of,
    save_plans,
)
from hub.desk.alarm import Alarm
from hub.desk.fanout import local_hm
from hub.people.residents import read_homes
from hub.people.staff import Role
from hub.web.bodies import field, read_form
from hub.web.security import CSP, SESSION_COOKIE, add_security_headers
from hub.web.staff.context import CONTEXT
from hub.web.staff.pages import _ctx, _session, _wants_json, forbidden, render, safe_back

EVENTS_HEARTBEAT_S = 15.0
CAMERA_FAILED = ("no_gateway", "gateway_failed")
EVENTS_RETRY_MS = 1000
# set when the web server shuts down: every open list's event stream ends, so shutdown does not wait for them
STREAMS_CLOSING = web.AppKey("checkin_streams_closing", asyncio.Event)


def _clock(request: web.Request) -> Callable[..., str]:
    """`clock(site, at[, seconds])`: a time as the site's wall clock shows it (02:14)."""
    directory = _ctx(request).desk.directory

    def clock(site: str, at: datetime, seconds: bool = False) -> str:
        zone = ZoneInfo(directory.zone(site))
        return at.astimezone(zone).strftime("%H:%M:%S") if seconds else local_hm(at, zone)

    return clock


def _service(request: web.Request) -> CheckinService:
    service = _ctx(request).checkins
    if service is None:
        raise web.HTTPNotFound(text="check-ins are not set up on this hub")
    return service


async def checkins_page(request: web.Request) -> web.StreamResponse:
    """Open check-ins of my units, earliest first; every resident shown is logged as read."""
    ctx = _ctx(request)
    session = _session(request)
    staff = session.staff
    tasks = await _service(request).open_for(staff)
    async with ctx.db.acquire() as conn:
        homes = await read_homes(conn, staff, sorted({t.resident_id for t in tasks}))
    # the name from the directory, else the pseudonym; the room from the inventory
    names = {rid: home.name for rid, home in homes.items() if home.name}
    rooms = {
        t.resident_id: r.room for t in tasks if (r := ctx.desk.directory.resident(t.site, t.resident_id)) is not None
    }
    ctx.desk.log_resident_reads(staff, ((t.site, t.resident_id) for t in tasks), "checkin_list", request.remote)
    now = ctx.desk.clock.now()
    # an alarm of the resident raised during the slot's window belongs with the check-in (a fall at 02:05); another
    # check-in's overdue alarm does not
    alarms: dict[str, list[Alarm]] = {}
    for alarm in ctx.desk.machine.open_alarms_for(staff):
        if alarm.rule_id == OVERDUE_RULE:
            continue
        for task in tasks:
            if alarm.resident_id == task.resident_id and task.window_start <= alarm.raised_at < task.window_end:
                alarms.setdefault(task.id, []).append(alarm)
    return render(
        request,
        "staff/checkins.html",
        staff.lang,
        staff=staff,
        csrf=session.csrf_token,
        page="checkins",
        tasks=tasks,
        now=now,
        outcomes=OUTCOMES,
        physical_outcomes=PHYSICAL_OUTCOMES,
        overdue_outcomes=OVERDUE_OUTCOMES,
        note_max=NOTE_MAX,
        clock=_clock(request),
        alarms=alarms,
        names=names,
        rooms=rooms,
        can_plan=staff.role in (Role.NURSE, Role.ADMIN),
        version=_service(request).version,
    )


async def checkin_events(request: web.Request) -> web.StreamResponse:
    """The open list's live wire (Server-Sent Events): the list's version at once and whenever it changes, else every
    15 s; the page fetches itself again on a new one. The browser reconnects by itself, also to a restarted hub
    (whose version is new), and the stream ends with the session or when the server shuts down."""
    service = _service(request)
    ctx = _ctx(request)
    token = request.cookies.get(SESSION_COOKIE)
    closing = request.app[STREAMS_CLOSING]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    add_security_headers(response.headers)
    await response.prepare(request)
    await response.write(f"retry: {EVENTS_RETRY_MS}\n\n".encode())
    version: str | None = None
    while not closing.is_set() and await ctx.sessions.get(token, check_db=False) is not None:
        version = await service.changed(version, EVENTS_HEARTBEAT_S)
        await response.write(f"data: {version}\n\n".encode())
    return response


async def close_event_streams(app: web.Application) -> None:
    """Shutdown: end every open list's event stream now."""
    app[STREAMS_CLOSING].set()
    service = app[CONTEXT].checkins
    if service is not None:
        service.wake()


async def checkin_look(request: web.Request) -> web.StreamResponse:
    """Ask the gateway for a viewing URL and show it framed, with the outcome buttons."""
    session = _session(request)
    staff = session.staff
    try:
        task, url, expires_at = await _service(request).look(request.match_info["task_id"], staff, request.remote)
    except CheckinError as exc:
        if _wants_json(request):
            return web.json_response({"error": str(exc), "code": exc.code}, status=403)
        # an open camera task of my units the camera cannot show now: one tap makes it a visit
        refused: Task | None
        try:
            refused = await _service(request).get(request.match_info["task_id"], staff)
        except CheckinError:
            refused = None
        camera_task = refused is not None and refused.state == "open" and refused.mode == "camera"
        # only where the camera truly cannot show: not for a slot that is over (the list offers its true endings)
        # and not for a resident who is away (nobody home: no visit either)
        fallback = refused if camera_task and exc.code in CAMERA_FAILED else None
        return render(request, "staff/checkin_refused.html", staff.lang, status=403, staff=staff,
                      csrf=session.csrf_token, page="checkins", reason=str(exc), code=exc.code,
                      fallback=fallback)  # fmt: skip
    if _wants_json(request):
        return web.json_response({"url": url, "expires_at": expires_at.isoformat()})
    async with _ctx(request).db.acquire() as conn:  # the look's access-log row (camera_look) covers the name
        home = (await read_homes(conn, staff, [task.resident_id])).get(task.resident_id)
    # the gateway's token runs on the wall clock (also in a simulation): the page ends the view when it expires
    expires_in_ms = max(0, round((expires_at - datetime.now(UTC)).total_seconds() * 1000))
    response = render(request, "staff/checkin_look.html", staff.lang, staff=staff, csrf=session.csrf_token,
                      page="checkins", task=task, url=url, expires_at=expires_at, expires_in_ms=expires_in_ms,
                      outcomes=OUTCOMES, clock=_clock(request), note_max=NOTE_MAX,
                      name=home.name if home is not None and home.name else task.resident_id)  # fmt: skip
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    response.headers["Content-Security-Policy"] = f"{CSP}; frame-src {origin}"
    response.headers["Cache-Control"] = "no-store"
    return response


async def checkin_outcome(request: web.Request) -> web.StreamResponse:
    """Record the outcome; a second look or a visit follows where the rules say so."""
    staff = _session(request).staff
    form = await read_form(request)
    try:
        done, follow = await _service(request).record(
            request.match_info["task_id"], staff, field(form, "outcome", 64), field(form, "note", 10 * NOTE_MAX)
        )
    except CheckinError as exc:
        status = 400 if exc.code.startswith("note_") else 409  # a note to fix: nothing was recorded
        if _wants_json(request):
            return web.json_response({"error": str(exc)}, status=status)
        raise (web.HTTPBadRequest if status == 400 else web.HTTPConflict)(text=str(exc)) from exc
    if _wants_json(request):
        return web.json_response({"task": done.public(), "follow_up": follow.public() if follow else None})
    # back to the page it was done from: the check-in list, or the patrol's route for a visit
    raise web.HTTPSeeOther(safe_back(field(form, "back", 200) or "/staff/checkins"))


_PLANS_SQL = (
    "SELECT p.resident_id, p.site, p.consent_ref, p.care_decision_ref, p.camera_device_id, p.travel_minutes, "
    "p.opt_out_nights, p.slots, r.unit FROM checkin_plans p JOIN residents r ON r.id = p.resident_id "
    "ORDER BY p.resident_id"
)


async def plans_page(request: web.Request) -> web.StreamResponse:
    """Nurses: the check-in plans of their units as YAML to edit (the same shape `vaka checkin plan` reads)."""
    return await _plans(request, None, "", 200)


async def _plans(request: web.Request, text: str | None, message: str, status: int) -> web.StreamResponse:
    ctx = _ctx(request)
    session = _session(request)
    staff = session.staff
    if staff.role not in (Role.NURSE, Role.ADMIN):
        raise forbidden(request, "error.checkin_plans_nurses")
    if text is None:
        async with ctx.db.acquire() as conn:
            rows = [r for r in await conn.fetch(_PLANS_SQL) if staff.sees(r["site"], r["unit"])]
        ctx.desk.log_resident_reads(
            staff, ((r["site"], r["resident_id"]) for r in rows), "checkin_plans", request.remote
        )
        text = dump_plans([plan_of(r) for r in rows]) if rows else "plans: []\n"
    return render(request, "staff/checkin_plans.html", staff.lang, status=status, staff=staff,
                  csrf=session.csrf_token, page="checkins", text=text, message=message)  # fmt: skip


async def plans_submit(request: web.Request) -> web.StreamResponse:
    """Validate and store the edited plans: every mistake with its line, residents of my units only, audited."""
    ctx = _ctx(request)
    staff = _session(request).staff
    if staff.role not in (Role.NURSE, Role.ADMIN):
        raise forbidden(request, "error.checkin_plans_nurses")
    text = field(await read_form(request), "plans", 100_000)
    try:
        plans = parse_plans(text, "plans")
    except PlanError as exc:
        return await _plans(request, text, str(exc), 400)
    mine = {resident.id for _, resident in ctx.desk.directory.residents_for(staff)}
    outside = [p.resident for p in plans if p.resident not in mine]
    if outside:
        return await _plans(request, text, f"not residents of your units: {', '.join(outside)}", 403)
    now = ctx.desk.clock.now()
    try:
        async with ctx.db.acquire() as conn, conn.transaction():
            await save_plans(conn, plans)
            await conn.executemany(
                "INSERT INTO admin_audit_log (at, staff_id, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
                [(now, staff.id, "checkin_plan", p.resident, f"{len(p.slots)} slots") for p in plans],
            )
    except CheckinError as exc:
        return await _plans(request, text, str(exc), 400)
    raise web.HTTPSeeOther("/staff/checkins")
