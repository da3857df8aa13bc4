"""Relatives page handlers: invitation, login, logout, language, the residents list and one resident's status.

`read_status()` is the single authorization and read path for the HTML and the JSON: session → live consent for
this resident now (403 when her consent ended or was revoked, 404 for any other id) → exactly the consented fields → one
access-log row, in one transaction.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiohttp import web

from hub.relatives import RelativesError
from hub.relatives import accounts as acc
from hub.relatives.consent import Scope
from hub.relatives.view import (
    NightHours,
    NotPermittedError,
    UnknownResidentError,
    authorize,
    live_residents,
    resident_name,
    resident_status,
)
from hub.store.access_log import record_relative_read
from hub.texts.catalogue import RELATIVE_LANGS, pick_lang, text_direction, translations
from hub.web.relatives.context import CONTEXT, RelativesContext
from hub.web.relatives.dates import clock_time, moment, night_date
from hub.web.security import Handler, SessionGuard, tokens_match

logger = logging.getLogger(__name__)

SESSION_COOKIE = "vaka_relative"
LOGIN_CSRF_COOKIE = "vaka_relative_login"
COOKIE_PATH = "/relative"
SESSION = web.RequestKey("vaka_relative_session", acc.RelativeSession)
_PUBLIC = ("/relative/login", "/relative/invite/", "/relative/static/", "/relative/passkey/login")


def _ctx(request: web.Request) -> RelativesContext:
    return request.config_dict[CONTEXT]


def _session(request: web.Request) -> acc.RelativeSession:
    session: acc.RelativeSession = request[SESSION]
    return session


def address(request: web.Request) -> str:
    """Where a request came from, as the access log records it (the client behind a trusted proxy)."""
    return request.remote or "?"


def throttle_key(email: str) -> str:
    """A relative's account in the login throttle (shared with staff user names)."""
    return f"relative:{email.strip().lower()}"


def set_cookie(response: web.StreamResponse, name: str, value: str, *, secure: bool) -> None:
    """HttpOnly, SameSite=Lax (so a link from an e-mail opens the page logged in), on /relative only."""
    response.set_cookie(name, value, path=COOKIE_PATH, secure=secure, httponly=True, samesite="Lax")


def redirect(location: str) -> web.Response:
    """A 303 See Other that can carry cookies."""
    return web.Response(status=303, headers={"Location": location})


@web.middleware
async def same_origin_referrer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Referrer-Policy same-origin (not no-referrer), so the browser sends our Origin on POSTs and fetches."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["Referrer-Policy"] = "same-origin"
        raise
    if not response.prepared:
        response.headers["Referrer-Policy"] = "same-origin"
    return response


async def _load_session(request: web.Request) -> acc.RelativeSession | None:
    ctx = _ctx(request)
    async with ctx.db.acquire() as conn:
        return await acc.session(
            conn, request.cookies.get(SESSION_COOKIE), ctx.now(), ctx.settings.relatives.session_idle_s
        )


def _not_signed_in(request: web.Request) -> web.StreamResponse:
    if request.path.startswith("/relative/api/") or request.headers.get("X-Requested-With") == "fetch":
        return web.json_response({"error": "login required"}, status=401)
    raise web.HTTPSeeOther("/relative/login")


GUARD = SessionGuard(
    key=SESSION,
    public=_PUBLIC,
    public_url=lambda request: _ctx(request).settings.http.public_url,
    load=_load_session,
    csrf_token=lambda session: session.csrf_token,
    not_signed_in=_not_signed_in,
    bad_csrf=lambda request, session: web.HTTPForbidden(text="CSRF token missing or wrong"),
)
session_middleware = GUARD.middleware  # every route but login, invitation and static files (hub/web/security.py)


def render(request: web.Request, template: str, lang: str, status: int = 200, **values: Any) -> web.Response:
    """A relatives page from the templates, in `lang` (right to left for Arabic)."""
    catalogue = translations(lang)
    html = (
        _ctx(request)
        .jinja.get_template(template)
        .render(
            t=catalogue.gettext,
            gettext=catalogue.gettext,
            ngettext=catalogue.ngettext,
            lang=lang,
            dir=text_direction(lang),
            langs=RELATIVE_LANGS,
            path=request.path,
            night_date=lambda iso: night_date(iso, lang),
            clock_time=lambda hhmm: clock_time(hhmm, lang),
            moment=lambda iso: moment(iso, lang),
            **values,
        )
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _lang(request: web.Request, fallback: str | None = None) -> str:
    requested = request.query.get("lang")
    if requested in RELATIVE_LANGS:
        return requested
    return fallback or pick_lang(request.headers.get("Accept-Language"), None, RELATIVE_LANGS)


async def read_status(request: web.Request, resident_id: str, what: str) -> tuple[frozenset[Scope], dict[str, Any]]:
    """The consented status of one resident for this relative, logged; HTTP 403 / 404 as the one rule says."""
    ctx = _ctx(request)
    relative = _session(request).relative
    now = ctx.now()
    hours = NightHours(ctx.settings.desk.night_start.strftime("%H:%M"), ctx.settings.desk.night_end.strftime("%H:%M"))
    async with ctx.db.acquire() as conn, conn.transaction():
        try:
            scopes = await authorize(conn, relative.id, resident_id, now)
        except NotPermittedError as exc:
            raise web.HTTPForbidden(text="not shared with you (no live consent)") from exc
        except UnknownResidentError as exc:
            raise web.HTTPNotFound(text="no such resident") from exc
        status = await resident_status(
            conn, resident_id, scopes, now, hours, unit_phones=ctx.settings.relatives.unit_phones
        )
        await record_relative_read(
            conn, at=now, relative_id=relative.id, resident_id=resident_id, what=what, address=address(request)
        )
    return scopes, status


async def read_residents(request: web.Request, what: str) -> dict[str, tuple[frozenset[Scope], str | None]]:
    """The residents consented to this relative now (scopes, and the name their care team recorded), each listed one
    logged as read."""
    ctx = _ctx(request)
    relative = _session(request).relative
    now = ctx.now()
    async with ctx.db.acquire() as conn, conn.transaction():
        residents = await live_residents(conn, relative.id, now)
        found = {r: (scopes, await resident_name(conn, r)) for r, scopes in residents.items()}
        for resident_id in residents:
            await record_relative_read(
                conn, at=now, relative_id=relative.id, resident_id=resident_id, what=what, address=address(request)
            )
    return found


async def _page_lang(request: web.Request) -> str:
    """The relative's language; `?lang=` changes it (and is remembered)."""
    session = _session(request)
    requested = request.query.get("lang")
    if requested in RELATIVE_LANGS and requested != session.relative.lang:
        ctx = _ctx(request)
        async with ctx.db.acquire() as conn:
            await acc.set_lang(conn, session.relative.id, requested)
        return requested
    return session.relative.lang


# --- login, invitation, logout ----------------------------------------------------------------------------------


def _login_form(request: web.Request, lang: str, error: str | None, status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "relatives/login.html", lang, status=status, csrf=token, error=error)
    set_cookie(response, LOGIN_CSRF_COOKIE, token, secure=_ctx(request).settings.http.cookie_secure)
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    """The sign-in form (password, or a passkey where the browser has one)."""
    return _login_form(request, _lang(request), None)


async def start_session(request: web.Request, relative: acc.Relative, location: str = "/relative/") -> web.Response:
    """Log the relative in: a new session cookie, and on to `location`."""
    ctx = _ctx(request)
    async with ctx.db.acquire() as conn:
        token = await acc.create_session(conn, relative.id, ctx.now())
    logger.info("relative login relative=%s", relative.id)
    response = redirect(location)
    set_cookie(response, SESSION_COOKIE, token, secure=ctx.settings.http.cookie_secure)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)
    return response


async def login_submit(request: web.Request) -> web.StreamResponse:
    """Check e-mail and password (rate-limited per account and per address), start a session."""
    ctx = _ctx(request)
    form = await request.post()
    lang = str(form.get("lang", "")) if form.get("lang") in RELATIVE_LANGS else _lang(request)
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE, ""), str(form.get("csrf", ""))):
        raise web.HTTPForbidden(text="CSRF token missing or wrong")
    email = str(form.get("email", "")).strip()[:254]
    password = str(form.get("password", ""))[:256]
    wait_s = await ctx.throttle.wait_s(throttle_key(email), address(request))
    if wait_s > 0:
        response = _login_form(request, lang, "relatives.login.limited", status=429)
        response.headers["Retry-After"] = str(int(wait_s) + 1)
        return response
    async with ctx.db.acquire() as conn:
        relative = await acc.authenticate(conn, email, password)
    if relative is None:
        await ctx.throttle.failed(throttle_key(email), address(request))
        logger.info("relative login failed")
        return _login_form(request, lang, "relatives.login.failed", status=401)
    await ctx.throttle.succeeded(throttle_key(email), address(request))
    return await start_session(request, relative)


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session."""
    ctx = _ctx(request)
    async with ctx.db.acquire() as conn:
        await acc.end_session(conn, request.cookies.get(SESSION_COOKIE, ""))
    response = redirect("/relative/login")
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


async def invite_page(request: web.Request) -> web.StreamResponse:
    """Set a password through a one-time invitation link (or say why the link no longer works)."""
    ctx = _ctx(request)
    token = request.match_info["token"]
    lang = _lang(request)
    async with ctx.db.acquire() as conn:
        state = await acc.invitation_usable(conn, token, ctx.now())
    if state not in ("ok", "account"):
        return render(request, "relatives/invite.html", lang, status=410, state=state, csrf="", error=None)
    csrf = secrets.token_urlsafe(24)
    response = render(request, "relatives/invite.html", lang, state=state, csrf=csrf, error=None)
    set_cookie(response, LOGIN_CSRF_COOKIE, csrf, secure=ctx.settings.http.cookie_secure)
    return response


async def invite_submit(request: web.Request) -> web.StreamResponse:
    """Use the invitation once: set the password, log in, offer a passkey."""
    ctx = _ctx(request)
    token = request.match_info["token"]
    form = await request.post()
    lang = str(form.get("lang", "")) if form.get("lang") in RELATIVE_LANGS else _lang(request)
    csrf = str(form.get("csrf", ""))
    if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf):
        raise web.HTTPForbidden(text="CSRF token missing or wrong")
    password = str(form.get("password", ""))[:256]
    async with ctx.db.acquire() as conn:
        if await acc.invitation_usable(conn, token, ctx.now()) == "account":
            return await _accept_link(request, token, form, lang, csrf)
    if password != str(form.get("password2", ""))[:256]:
        return render(
            request, "relatives/invite.html", lang, 400, state="ok", csrf=csrf, error="relatives.invite.differ"
        )
    async with ctx.db.acquire() as conn:
        try:
            relative = await acc.accept_invitation(conn, token, password, ctx.now())
        except RelativesError as exc:
            state = await acc.invitation_usable(conn, token, ctx.now())
            if state == "ok":  # the password was refused
                return render(
                    request, "relatives/invite.html", lang, 400, state="ok", csrf=csrf, error="relatives.invite.short"
                )
            logger.info("relative invitation refused: %s", exc)
            return render(request, "relatives/invite.html", lang, status=410, state=state, csrf="", error=None)
        await acc.set_lang(conn, relative.id, lang)
    return await start_session(request, relative, "/relative/?welcome=1")


async def _accept_link(request: web.Request, token: str, form: Any, lang: str, csrf: str) -> web.StreamResponse:
    """An account in use: its owner signs in (throttled like the login) to accept the link; the password stays hers,
    and anyone else, the inviter included, gets the sign-in error."""
    ctx = _ctx(request)
    email = str(form.get("email", "")).strip()[:254]
    wait_s = await ctx.throttle.wait_s(throttle_key(email), address(request))
    if wait_s > 0:
        response = render(request, "relatives/invite.html", lang, 429, state="account", csrf=csrf,
                          error="relatives.login.limited")  # fmt: skip
        response.headers["Retry-After"] = str(int(wait_s) + 1)
        return response
    async with ctx.db.acquire() as conn:
        relative = await acc.authenticate(conn, email, str(form.get("password", ""))[:256])
        if relative is not None:
            try:
                await acc.accept_link(conn, token, relative, ctx.now())
            except RelativesError as exc:
                logger.info("relative invitation refused: %s", exc)
                relative = None
    if relative is None:
        await ctx.throttle.failed(throttle_key(email), address(request))
        return render(request, "relatives/invite.html", lang, 401, state="account", csrf=csrf,
                      error="relatives.login.failed")  # fmt: skip
    await ctx.throttle.succeeded(throttle_key(email), address(request))
    return await start_session(request, relative, "/relative/")


# --- what the relative sees ---------------------------------------------------------------------------------------


async def home_page(request: web.Request) -> web.StreamResponse:
    """The residents consented to me; straight to the one when there is only one."""
    lang = await _page_lang(request)
    residents = await read_residents(request, "resident_list")
    return render(
        request,
        "relatives/home.html",
        lang,
        residents=[
            {"id": r, "name": name, "scopes": sorted(s.value for s in scopes)}
            for r, (scopes, name) in residents.items()
        ],
        csrf=_session(request).csrf_token,
        welcome=request.query.get("welcome") == "1",
    )


async def resident_page(request: web.Request) -> web.StreamResponse:
    """One resident's consented status; the page re-checks it every `refresh_s`."""
    lang = await _page_lang(request)
    resident_id = request.match_info["resident_id"]
    try:
        _, status = await read_status(request, resident_id, "status_page")
    except (web.HTTPForbidden, web.HTTPNotFound) as exc:
        return render(request, "relatives/gone.html", lang, status=exc.status, resident=resident_id,
                      csrf=_session(request).csrf_token)  # fmt: skip
    return render(
        request,
        "relatives/resident.html",
        lang,
        status=200,
        resident=resident_id,
        s=status,
        csrf=_session(request).csrf_token,
        refresh_s=_ctx(request).settings.relatives.refresh_s,
    )


async def resident_panel(request: web.Request) -> web.StreamResponse:
    """The status part of the resident page, for the page's own refresh (403/404 say it is no longer shared)."""
    lang = _session(request).relative.lang
    resident_id = request.match_info["resident_id"]
    try:
        _, status = await read_status(request, resident_id, "status_refresh")
    except (web.HTTPForbidden, web.HTTPNotFound) as exc:
        return render(request, "relatives/_gone.html", lang, status=exc.status)
    return render(request, "relatives/_status.html", lang, s=status)


def add_routes(app: web.Application) -> None:
    """The page routes of the relatives sub-application."""
    app.router.add_get("/", home_page, name="home")
    app.router.add_get("/login", login_page, name="login")
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/invite/{token}", invite_page)
    app.router.add_post("/invite/{token}", invite_submit)
    app.router.add_get("/residents/{resident_id}", resident_page)
    app.router.add_get("/residents/{resident_id}/panel", resident_panel)
