"""Consents on the staff page: a nurse or admin of the resident's unit records, lists and revokes what relatives may
see, and can create a relative's one-time invitation link. Every view of a resident's consents is an access-log row.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from hub.people.staff import Role
from hub.relatives import RelativesError
from hub.relatives.accounts import INVITATION_VALID, has_live_consent, invite
from hub.relatives.consent import GivenBy, Scope, consents_for, grant, parse_scopes, revoke
from hub.store.access_log import record_read
from hub.web.paths import wall_clock
from hub.web.staff.pages import _ctx, _session, forbidden, redirect, refusal, render

logger = logging.getLogger(__name__)

CONSENT_ROLES = frozenset({Role.NURSE, Role.ADMIN})


def _resident_of_my_units(request: web.Request) -> tuple[str, str, str]:
    """(site, resident id, unit) when the resident is in one of my units and I may record consents; else 403/404."""
    ctx = _ctx(request)
    staff = _session(request).staff
    if staff.role not in CONSENT_ROLES:
        raise forbidden(request, "error.consents_nurses")
    wanted = request.match_info["resident_id"]
    for site, resident in ctx.desk.directory.residents_for(staff):
        if resident.id == wanted:
            return site.id, resident.id, resident.unit
    raise refusal(request, web.HTTPNotFound, "error.no_resident")


async def consents_page(request: web.Request, *, notice: str | None = None, link: str | None = None,
                        error: str | None = None, status: int = 200) -> web.StreamResponse:  # fmt: skip
    """The resident's consents (live first), a form to record one, and revoke buttons."""
    ctx = _ctx(request)
    session = _session(request)
    staff = session.staff
    site, resident_id, _unit = _resident_of_my_units(request)
    now = wall_clock()
    async with ctx.db.acquire() as conn, conn.transaction():
        consents = await consents_for(conn, resident_id)
        await record_read(
            conn, at=now, staff_id=staff.id, role=staff.role.value, site=site, resident_id=resident_id,
            what="consents", address=request.remote,
        )  # fmt: skip
    zone = ZoneInfo("Europe/Stockholm")
    rows: list[dict[str, Any]] = [
        {
            "relative": c.relative_email,
            "scope": c.scope.value,
            "status": c.status(now),
            "given_by": c.given_by.value,
            "recorded": f"{c.recorded_at.astimezone(zone):%Y-%m-%d %H:%M} {c.recorded_by}",
            "text_version": c.text_version,
            "until": f"{(c.valid_until.astimezone(zone) - timedelta(minutes=1)):%Y-%m-%d}" if c.valid_until else "",
            "revoked": f"{c.revoked_at.astimezone(zone):%Y-%m-%d %H:%M} {c.revoked_by}" if c.revoked_at else "",
        }
        for c in sorted(consents, key=lambda c: (c.status(now) != "live", c.relative_email, c.id))
    ]
    live_relatives = sorted({r["relative"] for r in rows if r["status"] == "live"})
    return render(
        request,
        "staff/consents.html",
        staff.lang,
        status=status,
        staff=staff,
        csrf=session.csrf_token,
        page="residents",
        resident=resident_id,
        consents=rows,
        live_relatives=live_relatives,
        scopes=[s.value for s in Scope],
        text_version=ctx.settings.relatives.consent_text_version,
        notice=notice,
        error=error,
        link=link,
        link_expires=f"{(now + INVITATION_VALID).astimezone(zone):%Y-%m-%d %H:%M}",
    )


async def consents_view(request: web.Request) -> web.StreamResponse:
    """GET the consents page."""
    return await consents_page(request)


def _until(text: str) -> datetime | None:
    if not text:
        return None
    day = date.fromisoformat(text)
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), ZoneInfo("Europe/Stockholm"))


async def consents_change(request: web.Request) -> web.StreamResponse:
    """Record a consent, revoke one relative's consents, or create an invitation link."""
    ctx = _ctx(request)
    staff = _session(request).staff
    _site, resident_id, _unit = _resident_of_my_units(request)
    form = await request.post()
    action = str(form.get("action", ""))
    email = str(form.get("relative", "")).strip()[:254]
    now = wall_clock()
    try:
        async with ctx.db.acquire() as conn:
            if action == "grant":
                if form.get("shown") != "yes":
                    msg = "confirm that the consent text was shown"
                    raise RelativesError(msg)
                try:
                    until = _until(str(form.get("until", "")))
                    given_by = GivenBy(str(form.get("given_by", "")))
                except ValueError as exc:
                    raise RelativesError(str(exc)) from exc
                await grant(
                    conn, resident_id=resident_id, relative_email=email,
                    scopes=parse_scopes(str(v) for v in form.getall("scope", [])), given_by=given_by,
                    recorded_by=staff.username, text_version=ctx.settings.relatives.consent_text_version,
                    at=now, valid_until=until,
                )  # fmt: skip
                return await consents_page(request, notice="consents.granted")
            if action == "revoke":
                await revoke(
                    conn, resident_id=resident_id, relative_email=email, scopes=None,
                    recorded_by=staff.username, at=now,
                )  # fmt: skip
                return await consents_page(request, notice="consents.revoked")
            if action == "invite":
                if not await has_live_consent(conn, email, resident_id, now):
                    msg = "an invitation needs the relative's live consent for this resident: record it first"
                    raise RelativesError(msg)
                token, _ = await invite(conn, email=email, resident_id=resident_id, created_by=staff.username, at=now)
                link = f"{ctx.settings.http.public_url.rstrip('/')}/relative/invite/{token}"
                return await consents_page(request, notice="consents.invited", link=link)
    except RelativesError as exc:
        logger.info("consent change refused: %s", exc)
        return await consents_page(request, error=str(exc), status=400)
    return redirect(f"/staff/residents/{resident_id}/consents")


def add_routes(app: web.Application) -> None:
    """The consent routes of the staff sub-application."""
    app.router.add_get("/residents/{resident_id}/consents", consents_view)
    app.router.add_post("/residents/{resident_id}/consents", consents_change)
