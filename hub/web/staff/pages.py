"""Staff page handlers: login/logout, open alarms, residents, alarm actions, Web Push subscription."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from hub.desk.alarm import Alarm
from hub.desk.fanout import local_hm
from hub.desk.machine import DeskError, HandoverError
from hub.model import Outcome
from hub.notify.push_guard import PushEndpointError
from hub.notify.webpush import PushSubscription
from hub.people.residents import read_homes
from hub.people.staff import Role, StaffMember
from hub.store.db import DATABASE_AWAY
from hub.store.pool import Database
from hub.store.staff import authenticate
from hub.texts.catalogue import device_kind_label, local_clock, pick_lang, rule_label, rule_labels, translations
from hub.web.bodies import field, read_form, read_json_object
from hub.web.degraded import alarm_system_degraded
from hub.web.paths import STATIC_DIR
from hub.web.reasons import note_text, page_texts, reason_text
from hub.web.security import (
    COOKIE_PATH,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SessionGuard,
    set_cookie,
    tokens_match,
)
from hub.web.staff.context import CONTEXT, StaffContext
from hub.web.staff.sessions import Session

logger = logging.getLogger(__name__)

_PUBLIC = ("/staff/login", "/staff/static/", "/staff/sw.js")
_ACTIONS = ("accept", "en_route", "on_site", "resolve")
SESSION = web.RequestKey("vaka_staff_session", Session)


def page_lang(request: web.Request, session: Session | None = None) -> str:
    """The language of the person asking: her account's, else her browser's."""
    session = session or request.get(SESSION)
    if session is not None:
        return session.staff.lang
    return pick_lang(request.headers.get("Accept-Language"), request.query.get("lang"))


def refusal(
    request: web.Request, kind: type[web.HTTPException], msgid: str, session: Session | None = None
) -> web.HTTPException:
    """An HTTP error whose text is the catalogue's `msgid` in the person's language (never English on a Swedish
    page): raise it."""
    return kind(text=translations(page_lang(request, session)).gettext(msgid))


def forbidden(request: web.Request, msgid: str) -> web.HTTPException:
    """403 with the catalogue's `msgid` in the person's language."""
    return refusal(request, web.HTTPForbidden, msgid)


def redirect(location: str) -> web.Response:
    """A 303 See Other that goes through the middlewares (and can carry cookies)."""
    return web.Response(status=303, headers={"Location": location})


def safe_back(target: str) -> str:
    """Where to go after a form on a staff page: the staff page it came from (`back`), never elsewhere."""
    return target if target.startswith("/staff/") and "//" not in target and "\\" not in target else "/staff/"


def _ctx(request: web.Request) -> StaffContext:
    return request.config_dict[CONTEXT]


def _session(request: web.Request) -> Session:
    session: Session = request[SESSION]
    return session


def _wants_json(request: web.Request) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


async def _load_session(request: web.Request) -> Session | None:
    return await _ctx(request).sessions.get(request.cookies.get(SESSION_COOKIE))


def _not_signed_in(request: web.Request) -> web.StreamResponse:
    if request.method == "GET" and request.path != "/staff/ws":
        raise web.HTTPSeeOther("/staff/login")
    raise refusal(request, web.HTTPUnauthorized, "error.login_required")


GUARD = SessionGuard(
    key=SESSION,
    public=_PUBLIC,
    public_url=lambda request: _ctx(request).settings.http.public_url,
    load=_load_session,
    csrf_token=lambda session: session.csrf_token,
    not_signed_in=_not_signed_in,
    bad_csrf=lambda request, session: refusal(request, web.HTTPForbidden, "error.csrf", session),
)
session_middleware = GUARD.middleware  # every staff route but login and static files (hub/web/security.py)


def render(request: web.Request, template: str, lang: str, status: int = 200, **values: Any) -> web.Response:
    """A page from the templates, in `lang` (`t`, `_` and `{% trans %}` all read the gettext catalogue)."""
    catalogue = translations(lang)
    staff = values.get("staff")
    if staff is not None and "duty_hm" not in values:
        desk = _ctx(request).desk
        until = desk.duty.on_duty(staff)
        zone_name = desk.directory.zone(next(iter(sorted(staff.sites)), ""))
        zone = ZoneInfo(zone_name)
        values["duty_hm"] = local_hm(until, zone) if until else None
        values.setdefault("back", request.path)
        now = desk.clock.now()  # the header's clock: the hub's time, as the alarms' ages are
        values.setdefault("now_iso", now.isoformat())
        values.setdefault("now_hm", local_hm(now, zone))
        values.setdefault("zone_name", zone_name)
        values.setdefault("clock_rate", desk.clock_rate())
    html = (
        _ctx(request)
        .jinja.get_template(template)
        .render(
            t=catalogue.gettext,
            gettext=catalogue.gettext,
            ngettext=catalogue.ngettext,
            lang=lang,
            rule_label=lambda r: rule_label(lang, r),
            kind_label=lambda k: device_kind_label(lang, k),
            **values,
        )
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


async def login_page(request: web.Request) -> web.StreamResponse:
    """The sign-in form."""
    lang = pick_lang(request.headers.get("Accept-Language"), request.query.get("lang"))
    return _login_form(request, lang, error=None)


def _login_form(request: web.Request, lang: str, error: str | None, status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "staff/login.html", lang, status=status, csrf=token, error=error)
    set_cookie(response, LOGIN_CSRF_COOKIE, token, secure=_ctx(request).settings.http.cookie_secure)
    return response


async def login_submit(request: web.Request) -> web.StreamResponse:
    """Check the password (rate-limited), start a session, go to the alarms."""
    ctx = _ctx(request)
    form = await read_form(request)
    lang = pick_lang(request.headers.get("Accept-Language"), field(form, "lang", 16) or None)
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE, ""), field(form, "csrf", 256)):
        raise web.HTTPForbidden(text=translations(lang).gettext("error.csrf"))
    username = field(form, "username", 64).strip()
    password = field(form, "password", 256)
    address = request.remote or "?"  # the client, also behind a trusted proxy (throttle.forwarded_client)
    assert ctx.throttle is not None
    try:
        return await _check_and_sign_in(request, ctx, lang, username, password, address)
    except DATABASE_AWAY as exc:  # a restart during an outage: say so, never a 500 (issue 22.3)
        logger.warning("staff login impossible: database away (%s)", type(exc).__name__)
        ctx.metrics.logins.labels("unavailable").inc()
        return _login_form(request, lang, "login.database_away", status=503)


async def _check_and_sign_in(
    request: web.Request, ctx: StaffContext, lang: str, username: str, password: str, address: str
) -> web.StreamResponse:
    assert ctx.throttle is not None
    wait_s = await ctx.throttle.wait_s(username, address)
    if wait_s > 0:
        ctx.metrics.logins.labels("limited").inc()
        response = _login_form(request, lang, "login.limited", status=429)
        response.headers["Retry-After"] = str(int(wait_s) + 1)
        return response
    async with ctx.db.acquire() as conn:
        staff = await authenticate(conn, username, password)
    if staff is None:
        await ctx.throttle.failed(username, address)
        ctx.metrics.logins.labels("failed").inc()
        logger.info("staff login failed")
        return _login_form(request, lang, "login.failed", status=401)
    await ctx.throttle.succeeded(username, address)
    ctx.metrics.logins.labels("ok").inc()
    token, _ = await ctx.sessions.create(staff)
    logger.info("staff login staff=%s role=%s", staff.id, staff.role.value)
    if ctx.desk.duty.on_duty(staff) is None:
        ctx.desk.duty.sign_on(staff)  # signing in starts the shift: escalation reaches those on duty
    response = redirect("/staff/")
    set_cookie(response, SESSION_COOKIE, token, secure=ctx.settings.http.cookie_secure)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session, and the shift unless the person chose to stay on duty (a nurse on call from home keeps
    getting escalations on her phone); this session's open pages (other tabs, other phones) close now."""
    ctx = _ctx(request)
    if field(await read_form(request), "end_duty", 8) != "no":
        ctx.desk.duty.sign_off(_session(request).staff)
    await ctx.sessions.delete(request.cookies.get(SESSION_COOKIE, ""))
    ctx.desk.pages.close_ended_sessions()
    response = redirect("/staff/login")
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


def _ago_s(now: datetime, iso: str) -> int:
    return max(0, int((now - datetime.fromisoformat(iso)).total_seconds()))


async def alarms_page(request: web.Request) -> web.StreamResponse:
    """Open alarms of my units, most urgent first; each resident shown is logged as read."""
    ctx = _ctx(request)
    session = _session(request)
    staff = session.staff
    if staff.role is Role.MANAGER:
        raise web.HTTPFound("/staff/followup")
    alarms: list[Alarm] = ctx.desk.machine.open_alarms_for(staff)
    views = [ctx.desk.view(a) for a in alarms]
    ctx.desk.log_resident_reads(
        staff, ((a.site, a.resident_id) for a in alarms if a.resident_id), "alarm_list", request.remote
    )
    now = ctx.desk.clock.now()
    lang = staff.lang
    return render(
        request,
        "staff/alarms.html",
        staff.lang,
        staff=staff,
        csrf=session.csrf_token,
        alarms=views,
        ago={v["id"]: _ago_s(now, v["raised_at"]) for v in views},
        reasons={v["id"]: reason_text(lang, v["rule_id"], v["reason"]) for v in views},
        notes={v["id"]: note_text(lang, v["rule_id"], v["condition_note"]) for v in views},
        reason_texts=page_texts(lang),
        clock_rate=ctx.desk.clock_rate(),
        now=now.isoformat(),
        page="alarms",
        error={"state": "error.state", "handover": "error.handover"}.get(request.query.get("error", "")),
        rule_labels=rule_labels(staff.lang),
        push_key=ctx.push.public_key if ctx.push else "",
        degraded=alarm_system_degraded(request),
    )


async def resident_status(
    db: Database, staff: StaffMember, resident_ids: list[str], now: datetime
) -> tuple[dict[str, str], dict[str, datetime]]:
    """Display names (resident directory, staff's units only) and last activity in the week before `now`."""
    if not resident_ids:
        return {}, {}
    async with db.acquire() as conn:
        homes = await read_homes(conn, staff, resident_ids)
        rows = await conn.fetch(
            "SELECT resident_id, max(ts) AS ts FROM events WHERE resident_id = ANY($1::text[]) AND ts > $2"
            " AND ts <= $3 GROUP BY resident_id",
            resident_ids,
            now - timedelta(days=7),
            now,
        )
    return {rid: h.name for rid, h in homes.items() if h.name}, {r["resident_id"]: r["ts"] for r in rows}


async def health(request: web.Request) -> web.StreamResponse:
    """Whether the alarm system is degraded, for the page's banner (polled; nothing personal in it)."""
    _session(request)
    return web.json_response({"degraded": alarm_system_degraded(request)}, headers={"Cache-Control": "no-store"})


async def residents_page(request: web.Request) -> web.StreamResponse:
    """Residents of my units with room and device health; each is logged as read."""
    ctx = _ctx(request)
    session = _session(request)
    staff = session.staff
    rows: list[dict[str, Any]] = []
    read: list[tuple[str, str]] = []
    listed = ctx.desk.directory.residents_for(staff)
    now = ctx.desk.clock.now()
    open_by_resident: dict[str, list[Alarm]] = {}
    for alarm in ctx.desk.machine.open_alarms_for(staff):
        if alarm.resident_id:
            open_by_resident.setdefault(alarm.resident_id, []).append(alarm)
    names, last_seen = await resident_status(ctx.db, staff, [r.id for _, r in listed], now)
    for site, resident in listed:
        read.append((site.id, resident.id))
        faults = ctx.desk.machine.device_faults(site.id)
        devices = [
            (d.id, d.kind, d.id not in faults and not d.maintenance, d.maintenance)
            for d in site.devices
            if d.resident == resident.id
        ]
        seen = last_seen.get(resident.id)
        zone = ZoneInfo(ctx.desk.directory.zone(site.id))
        rows.append(
            {
                "site": site.id,
                "id": resident.id,
                "room": resident.room,
                "unit": resident.unit,
                "name": names.get(resident.id, ""),
                "away": resident.away,
                "alarms": [(a.id, a.rule_id) for a in open_by_resident.get(resident.id, [])],
                "last_seen_ago": _ago_s(now, seen.isoformat()) if seen else None,
                # the site's wall clock on the hub's clock: 02:14, with the date when not today
                "last_seen_clock": local_clock(seen, zone, now, staff.lang) if seen else None,
                "last_seen_at": seen.isoformat() if seen else None,
                "devices": devices,
            }
        )
    ctx.desk.log_resident_reads(staff, read, "resident_list", request.remote)
    return render(
        request,
        "staff/residents.html",
        staff.lang,
        staff=staff,
        csrf=session.csrf_token,
        residents=rows,
        page="residents",
        can_consent=staff.role in (Role.NURSE, Role.ADMIN),
    )


async def alarm_action(request: web.Request) -> web.StreamResponse:
    """Accept / on my way / on site / resolve; JSON for the page's fetch, a redirect for a plain form."""
    ctx = _ctx(request)
    staff = _session(request).staff
    alarm_id = request.match_info["alarm_id"]
    action = request.match_info["action"]
    if action not in _ACTIONS:
        raise web.HTTPNotFound
    form = await read_form(request)
    take_over = field(form, "take_over", 8) == "1"
    try:
        if action == "resolve":
            try:
                outcome = Outcome(field(form, "outcome", 64))
            except ValueError as exc:
                raise web.HTTPBadRequest(text="outcome must be one of " + ", ".join(o.value for o in Outcome)) from exc
            alarm = ctx.desk.actions.resolve(alarm_id, staff, outcome, field(form, "note", 4000), take_over=take_over)
        else:
            alarm = getattr(ctx.desk.actions, action)(alarm_id, staff, take_over=take_over)
    except HandoverError as exc:
        if _wants_json(request):
            return web.json_response({"ok": False, "error": str(exc), "handover": exc.holder}, status=409)
        return redirect("/staff/?error=handover")
    except DeskError as exc:
        if _wants_json(request):
            return web.json_response({"ok": False, "error": str(exc)}, status=409)
        return redirect("/staff/?error=state")
    if _wants_json(request):
        if alarm.resident_id:  # the reply names the resident's room: a read like any other
            ctx.desk.log_resident_reads(staff, [(alarm.site, alarm.resident_id)], "alarm_action", request.remote)
        return web.json_response({"ok": True, "alarm": ctx.desk.view(alarm)})
    return redirect("/staff/")


async def push_key(request: web.Request) -> web.StreamResponse:
    """The VAPID application server key, or null when Web Push is off."""
    push = _ctx(request).push
    return web.json_response({"key": push.public_key if push else None})


async def push_subscribe(request: web.Request) -> web.StreamResponse:
    """Store this browser's push subscription for the logged-in person."""
    ctx = _ctx(request)
    if ctx.push is None:
        raise web.HTTPNotFound(text="web push is not configured")
    data = await read_json_object(request)
    try:
        sub = PushSubscription(str(data["endpoint"]), str(data["keys"]["p256dh"]), str(data["keys"]["auth"]))
    except (KeyError, TypeError) as exc:
        raise web.HTTPBadRequest(text="expected a PushSubscription JSON") from exc
    try:
        mine = await ctx.push.subscribe(_session(request).staff.id, sub)
    except PushEndpointError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    if not mine:
        raise web.HTTPConflict(text="this push endpoint is registered to another staff member")
    return web.json_response({"ok": True})


async def service_worker(request: web.Request) -> web.StreamResponse:
    """The service worker (served from /staff/ so its scope covers the staff page)."""
    response = web.FileResponse(STATIC_DIR / "sw.js")
    response.headers["Service-Worker-Allowed"] = "/staff/"
    response.content_type = "application/javascript"
    return response
