"""What a relative may see of a resident, and the one authorization every relative page and API read goes through.

`authorize()` answers, on every request, from the database: the scopes live for this relative and resident now,
or `NotPermittedError` (the resident is known but nothing is consented to this relative now: HTTP 403) or
`UnknownResidentError` (no such resident: HTTP 404). `resident_status()` builds exactly the consented fields.
Alarms are shown only once a person has handled them (closed as resolved), and only by time and category: never the
rule, the reason, the note, the device or who handled it. While any alarm of the resident is open, nothing says
"calm" or "handled": the night's state is `open` (staff have been alerted and are on it) and `alarm_open` is true. A
technical alarm that ended by itself (the device came back: state `cancelled`) was handled by nobody and is not shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from hub.relatives import RelativesError
from hub.relatives.consent import Scope, consents_of_relative

RESTLESS_RULES = frozenset({"restless_night"})
# an alarm is the resident's when it names her, or one of her devices (a device's technical alarm may name no one)
OF_RESIDENT = "(resident_id = $1 OR device_id IN (SELECT id FROM devices WHERE resident = $1))"
NOTICE_WINDOW = timedelta(hours=24)


class NotPermittedError(RelativesError):
    """The resident is known, but this relative has no live consent to see them (HTTP 403)."""


class UnknownResidentError(RelativesError):
    """No resident with this id (HTTP 404)."""


@dataclass(frozen=True, slots=True)
class NightHours:
    """When the night begins and ends, in the site's zone ("22:00", "07:00")."""

    start: str = "22:00"
    end: str = "07:00"


async def live_residents(conn: asyncpg.Connection, relative_id: int, at: datetime) -> dict[str, frozenset[Scope]]:
    """Resident id → scopes live for this relative at `at` (residents with none are left out)."""
    scopes: dict[str, set[Scope]] = {}
    for consent in await consents_of_relative(conn, relative_id):
        if consent.live(at):
            scopes.setdefault(consent.resident_id, set()).add(consent.scope)
    return {r: frozenset(s) for r, s in sorted(scopes.items())}


async def authorize(conn: asyncpg.Connection, relative_id: int, resident_id: str, at: datetime) -> frozenset[Scope]:
    """The scopes this relative may read of this resident at `at`; raises NotPermittedError when she once had a consent
    for the resident (it ended or was revoked: she knows the resident), else UnknownResidentError, the same for a
    resident of Vaka she was never given and an id Vaka does not know, so ids cannot be enumerated."""
    scopes = (await live_residents(conn, relative_id, at)).get(resident_id)
    if scopes:
        return scopes
    known = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM consents WHERE resident_id = $1 AND relative_id = $2)", resident_id, relative_id
    )
    if known:
        msg = "no live consent for this resident"
        raise NotPermittedError(msg)
    msg = "no such resident"
    raise UnknownResidentError(msg)


def last_night(now_local: datetime, hours: NightHours) -> tuple[datetime, datetime, date]:
    """The most recent night that has ended before `now_local`: (start, end, the date it began)."""
    start_t, end_t = time.fromisoformat(hours.start), time.fromisoformat(hours.end)
    tz = now_local.tzinfo
    end_day = now_local.date() if now_local.time() >= end_t else now_local.date() - timedelta(days=1)
    end = datetime.combine(end_day, end_t, tz)
    start_day = end_day - timedelta(days=1) if start_t > end_t else end_day
    start = datetime.combine(start_day, start_t, tz)
    return start, end, start_day


async def _site_zone(conn: asyncpg.Connection, resident_id: str) -> ZoneInfo:
    tz = await conn.fetchval(
        "SELECT s.timezone FROM residents r JOIN sites s ON s.id = r.site WHERE r.id = $1", resident_id
    )
    return ZoneInfo(tz or "Europe/Stockholm")


async def alarm_open(conn: asyncpg.Connection, resident_id: str, at: datetime) -> bool:
    """Whether any alarm of the resident (care or technical, raised at any time) is open at `at`."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM desk_alarms WHERE " + OF_RESIDENT + " AND raised_at <= $2"
        " AND (closed_at IS NULL OR closed_at > $2))",
        resident_id,
        at,
    )
    return found


async def night_summary(
    conn: asyncpg.Connection, resident_id: str, at: datetime, hours: NightHours, *, open_now: bool
) -> dict[str, Any]:
    """Last night: `open` while an alarm is open, else alarms handled by a person (local time and category of
    each), restless or calm; the handled ones are listed in every state."""
    zone = await _site_zone(conn, resident_id)
    start, end, night = last_night(at.astimezone(zone), hours)
    rows = await conn.fetch(
        "SELECT rule_id, category, closed_at FROM desk_alarms WHERE " + OF_RESIDENT + " AND state = 'resolved'"
        " AND raised_at >= $2 AND raised_at < $3 AND closed_at IS NOT NULL AND closed_at <= $4 ORDER BY closed_at",
        resident_id,
        start,
        end,
        at,
    )
    handled = [
        {"handled_at": r["closed_at"].astimezone(zone).strftime("%H:%M"), "category": r["category"]}
        for r in rows
        if r["rule_id"] not in RESTLESS_RULES
    ]
    restless = any(r["rule_id"] in RESTLESS_RULES for r in rows)
    state = "open" if open_now else "alarms" if handled else "restless" if restless else "calm"
    return {"night": night.isoformat(), "state": state, "alarms_handled": handled}


async def alarm_notices(conn: asyncpg.Connection, resident_id: str, at: datetime) -> list[dict[str, str]]:
    """Alarms a person handled for the resident in the last 24 hours: when (the site's time), and the category only."""
    zone = await _site_zone(conn, resident_id)
    rows = await conn.fetch(
        "SELECT category, closed_at FROM desk_alarms WHERE " + OF_RESIDENT + " AND state = 'resolved'"
        " AND closed_at IS NOT NULL"
        " AND closed_at > $2 AND closed_at <= $3 ORDER BY closed_at DESC",
        resident_id,
        at - NOTICE_WINDOW,
        at,
    )
    return [
        {"handled_at": r["closed_at"].astimezone(zone).isoformat(timespec="minutes"), "category": r["category"]}
        for r in rows
    ]


async def device_health(conn: asyncpg.Connection, resident_id: str) -> dict[str, str]:
    """`ok`, or `needs_service` while a device of the resident has an open technical alarm or is in maintenance."""
    needs = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM devices d WHERE d.resident = $1 AND (d.maintenance OR EXISTS ("
        " SELECT 1 FROM desk_alarms a WHERE a.device_id = d.id AND a.category = 'technical' AND a.closed_at IS NULL)))",
        resident_id,
    )
    return {"state": "needs_service" if needs else "ok"}


async def resident_name(conn: asyncpg.Connection, resident_id: str) -> str | None:
    """The name the resident's care team recorded in the resident directory, or None."""
    name: str | None = await conn.fetchval(
        "SELECT nullif(btrim(display_name), '') FROM resident_directory WHERE resident_id = $1", resident_id
    )
    return name


async def unit_phone(conn: asyncpg.Connection, resident_id: str, phones: dict[str, str]) -> str | None:
    """The number relatives may call for the resident's unit: `site/unit`, else `site`, else `*` in `phones`."""
    row = await conn.fetchrow("SELECT site, unit FROM residents WHERE id = $1", resident_id)
    if row is None:
        return None
    for key in (f"{row['site']}/{row['unit']}", row["site"], "*"):
        if phones.get(key):
            return phones[key]
    return None


async def resident_status(
    conn: asyncpg.Connection,
    resident_id: str,
    scopes: frozenset[Scope],
    at: datetime,
    hours: NightHours,
    *,
    unit_phones: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Exactly the consented fields of the resident's status (a key per live scope, nothing else), with the name the
    care team recorded and the unit's phone number (any live consent shows these two)."""
    status: dict[str, Any] = {
        "resident": resident_id,
        "name": await resident_name(conn, resident_id),
        "unit_phone": await unit_phone(conn, resident_id, unit_phones or {}),
        "scopes": sorted(s.value for s in scopes),
    }
    if Scope.NIGHT_SUMMARY in scopes or Scope.ALARM_NOTICE in scopes:
        status["alarm_open"] = await alarm_open(conn, resident_id, at)
    if Scope.NIGHT_SUMMARY in scopes:
        status["night_summary"] = await night_summary(conn, resident_id, at, hours, open_now=status["alarm_open"])
    if Scope.ALARM_NOTICE in scopes:
        status["alarm_notices"] = await alarm_notices(conn, resident_id, at)
    if Scope.DEVICE_HEALTH in scopes:
        status["device_health"] = await device_health(conn, resident_id)
    return status
