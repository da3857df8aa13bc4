"""The resident's rights: everything Vaka holds on them as one JSON file, and erasure after care has ended.

Erasure runs in one transaction and refuses while any care record (alarms, events, consents) is younger than the
archive retention (`followup.archive_retention_days`, the same that keeps the archive) or an alarm is still open. It deletes the inventory entry,
consents and invitations, and pseudonymises what the follow-up statistics and the accountability logs still need
(alarms keep unit, rule, times and outcome; events and access-log rows keep a hash in place of the id). What was done
is kept in `resident_erasures` under the id's hash, never the id itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from hub.relatives import RelativesError
from hub.relatives.consent import consents_for
from hub.store.access_log import access_log
from hub.store.audit import operator

if TYPE_CHECKING:
    from hub.settings import Settings

logger = logging.getLogger(__name__)

# tables handled by name below; any other table of the schema with a resident_id column is exported and erased too
_HANDLED = frozenset(
    {"residents", "devices", "consents", "relative_invitations", "desk_alarms", "events", "resident_access_log"}
)


def resident_hash(resident_id: str) -> str:
    """What stands in for an erased resident's id (SHA-256, first 16 hex digits)."""
    return "erased-" + hashlib.sha256(resident_id.encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list | str | int | float | bool) or value is None:
        return value
    return str(value)


def _rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [{k: _jsonable(v) for k, v in r.items()} for r in records]


async def _other_tables(conn: asyncpg.Connection) -> list[str]:
    """Other tables (not partitions) of the schema that hold a resident_id column (check-ins and the like)."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
        " AND NOT c.relispartition AND a.attname = 'resident_id' AND NOT a.attisdropped ORDER BY c.relname"
    )
    return [r["relname"] for r in rows if r["relname"] not in _HANDLED]


async def export(conn: asyncpg.Connection, resident_id: str) -> dict[str, Any]:
    """Everything Vaka holds on the resident (events summarised per day and kind)."""
    resident = await conn.fetchrow(
        "SELECT r.id, r.site, r.room, r.unit, r.away, s.timezone FROM residents r JOIN sites s ON s.id = r.site"
        " WHERE r.id = $1",
        resident_id,
    )
    consents = await consents_for(conn, resident_id)
    if resident is None and not consents:
        known = await conn.fetchval("SELECT true FROM desk_alarms WHERE resident_id = $1 LIMIT 1", resident_id)
        if not known:
            msg = f"Vaka holds nothing on a resident {resident_id!r}"
            raise RelativesError(msg)
    devices = await conn.fetch(
        "SELECT id, kind, vendor, safety, maintenance FROM devices WHERE resident = $1 ORDER BY id", resident_id
    )
    alarms = await conn.fetch(
        "SELECT id, rule_id, category, severity, state, outcome, note, raised_at, accepted_at, accepted_by, closed_at"
        " FROM desk_alarms WHERE resident_id = $1 ORDER BY raised_at",
        resident_id,
    )
    zone = resident["timezone"] if resident else "Europe/Stockholm"
    events = await conn.fetch(
        "SELECT (ts AT TIME ZONE $2)::date AS day, kind, count(*) AS n FROM events WHERE resident_id = $1"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        resident_id,
        zone,
    )
    other: dict[str, list[dict[str, Any]]] = {}
    for table in await _other_tables(conn):
        other[table] = _rows(await conn.fetch(f'SELECT * FROM "{table}" WHERE resident_id = $1', resident_id))
    return {
        "resident": resident_id,
        "exported_at": datetime.now(UTC).isoformat(),
        "inventory": {
            **({k: _jsonable(v) for k, v in resident.items() if k != "timezone"} if resident else {"id": resident_id}),
            "devices": _rows(devices),
        },
        "consents": [
            {
                "relative": c.relative_email,
                "scope": c.scope.value,
                "given_by": c.given_by.value,
                "recorded_by": c.recorded_by,
                "recorded_at": c.recorded_at.isoformat(),
                "text_version": c.text_version,
                "valid_until": _jsonable(c.valid_until),
                "revoked_at": _jsonable(c.revoked_at),
                "revoked_by": c.revoked_by,
            }
            for c in consents
        ],
        "alarms": _rows(alarms),
        "events_per_day": [{"day": r["day"].isoformat(), "kind": r["kind"], "count": r["n"]} for r in events],
        **({"other": other} if other else {}),
        "access_log": [
            {"at": r.at.isoformat(), "who": r.who, "role": r.role, "what": r.what, "from": r.address}
            for r in await access_log(conn, resident_id)
        ],
    }


async def _newest_care_record(conn: asyncpg.Connection, resident_id: str) -> datetime | None:
    newest: datetime | None = await conn.fetchval(
        "SELECT max(t) FROM ("
        " SELECT greatest(raised_at, closed_at, updated_at) AS t FROM desk_alarms WHERE resident_id = $1"
        " UNION ALL SELECT max(ts) FROM events WHERE resident_id = $1"
        " UNION ALL SELECT greatest(recorded_at, revoked_at, valid_until) FROM consents WHERE resident_id = $1) x",
        resident_id,
    )
    return newest


async def erase(
    conn: asyncpg.Connection, resident_id: str, *, by: str, at: datetime, retention_days: int
) -> dict[str, int]:
    """Remove or pseudonymise everything on the resident in one transaction; RelativesError when refused."""
    hashed = resident_hash(resident_id)
    async with conn.transaction():
        if await conn.fetchval(
            "SELECT true FROM desk_alarms WHERE resident_id = $1 AND closed_at IS NULL LIMIT 1", resident_id
        ):
            msg = "an alarm for the resident is still open; resolve it before erasing"
            raise RelativesError(msg)
        if any(c.live(at) for c in await consents_for(conn, resident_id)):
            msg = "a consent for the resident is still live; revoke it (vaka consent revoke) when care has ended"
            raise RelativesError(msg)
        newest = await _newest_care_record(conn, resident_id)
        if newest is not None and newest > at - timedelta(days=retention_days):
            allowed = (newest + timedelta(days=retention_days)).date().isoformat()
            msg = (
                f"records until {newest.date().isoformat()} are within the archive retention of {retention_days} days;"
                f" erasure is possible from {allowed}"
            )
            raise RelativesError(msg)
        counts: dict[str, int] = {}

        async def run(name: str, sql: str, *args: Any) -> None:
            status = await conn.execute(sql, *args)
            counts[name] = int(status.rsplit(" ", 1)[-1])

        await run("consents", "DELETE FROM consents WHERE resident_id = $1", resident_id)
        await run("invitations", "DELETE FROM relative_invitations WHERE resident_id = $1", resident_id)
        await run(
            "alarms",
            "UPDATE desk_alarms SET resident_id = $2, key = replace(key, $1, $2), note = NULL, accepted_by = NULL"
            " WHERE resident_id = $1",
            resident_id,
            hashed,
        )
        await run("events", "UPDATE events SET resident_id = $2 WHERE resident_id = $1", resident_id, hashed)
        await run(
            "access_log",
            "UPDATE resident_access_log SET resident_id = $2 WHERE resident_id = $1",
            resident_id,
            hashed,
        )
        for table in await _other_tables(conn):
            await run(table, f'DELETE FROM "{table}" WHERE resident_id = $1', resident_id)
        if await conn.fetchval("SELECT to_regclass('checkin_log') IS NOT NULL"):
            # check-in task ids carry the resident id (`ci-{resident}-{night}-{slot}`) into the append-only check-in
            # log; its trigger refuses every change, so the owner lifts it for this one rewrite, in this transaction
            await conn.execute("ALTER TABLE checkin_log DISABLE TRIGGER checkin_log_no_change")
            await run(
                "checkin_log",
                "UPDATE checkin_log SET checkin_id = 'ci-' || $2 || substr(checkin_id, length($1) + 4)"
                " WHERE starts_with(checkin_id, 'ci-' || $1 || '-')",
                resident_id,
                hashed,
            )
            await conn.execute("ALTER TABLE checkin_log ENABLE TRIGGER checkin_log_no_change")
        await run("devices", "UPDATE devices SET resident = NULL WHERE resident = $1", resident_id)
        await run("inventory", "DELETE FROM residents WHERE id = $1", resident_id)
        if not any(counts.values()):
            msg = f"Vaka holds nothing on a resident {resident_id!r}"
            raise RelativesError(msg)
        await conn.execute(
            "INSERT INTO resident_erasures (resident_hash, erased_at, erased_by, counts) VALUES ($1, $2, $3, $4)",
            hashed,
            at,
            by,
            json.dumps(counts),
        )
    logger.info("resident erased as %s counts=%s", hashed, counts)
    return counts


async def main(args: argparse.Namespace, settings: Settings, conn: asyncpg.Connection) -> int:
    """`vaka resident export|erase`."""
    from hub.store.access_log import record_read

    now = datetime.now(UTC)
    by = args.by or operator()
    staff = None
    if args.by:
        staff = await conn.fetchrow("SELECT id, role FROM staff WHERE username = $1 AND active", args.by)
        if staff is None:
            msg = f"no active staff member {args.by!r} (--by)"
            raise RelativesError(msg)
    if args.resident_command == "export":
        async with conn.transaction():
            data = await export(conn, args.id)
            site = data["inventory"].get("site", "")
            await record_read(
                conn,
                at=now,
                staff_id=staff["id"] if staff else None,
                role=staff["role"] if staff else "operator",
                site=site,
                resident_id=args.id,
                what="export",
                address=operator(),
            )
        out = Path(args.out)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(out)
        print(
            f"exported {args.id} to {out}: {len(data['consents'])} consents, {len(data['alarms'])} alarms,"
            f" {len(data['events_per_day'])} day/kind event counts, {len(data['access_log'])} access-log rows"
        )
        return 0
    try:
        counts = await erase(conn, args.id, by=by, at=now, retention_days=settings.followup.archive_retention_days)
    except asyncpg.InsufficientPrivilegeError as exc:
        msg = f"nothing erased: {exc}; run `vaka resident erase` with db.owner_dsn set (the owner's connection)"
        raise RelativesError(msg) from exc
    print(f"erased {args.id} (now {resident_hash(args.id)}): " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0
