"""The night patrol's check-in list: tasks of my units by due time, overdue marked; a camera look shown straight
from the gateway (the page's CSP admits that one origin in a frame, nothing passes through Vaka); one tap for the
outcome."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiohttp import web

from hub.checkins.service import OUTCOMES, PHYSICAL_OUTCOMES, CheckinError, CheckinService
from hub.web.staff.pages import _ctx, _session, _wants_json, render
from hub.web.staff.security import CSP


def _clock(request: web.Request) -> Callable[..., str]:
    """`clock(site, at[, seconds])`: a time as the site's wall clock shows it (02:14)."""
    directory = _ctx(request).desk.directory

    def clock(site: str, at: datetime, seconds: bool = False) -> str:
        return at.astimezone(ZoneInfo(directory.zone(site))).strftime("%H:%M:%S" if seconds else "%H:%M")

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
    ctx.desk.log_resident_reads(staff, ((t.site, t.resident_id) for t in tasks), "checkin_list")
    now = ctx.desk.clock.now()
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
        clock=_clock(request),
    )


async def checkin_look(request: web.Request) -> web.StreamResponse:
    """Ask the gateway for a viewing URL and show it framed, with the outcome buttons."""
    session = _session(request)
    staff = session.staff
    try:
        task, url, expires_at = await _service(request).look(request.match_info["task_id"], staff)
    except CheckinError as exc:
        if _wants_json(request):
            return web.json_response({"error": str(exc)}, status=403)
        return render(request, "staff/checkin_refused.html", staff.lang, status=403, staff=staff,
                      csrf=session.csrf_token, page="checkins", reason=str(exc))  # fmt: skip
    if _wants_json(request):
        return web.json_response({"url": url, "expires_at": expires_at.isoformat()})
    response = render(request, "staff/checkin_look.html", staff.lang, staff=staff, csrf=session.csrf_token,
                      page="checkins", task=task, url=url, expires_at=expires_at, outcomes=OUTCOMES,
                      clock=_clock(request))  # fmt: skip
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    response.headers["Content-Security-Policy"] = f"{CSP}; frame-src {origin}"
    response.headers["Cache-Control"] = "no-store"
    return response


async def checkin_outcome(request: web.Request) -> web.StreamResponse:
    """Record the outcome; a second look or a visit follows where the rules say so."""
    staff = _session(request).staff
    form = await request.post()
    try:
        done, follow = await _service(request).record(
            request.match_info["task_id"], staff, str(form.get("outcome", ""))
        )
    except CheckinError as exc:
        if _wants_json(request):
            return web.json_response({"error": str(exc)}, status=409)
        raise web.HTTPConflict(text=str(exc)) from exc
    if _wants_json(request):
        return web.json_response({"task": done.public(), "follow_up": follow.public() if follow else None})
    raise web.HTTPSeeOther("/staff/checkins")
