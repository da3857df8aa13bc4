"""The manager's follow-up page: the monthly report of the units they are responsible for, in the browser.

Managers (and admins) see only their own units; each view and each download is recorded in the append-only
`admin_audit_log` (who, which site and unit, which month). The charts are separate SVG images (`<img>`), so the
page's Content-Security-Policy stays strict; JSON and PDF are downloads of the same report.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta

from aiohttp import web

from hub.followup import report
from hub.followup.indicators import Period, PeriodError, Scope, last_tiers, month
from hub.people.staff import ALL_UNITS, Role, StaffMember
from hub.web.staff.pages import _ctx, _session, forbidden, render

ROLES = frozenset({Role.MANAGER, Role.ADMIN})
CHARTS = ("nights", "response", "devices")


def _scopes(staff: StaffMember) -> list[tuple[str, str]]:
    """The (site, unit) pairs this person may follow up; unit '*' is the whole site."""
    return sorted(staff.units)


def _chosen(request: web.Request, staff: StaffMember) -> tuple[Scope, Period, str]:
    """The scope and month asked for, checked against the person's units (403 for anything else)."""
    if staff.role not in ROLES:
        raise forbidden(request, "error.followup_managers")
    scopes = _scopes(staff)
    key = request.query.get("scope") or f"{scopes[0][0]}/{scopes[0][1]}"
    site, _, unit = key.partition("/")
    if (site, unit) not in scopes:
        raise forbidden(request, "error.not_your_unit")
    text = request.query.get("month")
    if text:
        try:
            period = month(text)
        except PeriodError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
    else:
        # the last whole month, on the hub's clock
        first = _ctx(request).desk.clock.now().date().replace(day=1)
        period = month(f"{first - timedelta(days=1):%Y-%m}")
    return Scope(site, None if unit == ALL_UNITS else unit), period, key


async def _build(request: web.Request, action: str) -> tuple[report.Report, str]:
    ctx = _ctx(request)
    staff = _session(request).staff
    scope, period, key = _chosen(request, staff)
    now = ctx.desk.clock.now()
    async with ctx.db.acquire() as conn:
        built = await report.build(
            conn,
            scope,
            period,
            now,
            accept_policy_s=ctx.settings.followup.accept_policy_s,
            last_tiers=last_tiers(ctx.settings.desk),
        )
        if action:
            await conn.execute(
                "INSERT INTO admin_audit_log (at, staff_id, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
                now, staff.id, action, key, period.label,
            )  # fmt: skip
    return built, key


async def followup_page(request: web.Request) -> web.StreamResponse:
    """The report of one of my units for one month, as a page."""
    session = _session(request)
    staff = session.staff
    built, key = await _build(request, "followup_view")
    lang = report.report_lang(staff.lang)
    query = f"scope={key}&month={built.current.period.label}"
    return render(
        request,
        "staff/followup.html",
        staff.lang,
        staff=staff,
        csrf=session.csrf_token,
        page="followup",
        scopes=[f"{s}/{u}" for s, u in _scopes(staff)],
        chosen=key,
        period=built.current.period.label,
        previous=built.previous.period.label,
        rows=report._table_rows(built, lang),
        charts=[f"/staff/followup/chart/{name}.svg?{query}" for name in CHARTS],
        downloads={fmt: f"/staff/followup/report.{fmt}?{query}" for fmt in ("pdf", "json")},
    )


async def followup_chart(request: web.Request) -> web.StreamResponse:
    """One chart of the report as an SVG image."""
    name = request.match_info["name"]
    if name not in CHARTS:
        raise web.HTTPNotFound()
    built, _ = await _build(request, "")
    lang = report.report_lang(_session(request).staff.lang)
    fig = report._figures(built, lang)[CHARTS.index(name)]
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return web.Response(text=buf.getvalue(), content_type="image/svg+xml")


async def followup_download(request: web.Request) -> web.StreamResponse:
    """The report as a PDF or JSON download."""
    fmt = request.match_info["fmt"]
    if fmt not in ("pdf", "json"):
        raise web.HTTPNotFound()
    built, key = await _build(request, f"followup_download_{fmt}")
    lang = report.report_lang(_session(request).staff.lang)
    name = f"report-{key.replace('/', '-').replace('*', 'all')}-{built.current.period.label}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "json":
        body = json.dumps(report.to_json(built), indent=2, ensure_ascii=False).encode()
        return web.Response(body=body, content_type="application/json", headers=headers)
    pdf = io.BytesIO()
    report.to_pdf(built, lang, pdf)
    return web.Response(body=pdf.getvalue(), content_type="application/pdf", headers=headers)
