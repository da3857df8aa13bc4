"""`vaka consent …`, `vaka relative invite`, `vaka access-log`, `vaka resident export|erase`."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from hub.relatives import RelativesError
from hub.relatives.consent import GivenBy, Scope
from hub.store.access_log import record_operator_read

if TYPE_CHECKING:
    from hub.settings import Settings
    from hub.store.db import VakaConnection

COMMANDS = ("consent", "relative", "access-log")
RESIDENT_COMMANDS = ("export", "erase")
LOCAL_ZONE = ZoneInfo("Europe/Stockholm")


def _moment(text: str) -> datetime:
    """A date (its start, Swedish time) or an ISO 8601 time (UTC when it has no zone)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), LOCAL_ZONE)
        moment = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text!r}: expected a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM"
        raise argparse.ArgumentTypeError(msg) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _local(moment: datetime) -> str:
    return moment.astimezone(LOCAL_ZONE).isoformat(timespec="minutes")


def _until(text: str) -> datetime:
    """`--until 2026-12-31` means through that day (ends at the following midnight, Swedish time)."""
    moment = _moment(text)
    return moment + timedelta(days=1) if len(text) == 10 else moment


def add_arguments(sub: Any, resident: Any) -> None:
    """Register the commands on `vaka`'s subparsers (and `export`/`erase` under `vaka resident`)."""
    consent = sub.add_parser("consent", help="residents' consents to what relatives may see").add_subparsers(
        dest="consent_command", required=True
    )
    p = consent.add_parser("grant", help="record a resident's consent for a relative")
    p.add_argument("resident", help="pseudonymous resident id")
    p.add_argument("--relative", required=True, metavar="EMAIL", help="the relative's e-mail (account created if new)")
    p.add_argument("--scope", required=True, nargs="+", choices=[s.value for s in Scope], help="what may be seen")
    p.add_argument("--until", type=_until, default=None, metavar="DATE", help="last day of the consent (default: open)")
    p.add_argument("--given-by", required=True, choices=[g.value for g in GivenBy], help="who consented")
    p.add_argument("--recorded-by", required=True, metavar="STAFF", help="staff user name recording it")
    p.add_argument("--text-version", default=None, help="version of the consent text shown (default: settings)")
    p = consent.add_parser("revoke", help="revoke a relative's consent (all scopes, or those named)")
    p.add_argument("resident")
    p.add_argument("--relative", required=True, metavar="EMAIL")
    p.add_argument(
        "--scope",
        nargs="+",
        choices=[s.value for s in Scope],
        default=None,
        help="night_summary: calm night or not; alarm_notice: an alarm was handled; device_health: devices work"
        " (default: all)",
    )
    p.add_argument("--recorded-by", required=True, metavar="STAFF")
    p = consent.add_parser("list", help="every consent recorded for a resident, live or not")
    p.add_argument("resident")
    relative = sub.add_parser("relative", help="relative accounts").add_subparsers(
        dest="relative_command", required=True
    )
    p = relative.add_parser("invite", help="print a one-time link (valid 72 h) for a relative to set a password")
    p.add_argument("email")
    p.add_argument("--resident", required=True, help="the resident they are invited for")
    p.add_argument(
        "--by", default=None, metavar="STAFF", help="nurse or admin of the resident's unit sending it (default: you)"
    )
    p = relative.add_parser("disable", help="close a relative's account: sessions end now, unused links die")
    p.add_argument("email")
    p = resident.add_parser("export", help="everything Vaka holds on a resident, as one JSON file")
    p.add_argument("id", help="pseudonymous resident id")
    p.add_argument("--out", required=True, metavar="FILE.json")
    p.add_argument("--by", default=None, metavar="STAFF", help="staff user name asking (logged as the reader)")
    p = resident.add_parser("erase", help="after care has ended: remove or pseudonymise everything on a resident")
    p.add_argument("id", help="pseudonymous resident id")
    p.add_argument("--by", default=None, metavar="STAFF", help="staff user name responsible (recorded)")
    p = sub.add_parser("access-log", help="who read a resident's data, when, from where")
    p.add_argument("resident")
    p.add_argument("--from", dest="start", type=_moment, default=None, metavar="DATE")
    p.add_argument("--to", dest="end", type=_until, default=None, metavar="DATE", help="through this day")
    p.add_argument("--json", action="store_true", help="one JSON object per line")


async def _nurse_of(conn: VakaConnection, username: str, resident_id: str, option: str) -> None:
    """The person named records consents or invites for this resident only as a nurse or admin holding the
    resident's unit (the one authorisation rule, docs/security.md)."""
    from hub.people.staff import Role
    from hub.store.staff import staff_member

    member = await staff_member(conn, username)
    if member is None:
        msg = f"no active staff member {username!r} ({option} names the person recording it)"
        raise RelativesError(msg)
    row = await conn.fetchrow("SELECT site, unit FROM residents WHERE id = $1", resident_id)
    if row is None:
        msg = f"no resident {resident_id!r} in the inventory (see `vaka site load`)"
        raise RelativesError(msg)
    if member.role not in (Role.NURSE, Role.ADMIN) or not member.holds(row["site"], row["unit"]):
        msg = f"{username!r} is not a nurse or admin of {resident_id}'s unit ({option} names one)"
        raise RelativesError(msg)


async def _consent(args: argparse.Namespace, settings: Settings, conn: VakaConnection) -> int:
    from hub.relatives import consent as c

    now = datetime.now(UTC)
    if args.consent_command == "list":
        async with conn.transaction():  # no read without its row in the access log
            rows = await c.consents_for(conn, args.resident)
            await record_operator_read(conn, at=now, resident_id=args.resident, what="consent_list")
        if not rows:
            print(f"no consents recorded for {args.resident}")
        for k in rows:
            until = _local(k.valid_until) if k.valid_until else "open"
            revoked_note = f" revoked {_local(k.revoked_at)} by {k.revoked_by}" if k.revoked_at else ""
            print(
                f"{k.id}\t{k.status(now)}\t{k.relative_email}\t{k.scope.value}\tgiven by {k.given_by.value}"
                f"\trecorded {_local(k.recorded_at)} by {k.recorded_by}"
                f"\ttext {k.text_version}\tuntil {until}{revoked_note}"
            )
        return 0
    await _nurse_of(conn, args.recorded_by, args.resident, "--recorded-by")
    if args.consent_command == "grant":
        made = await c.grant(
            conn,
            resident_id=args.resident,
            relative_email=args.relative,
            scopes=c.parse_scopes(args.scope),
            given_by=GivenBy(args.given_by),
            recorded_by=args.recorded_by,
            text_version=args.text_version or settings.relatives.consent_text_version,
            at=now,
            valid_until=args.until,
        )
        print(f"consent recorded for {args.resident}: {args.relative} may see {', '.join(k.scope for k in made)}")
        return 0
    revoked = await c.revoke(
        conn,
        resident_id=args.resident,
        relative_email=args.relative,
        scopes=c.parse_scopes(args.scope) if args.scope else None,
        recorded_by=args.recorded_by,
        at=now,
    )
    if not revoked:
        print(f"{args.relative} had no live consent for {args.resident}: nothing revoked")
        return 1
    print(
        f"revoked for {args.resident}: {args.relative} no longer sees {', '.join(k.scope for k in revoked)}"
        f" (open pages lose access within {settings.relatives.refresh_s:.0f} s)"
    )
    return 0


async def _invite(args: argparse.Namespace, settings: Settings, conn: VakaConnection) -> int:
    from hub.relatives.accounts import INVITATION_VALID, has_live_consent, has_password, invite
    from hub.store.audit import operator

    now = datetime.now(UTC)
    if args.by is not None:
        await _nurse_of(conn, args.by, args.resident, "--by")
    if not await has_live_consent(conn, args.email, args.resident, now):
        msg = f"no live consent for {args.email} to see {args.resident}: `vaka consent grant {args.resident} …` first"
        raise RelativesError(msg)
    in_use = await has_password(conn, args.email)
    token, _ = await invite(conn, email=args.email, resident_id=args.resident, created_by=args.by or operator(), at=now)
    link = f"{settings.http.public_url.rstrip('/')}/relative/invite/{token}"
    expires = (now + INVITATION_VALID).astimezone(LOCAL_ZONE).isoformat(timespec="minutes")
    print(f"send this link to {args.email}; it works once, until {expires}:\n{link}")
    if in_use:
        print("they already have an account: the link asks them to sign in to accept it and never changes the password")
    return 0


async def _disable(args: argparse.Namespace, conn: VakaConnection) -> int:
    from hub.relatives.accounts import disable

    if not await disable(conn, args.email):
        print(f"no relative account {args.email!r}")
        return 1
    print(f"{args.email} can no longer sign in; open pages are signed out at their next refresh")
    return 0


async def _access_log(args: argparse.Namespace, conn: VakaConnection) -> int:
    from hub.store.access_log import access_log

    async with conn.transaction():  # who read whose data is the resident's data too: the read is logged
        rows = await access_log(conn, args.resident, args.start, args.end)
        await record_operator_read(conn, at=datetime.now(UTC), resident_id=args.resident, what="access_log")
    for r in rows:
        if args.json:
            print(
                json.dumps(
                    {"at": r.at.isoformat(), "who": r.who, "role": r.role, "what": r.what, "from": r.address},
                    ensure_ascii=False,
                )
            )
        else:
            at = r.at.astimezone(LOCAL_ZONE).isoformat(timespec="seconds")
            print(f"{at}\t{r.who}\t{r.role}\t{r.what}\t{r.address or '-'}")
    if not rows and not args.json:
        print(f"no reads of {args.resident} logged in that period")
    return 0


async def main(args: argparse.Namespace, settings: Settings) -> int:
    """Run one of the commands; returns the exit code."""
    from hub.store.oneshot import as_owner as _as_owner
    from hub.store.oneshot import with_database as _with_database

    async def work(conn: VakaConnection) -> int:
        try:
            if args.command == "consent":
                return await _consent(args, settings, conn)
            if args.command == "relative" and args.relative_command == "disable":
                return await _disable(args, conn)
            if args.command == "relative":
                return await _invite(args, settings, conn)
            if args.command == "access-log":
                return await _access_log(args, conn)
            from hub.relatives.rights import main as rights_main

            return await rights_main(args, settings, conn)
        except RelativesError as exc:
            print(f"vaka {args.command}: {exc}")
            return 1

    # a resident's rights (export, erasure) rewrite pseudonyms in the access log: the owner's work, not the runtime role's
    rights = args.command not in ("consent", "relative", "access-log")
    result = await _with_database(_as_owner(settings) if rights else settings, args.command, work)
    return 2 if result is None else result
