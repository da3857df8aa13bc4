"""The nurse's admin page (`/staff/admin`, roles nurse and admin): what the CLI does, in the browser, audited.

Staff accounts of my sites (add, disable/enable, reset password, units), residents away or in hospital, devices in
maintenance, residents' rule profiles. Every change is a row in the append-only `admin_audit_log` (who, what, on whom,
when) and one log line; the desk re-reads staff at once, the hub picks up away/maintenance with its inventory refresh
and a rule profile within a second. One rule decides who may do what (`StaffMember.holds`, docs/security.md): a nurse
manages staff and nurse accounts whose every unit she holds and grants only units she holds (`north/*` from a nurse of
north/night means north/night); creating or changing an admin or manager takes an admin.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import asyncpg
from aiohttp import web

from alarms.spec import RuleProfile
from hub.people.staff import Role, StaffError, StaffMember
from hub.store.inventory import set_device_maintenance, set_resident_away, set_rule_profile
from hub.store.staff import create_staff, hash_password
from hub.texts.catalogue import rule_label, translator
from hub.web.bodies import field, read_form
from hub.web.staff.context import CONTEXT, StaffContext
from hub.web.staff.pages import SESSION, forbidden, redirect, render
from hub.web.staff.sessions import Session

logger = logging.getLogger(__name__)

_ADMIN_ROLES = (Role.NURSE, Role.ADMIN)
ADMIN_PAGE_SIZE = 20  # residents per page of the admin page
_AUDIT = "INSERT INTO admin_audit_log (at, staff_id, action, target, detail) VALUES ($1, $2, $3, $4, $5)"


# what the page says after a change, and why it refused one: fixed message ids, never text from the query string;
# the one name a message may carry is shown only when it is an account, resident, device or profile of the page
DONE = frozenset(
    {
        "staff_added", "staff_enabled", "staff_disabled", "staff_password", "staff_units", "resident_away",
        "resident_home", "device_maintenance", "device_in_service", "profile_set", "profile_cleared",
    }
)  # fmt: skip
REFUSED = frozenset(
    {
        "units_format", "not_your_units", "no_account", "may_not_change", "not_in_your_units", "no_profile",
        "password_short", "needs_unit", "username_taken", "refused",
    }
)  # fmt: skip


class AdminRefusal(StaffError):
    """A change the admin page refuses: `code` names the page's message (admin.error.<code>), `name` what it was."""

    def __init__(self, code: str, name: str = "", detail: str = "") -> None:
        super().__init__(detail or f"{code} {name}".strip())
        self.code = code
        self.name = name


def _refusal(exc: StaffError, form: Any) -> AdminRefusal:
    """The page's message for a refusal from the staff store (whose texts are for the command line)."""
    if isinstance(exc, AdminRefusal):
        return exc
    text = str(exc)
    for prefix, code in (
        ("password must", "password_short"),
        ("a staff member needs", "needs_unit"),
        ("staff user name", "username_taken"),
        ("no staff member", "no_account"),
    ):
        if text.startswith(prefix):
            return AdminRefusal(code, field(form, "username", 64), text)
    return AdminRefusal("refused", "", text)


def _ctx(request: web.Request) -> StaffContext:
    return request.config_dict[CONTEXT]


def _admin(request: web.Request) -> Session:
    session: Session = request[SESSION]
    if session.staff.role not in _ADMIN_ROLES:
        raise forbidden(request, "error.admin_only")
    return session


def _units(text: str) -> frozenset[tuple[str, str]]:
    units = set()
    for part in text.replace(",", " ").split():
        site, sep, unit = part.partition("/")
        if not sep or not site or not unit:
            raise AdminRefusal("units_format", "", f"unit {part!r}: write SITE/UNIT (UNIT may be *)")
        units.add((site, unit))
    return frozenset(units)


async def _audit(
    conn: asyncpg.Connection, me: StaffMember, at: datetime, action: str, target: str, detail: str
) -> None:
    await conn.execute(_AUDIT, at, me.id, action, target, detail[:500])
    logger.info("admin action=%s staff=%s target=%s", action, me.id, target)


async def admin_page(request: web.Request) -> web.StreamResponse:
    """Staff accounts, residents away, devices in maintenance — for my sites."""
    ctx = _ctx(request)
    session = _admin(request)
    me = session.staff
    async with ctx.db.acquire() as conn:
        rows = await conn.fetch("SELECT id, username, display_name, role, active FROM staff ORDER BY username")
        unit_rows = await conn.fetch("SELECT staff_id, site, unit FROM staff_units ORDER BY site, unit")
    units: dict[int, list[tuple[str, str]]] = {}
    for u in unit_rows:
        units.setdefault(u["staff_id"], []).append((u["site"], u["unit"]))
    accounts = [
        {
            "id": r["id"],
            "username": r["username"],
            "name": r["display_name"],
            "role": r["role"],
            "active": r["active"],
            "units": " ".join(f"{s}/{u}" for s, u in units.get(r["id"], [])),
            "manageable": me.may_manage(frozenset(units.get(r["id"], [])), Role(r["role"])),
        }
        for r in rows
        if me.shares_a_unit(frozenset(units.get(r["id"], [])))
    ]
    # a unit has a hundred devices and more: the page lists residents a page at a time (searchable), and one chosen
    # resident's devices, not a form for every device
    query = request.query.get("q", "").strip()[:64]
    needle = query.casefold()
    mine = [(site.id, r) for site, r in ctx.desk.directory.residents_for(me)]
    every_device = [
        {"id": d.id, "kind": d.kind, "site": site_id, "room": r.room, "resident": r.id, "maintenance": d.maintenance}
        for site_id, r in mine
        for site in [ctx.desk.directory.site(site_id)]
        if site is not None
        for d in site.devices
        if d.resident == r.id
    ]
    found = [(s, r) for s, r in mine if not needle or needle in r.id.casefold() or needle in (r.room or "").casefold()]
    if needle:
        accounts = [a for a in accounts if needle in a["username"].casefold() or needle in (a["name"] or "").casefold()]
    pages = max(1, -(-len(found) // ADMIN_PAGE_SIZE))
    try:
        page_no = min(max(1, int(request.query.get("page", "1"))), pages)
    except ValueError:
        page_no = 1
    residents = found[(page_no - 1) * ADMIN_PAGE_SIZE : page_no * ADMIN_PAGE_SIZE]
    chosen = request.query.get("resident", "")
    if chosen not in {r.id for _, r in residents}:
        chosen = ""
    devices = [d for d in every_device if d["resident"] == chosen]
    device_counts: dict[str, int] = {}
    for d in every_device:
        device_counts[str(d["resident"])] = device_counts.get(str(d["resident"]), 0) + 1
    async with ctx.db.acquire() as conn:
        assigned = await _assigned_profiles(conn, [r.id for _, r in residents])
    ctx.desk.log_resident_reads(me, [(s, r.id) for s, r in residents], "admin", request.remote)
    profiles = ctx.rules.profiles if ctx.rules is not None else {}
    names = (
        {a["username"] for a in accounts}
        | {r.id for _, r in mine}
        | {str(d["id"]) for d in every_device}
        | set(profiles)
    )
    return render(
        request,
        "staff/admin.html",
        me.lang,
        staff=me,
        csrf=session.csrf_token,
        page="admin",
        accounts=accounts,
        residents=residents,
        devices=devices,
        device_counts=device_counts,
        chosen=chosen,
        query=query,
        page_no=page_no,
        pages=pages,
        found=len(found),
        roles=[r.value for r in Role if me.role is Role.ADMIN or r in (Role.STAFF, Role.NURSE)],
        profiles=[
            {
                "name": name,
                "label": profile_label(me.lang, name),
                "description": profile_description(me.lang, name, profile),
                "changes": profile_changes(profile, me.lang),
            }
            for name, profile in sorted(profiles.items())
        ],
        assigned=assigned,
        done=_message(request.query, "done", DONE, names),
        error=_message(request.query, "error", REFUSED, names),
    )


async def admin_submit(request: web.Request) -> web.StreamResponse:
    """One change from the admin page; audited; back to the page with what happened."""
    ctx = _ctx(request)
    session = _admin(request)
    me = session.staff
    form = await read_form(request)
    action = request.match_info["action"]
    now = ctx.desk.clock.now()
    try:
        async with ctx.db.acquire() as conn:
            done, name = await _change(conn, me, action, form, now, ctx)
    except StaffError as exc:
        logger.info("admin refused action=%s staff=%s: %s", action, me.id, exc)
        refusal = _refusal(exc, form)
        raise web.HTTPSeeOther("/staff/admin?" + _query("error", refusal.code, refusal.name)) from exc
    # the page shows the change at once; the rule engine gets away/maintenance with the hub's inventory refresh, a
    # rule profile within a second (the hub follows resident_rule_profiles)
    await ctx.desk.restorer.refresh(sites=action in ("resident-away", "device-maintenance"))
    where = field(form, "resident", 64)  # a device change: back to that resident's devices
    back = f"&resident={quote(where)}#admin-resident-{quote(where)}" if where else ""
    return redirect("/staff/admin?" + _query("done", done, name) + back)


def _query(key: str, code: str, name: str) -> str:
    from urllib.parse import urlencode

    return urlencode({key: code, "name": name[:64]})


def _message(query: Mapping[str, str], key: str, codes: frozenset[str], names: set[str]) -> tuple[str, str] | None:
    """(code, name) of the page's done or error message from the query string: a known code, and the name only when
    it is something the page shows."""
    code = query.get(key, "")
    if code not in codes:
        return None
    name = query.get("name", "")
    return code, name if name in names else ""


async def _change(
    conn: asyncpg.Connection, me: StaffMember, action: str, form: Any, now: datetime, ctx: StaffContext
) -> tuple[str, str]:
    """Make one change; returns what the page says of it (a DONE code and the name it concerns)."""
    if action == "staff-add":
        role = Role(field(form, "role", 16) or "staff")
        units = me.within_mine(_units(field(form, "units", 500)))
        if not me.may_manage(units, role):
            raise AdminRefusal("not_your_units")
        username = field(form, "username", 64).strip()
        member = await create_staff(
            conn,
            username=username,
            password=field(form, "password", 256),
            role=role,
            units=units,
            display_name=field(form, "name", 120).strip(),
            lang=field(form, "lang", 8) or "sv",
        )
        await _audit(conn, me, now, "staff_add", username, f"role={role.value} units={len(units)}")
        return "staff_added", member.username
    if action in ("staff-disable", "staff-enable", "staff-password", "staff-units"):
        username = field(form, "username", 64)
        row = await conn.fetchrow("SELECT id, role FROM staff WHERE username = $1", username)
        if row is None:
            raise AdminRefusal("no_account", username)
        current = frozenset(
            (u["site"], u["unit"])
            for u in await conn.fetch("SELECT site, unit FROM staff_units WHERE staff_id = $1", row["id"])
        )
        if not me.may_manage(current, Role(row["role"])) or (row["id"] == me.id and action == "staff-disable"):
            raise AdminRefusal("may_not_change", username)
        if action in ("staff-disable", "staff-enable"):
            active = action == "staff-enable"
            await conn.execute("UPDATE staff SET active = $2 WHERE id = $1", row["id"], active)
            if not active:
                await conn.execute("DELETE FROM staff_sessions WHERE staff_id = $1", row["id"])
                await conn.execute("DELETE FROM staff_duty WHERE staff_id = $1", row["id"])
            await _audit(conn, me, now, action.replace("-", "_"), username, "")
            return ("staff_enabled" if active else "staff_disabled"), username
        if action == "staff-password":
            password_hash = await asyncio.to_thread(hash_password, field(form, "password", 256))
            await conn.execute("UPDATE staff SET password_hash = $2 WHERE id = $1", row["id"], password_hash)
            await conn.execute("DELETE FROM staff_sessions WHERE staff_id = $1", row["id"])
            await _audit(conn, me, now, "staff_password", username, "sessions ended")
            return "staff_password", username
        units = me.within_mine(_units(field(form, "units", 500)))
        if not units or not me.may_manage(units, Role(row["role"])):
            raise AdminRefusal("not_your_units")
        async with conn.transaction():
            await conn.execute("DELETE FROM staff_units WHERE staff_id = $1", row["id"])
            await conn.executemany(
                "INSERT INTO staff_units (staff_id, site, unit) VALUES ($1, $2, $3)",
                [(row["id"], s, u) for s, u in sorted(units)],
            )
        await _audit(conn, me, now, "staff_units", username, " ".join(f"{s}/{u}" for s, u in sorted(units)))
        return "staff_units", username
    if action in ("resident-away", "device-maintenance"):
        target = field(form, "id", 64)
        on = field(form, "state", 4) == "on"
        if action == "resident-away":
            allowed = any(r.id == target for _, r in ctx.desk.directory.residents_for(me))
            change: Any = set_resident_away
        else:
            allowed = any(
                d.id == target
                and d.resident is not None
                and any(r.id == d.resident for _, r in ctx.desk.directory.residents_for(me))
                for site in (ctx.desk.directory.site(s) for s in me.sites)
                if site is not None
                for d in site.devices
            )
            change = set_device_maintenance
        if not allowed or not await change(conn, target, on):
            raise AdminRefusal("not_in_your_units", target)
        await _audit(conn, me, now, action.replace("-", "_"), target, "on" if on else "off")
        if action == "resident-away":
            return ("resident_away" if on else "resident_home"), target
        return ("device_maintenance" if on else "device_in_service"), target
    if action == "resident-profile":
        return await _set_profile(conn, me, form, now, ctx)
    raise web.HTTPNotFound


async def _set_profile(
    conn: asyncpg.Connection, me: StaffMember, form: Any, now: datetime, ctx: StaffContext
) -> tuple[str, str]:
    """A resident of my units gets one of the loaded packs' rule profiles, or none (the pack's values)."""
    target = field(form, "id", 64)
    name = field(form, "profile", 64).strip() or None
    known = ctx.rules.profiles if ctx.rules is not None else {}
    if name is not None and name not in known:
        raise AdminRefusal("no_profile", name)
    if not any(r.id == target for _, r in ctx.desk.directory.residents_for(me)):
        raise AdminRefusal("not_in_your_units", target)
    found, before = await set_rule_profile(conn, target, name, f"staff:{me.id}", now)
    if not found:
        raise AdminRefusal("not_in_your_units", target)
    await _audit(conn, me, now, "resident_profile", target, f"profile={name or 'none'} was={before or 'none'}")
    return ("profile_set" if name else "profile_cleared"), target


async def _assigned_profiles(conn: asyncpg.Connection, resident_ids: list[str]) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT resident_id, profile FROM resident_rule_profiles WHERE resident_id = ANY($1::text[])", resident_ids
    )
    return {r["resident_id"]: r["profile"] for r in rows}


def profile_label(lang: str, name: str) -> str:
    """A profile's name in words: the catalogue's `profile.<name>`, else the name made readable."""
    msgid = f"profile.{name}"
    text = translator(lang)(msgid)
    return name.replace("_", " ").capitalize() if text == msgid else text


def profile_description(lang: str, name: str, profile: RuleProfile) -> str:
    """What a profile is for: the catalogue's `profile_about.<name>` (the default pack's, translated), else the
    pack's own words."""
    msgid = f"profile_about.{name}"
    text = translator(lang)(msgid)
    return profile.description if text == msgid else text


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g}"


def profile_changes(profile: RuleProfile, lang: str) -> list[str]:
    """What a profile changes, in the reader's language: "Night 21:00–08:00", "Out of bed, not back: after 10 min"."""
    t = translator(lang)
    out = []
    if profile.night is not None:
        out.append(t("profile.night").replace("{window}", f"{profile.night.start}–{profile.night.end}"))
    for rule_id, tuning in profile.rules.items():
        parts = []
        if tuning.enabled is not None:
            parts.append(t("profile.on") if tuning.enabled else t("profile.off"))
        duration = tuning.within if tuning.within is not None else tuning.for_
        if duration is not None:
            parts.append(t("profile.after").replace("{n}", _minutes(duration)))
        if tuning.threshold is not None:
            parts.append(t("profile.threshold").replace("{value}", f"{tuning.threshold:g}"))
        if tuning.clear_at is not None:
            parts.append(t("profile.clear_at").replace("{value}", f"{tuning.clear_at:g}"))
        if tuning.schedule is not None:
            parts.append(f"{tuning.schedule.start}–{tuning.schedule.end}")
        out.append(f"{rule_label(lang, rule_id)}: {', '.join(parts)}")
    return out


def add_admin_routes(sub: web.Application) -> None:
    """The admin page's routes."""
    sub.router.add_get("/admin", admin_page, name="admin")
    sub.router.add_post("/admin/{action}", admin_submit)
