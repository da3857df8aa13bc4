"""The `vaka` command: serve, migrate, site load, simulate, rules check, schema, staff add."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hub.model import Inventory, VakaError
from hub.settings import Settings, load_settings
from hub.store.oneshot import as_owner as _as_owner
from hub.store.oneshot import with_database as _with_database

if TYPE_CHECKING:
    from hub.store.db import VakaConnection

logger = logging.getLogger("vaka")
T = TypeVar("T")


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


async def _db_roles(args: argparse.Namespace, settings: Settings) -> int:
    from hub.store.roles import apply_roles, roles_sql

    runtime = args.runtime_role or settings.db.runtime_role or "vaka_hub"
    readonly = args.readonly_role or settings.db.readonly_role
    owner_settings = _as_owner(settings)
    statements = roles_sql(settings.db, runtime, readonly)
    if not args.apply:
        print("-- Vaka database roles: run as an admin with CREATEROLE and the schema's owner (or: --apply)")
        print(f"-- then set each role's password with \\password (never on a command line), and db.dsn to {runtime}")
        for statement in statements:
            print(statement + ";")
        return 0

    async def work(conn: VakaConnection) -> bool:
        await apply_roles(conn, statements)
        return True

    if await _with_database(owner_settings, "db roles", work) is None:
        return 2
    print(f"roles ready: runtime {runtime}" + (f", read-only {readonly}" if readonly else ""))
    print(f"set their passwords with \\password in psql; then db.dsn connects as {runtime}")
    return 0


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from hub.app import run

    await run(settings)
    return 0


async def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from hub.store.migrate import maintain_partitions, migrate

    async def work(conn: VakaConnection) -> tuple[list[str], list[str], list[str]]:
        applied = await migrate(conn, settings.db)
        created, dropped = await maintain_partitions(conn, settings.db, datetime.now(UTC).date())
        return applied, created, dropped

    result = await _with_database(_as_owner(settings), "migrate", work, wait_s=args.wait_s)
    if result is None:
        return 2
    applied, created, dropped = result
    print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")
    if created or dropped:
        print(f"partitions created: {len(created)}, dropped: {len(dropped)}")
    return 0


def _read_inventory(path: Path, command: str = "site load") -> Inventory | None:
    """The inventory file, validated; None after printing every mistake with its place."""
    import yaml
    from pydantic import ValidationError

    try:
        return Inventory.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as exc:
        print(f"vaka {command}: cannot read {path}: {exc.strerror}")
    except yaml.YAMLError as exc:
        print(f"vaka {command}: {path} is not valid YAML: {exc}")
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            print(f"{path}: {where}: {err['msg']}")
    return None


async def _site_load(inventory: Inventory, settings: Settings) -> int:
    from hub.store.inventory import load_inventory
    from hub.store.migrate import migrate

    async def work(conn: VakaConnection) -> dict[str, int]:
        from hub.people.residents import store_entries

        await migrate(conn, settings.db)
        counts = await load_inventory(conn, inventory)
        if inventory.directory:
            counts["directory entries"] = await store_entries(conn, inventory.directory)
        return counts

    counts = await _with_database(_as_owner(settings), "site load", work)
    if counts is None:
        return 2
    print("loaded: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0


async def _set_flag(args: argparse.Namespace, settings: Settings) -> int:
    """`vaka resident away ID on|off` and `vaka device maintenance ID on|off`."""
    from hub.store.audit import record_cli_change
    from hub.store.inventory import set_device_maintenance, set_resident_away

    on = args.state == "on"
    resident = args.command == "resident"
    if resident:
        what, change, action = (
            "resident",
            "away: no care alarms" if on else "home: care alarms as usual",
            "resident_away",
        )
    else:
        what, change, action = (
            "device",
            "in maintenance: no technical alarms" if on else "back in service",
            "device_maintenance",
        )

    async def work(conn: VakaConnection) -> bool:
        async with conn.transaction():  # the change and its audit row, or neither
            found = await (set_resident_away if resident else set_device_maintenance)(conn, args.id, on)
            if found:
                await record_cli_change(conn, action=action, target=args.id, detail="on" if on else "off")
            return found

    found = await _with_database(settings, action.replace("_", " "), work)
    if found is None:
        return 2
    if not found:
        print(f"vaka: no {what} {args.id!r} in the inventory (see `vaka site load`)")
        return 1
    logger.info("%s %s marked %s", what, args.id, "on" if on else "off")
    print(f"{what} {args.id} {change} (the running hub picks this up within 30 s)")
    return 0


async def _resident_profile(args: argparse.Namespace, settings: Settings) -> int:
    """`vaka resident profile ID [NAME | --clear]`: give a resident one of the loaded packs' rule profiles, or none;
    with neither, say which one they have and which the packs define."""
    from datetime import UTC, datetime

    from alarms.rules import RulesError, default_pack_path, load_rules
    from hub.store.audit import operator, record_cli_change
    from hub.store.inventory import set_rule_profile

    try:
        known = load_rules(settings.rules.packs or [default_pack_path()]).profiles
    except RulesError as exc:
        print("vaka resident profile: the rule packs (rules.packs) have mistakes:\n" + str(exc))
        return 2
    listing = ", ".join(sorted(known)) or "none"
    if args.clear and args.name:
        print("vaka resident profile: give a profile NAME or --clear, not both")
        return 2
    if args.name and args.name not in known:
        print(f"vaka resident profile: no profile {args.name!r} in the loaded rule packs (known: {listing})")
        return 1

    async def work(conn: VakaConnection) -> tuple[bool, str | None]:
        if not args.name and not args.clear:
            exists = await conn.fetchval("SELECT count(*) FROM residents WHERE id = $1", args.id)
            current = await conn.fetchval("SELECT profile FROM resident_rule_profiles WHERE resident_id = $1", args.id)
            return bool(exists), current
        async with conn.transaction():
            found, before = await set_rule_profile(conn, args.id, args.name or None, operator(), datetime.now(UTC))
            if found:
                detail = f"profile={args.name or 'none'} was={before or 'none'}"
                await record_cli_change(conn, action="resident_profile", target=args.id, detail=detail)
            return found, before

    result = await _with_database(settings, "resident profile", work)
    if result is None:
        return 2
    found, before = result
    if not found:
        print(f"vaka: no resident {args.id!r} in the inventory (see `vaka site load`)")
        return 1
    if not args.name and not args.clear:
        print(f"resident {args.id}: {f'profile {before}' if before else 'no profile (the pack values)'}")
        print(f"profiles in the loaded rule packs: {listing}")
        return 0
    logger.info("resident %s rule profile %s (was %s)", args.id, args.name or "none", before or "none")
    now = f"profile {args.name}" if args.name else "no profile: the pack values"
    print(f"resident {args.id}: {now} (was {before or 'none'}); the running hub applies it within a second")
    return 0


def _rules_check(args: argparse.Namespace) -> int:
    from alarms.rules import check_files

    problems = check_files([Path(p) for p in args.files])
    for line in problems:
        print(line)
    if not problems:
        print(f"{len(args.files)} file(s) OK")
    return 1 if problems else 0


def _schema(args: argparse.Namespace) -> int:
    if args.what == "asyncapi":
        from hub.vendor.contract import asyncapi_yaml

        text = asyncapi_yaml()
    elif args.what == "event":
        from adapters.native import event_schema

        text = json.dumps(event_schema(), indent=2, ensure_ascii=False) + "\n"
    elif args.what == "rules":
        from alarms.rules import rules_schema

        text = json.dumps(rules_schema(), indent=2, ensure_ascii=False) + "\n"
    else:
        from hub.model import Inventory

        text = json.dumps(Inventory.model_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        print(text, end="")
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"vaka schema: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    return 0


def _staff_unit(text: str) -> tuple[str, str]:
    site, sep, unit = text.partition("/")
    if not sep or not site or not unit:
        msg = f"unit {text!r}: expected SITE/UNIT (UNIT may be *)"
        raise argparse.ArgumentTypeError(msg)
    return site, unit


def add_staff_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `vaka staff add`."""
    from hub.people.staff import Role

    parser.add_argument("username", help="login name")
    parser.add_argument(
        "--role",
        choices=[r.value for r in Role],
        default=Role.STAFF.value,
        help="staff: the night patrol; nurse: also the admin page of her units; admin: of the whole site;"
        " manager: follow-up only (default staff)",
    )
    parser.add_argument(
        "--unit",
        action="append",
        type=_staff_unit,
        required=True,
        metavar="SITE/UNIT",
        help="repeatable; UNIT * for all",
    )
    parser.add_argument("--name", default="", help="name shown to colleagues on alarms they take")
    parser.add_argument("--phone", default=None, help="number for the SMS gateway channel")
    parser.add_argument("--lang", choices=["sv", "en"], default="sv", help="the pages' language (default sv)")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    parser.add_argument("--update", action="store_true", help="replace an existing account (password, role, units)")


async def _staff_duty(args: argparse.Namespace, settings: Settings) -> int:
    from hub.people.duty import set_duty, shift_start
    from hub.store.audit import record_cli_change

    try:
        start = shift_start(args.start)
    except ValueError as exc:
        print(f"vaka staff duty: {exc}")
        return 2
    on = args.state == "on"

    async def work(conn: VakaConnection) -> str | None:
        async with conn.transaction():
            until = await set_duty(conn, args.username, on, start, args.hours)
            if until is not None:
                detail = f"on until {until}" if on else "off"
                await record_cli_change(conn, action="staff_duty", target=args.username, detail=detail)
            return until

    result = await _with_database(settings, "staff duty", work)
    if result is None:
        print(f"vaka staff duty: no active account {args.username!r} (or the database did not answer)")
        return 1
    done = f"{args.username} on duty until {result}" if on else f"{args.username} off duty"
    print(f"{done} (a running hub applies it within a second)")
    return 0


async def staff_add_main(args: argparse.Namespace, settings: Settings) -> int:
    """Create one staff account; returns the process exit code."""
    import getpass

    import asyncpg

    from hub.people.staff import Role, StaffError
    from hub.store.audit import record_cli_change
    from hub.store.staff import create_staff

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if password != getpass.getpass("again: "):
            print("passwords differ", file=sys.stderr)
            return 2
    try:
        conn = await asyncpg.connect(
            settings.db.dsn.get_secret_value(),
            server_settings={"search_path": settings.db.db_schema},
            timeout=settings.db.connect_timeout_s,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"database: {exc}", file=sys.stderr)
        return 1
    try:
        async with conn.transaction():  # the account and its audit row, or neither
            member = await create_staff(
                conn,
                username=args.username,
                password=password,
                role=Role(args.role),
                units=args.unit,
                display_name=args.name,
                phone=args.phone,
                lang=args.lang,
                replace=args.update,
            )
            await record_cli_change(
                conn,
                action="staff_update" if args.update else "staff_add",
                target=args.username,
                detail=f"role={member.role.value} units={len(member.units)}",
            )
    except StaffError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        await conn.close()
    print(f"staff {member.username} (id {member.id}, {member.role.value}) {'updated' if args.update else 'created'}")
    return 0


async def _vendor_check(args: argparse.Namespace, settings: Settings) -> int:
    """`vaka vendor check`: the supervision intervals from the inventory, the traffic from the broker."""
    import asyncpg

    from hub.model import Site
    from hub.store.inventory import fetch_sites
    from hub.vendor.check import CheckError, check, parse_duration, print_progress, write_report

    try:
        duration_s = parse_duration(args.duration)
    except CheckError as exc:
        print(f"vaka vendor check: {exc}", file=sys.stderr)
        return 2

    async def read_sites(conn: VakaConnection) -> list[Site]:
        try:
            return await fetch_sites(conn)
        except asyncpg.PostgresError:  # not migrated yet: no inventory
            return []

    sites = await _with_database(settings, "vendor check", read_sites, wait_s=3.0)
    if sites is None:
        print("vaka vendor check: without the inventory every device is judged against the default interval")
    intervals = {d.id: d.supervision_interval_s for site in sites or [] if site.id == args.site for d in site.devices}
    print(f"vaka vendor check: watching site {args.site} for {duration_s:.0f} s …", file=sys.stderr)
    try:
        report = await asyncio.to_thread(
            check, settings.mqtt, args.site, duration_s, intervals, args.device_prefix, print_progress
        )
    except CheckError as exc:
        print(f"vaka vendor check: {exc}", file=sys.stderr)
        return 2
    markdown, data = write_report(report, args.out)
    verdict = "no defects" if report.clean else f"{len(report.findings)} defect(s)"
    print(f"{len(report.devices)} device(s), {verdict}: {markdown} and {data}")
    return 0 if report.clean else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `vaka`."""
    parser = argparse.ArgumentParser(prog="vaka", description="Vaka: welfare-technology monitoring hub")
    parser.add_argument("--config", type=Path, help="TOML settings file (also VAKA_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the hub")
    p = sub.add_parser("migrate", help="apply database migrations (idempotent)")
    p.add_argument("--wait-s", type=float, default=30.0, help="how long to wait for the database")
    site = sub.add_parser("site", help="site inventory").add_subparsers(dest="site_command", required=True)
    p = site.add_parser("load", help="load sites, residents and devices from YAML (idempotent)")
    p.add_argument("file")
    p = site.add_parser("discover", help="print inventory YAML for review from a device bridge's device list")
    p.add_argument("--zigbee2mqtt", action="store_true", required=True, help="read Zigbee2MQTT's bridge/devices")
    p.add_argument("--base-topic", default="zigbee2mqtt", help="Zigbee2MQTT's mqtt.base_topic")
    p.add_argument("--site", default="default", help="site id the devices belong to")
    p.add_argument("--timeout-s", type=float, default=10.0, help="how long to wait for the retained device list")
    rules = sub.add_parser("rules", help="alarm rules").add_subparsers(dest="rules_command", required=True)
    p = rules.add_parser("check", help="validate rule files; exits non-zero with file:line for every mistake")
    p.add_argument("files", nargs="+")
    resident = sub.add_parser("resident", help="residents").add_subparsers(dest="resident_command", required=True)
    p = resident.add_parser("import-csv", help="names, homes, access and contacts from a care-records CSV export")
    p.add_argument("file", type=Path, help="CSV with a header row: resident_id;name;address;access;latitude;…")
    p = resident.add_parser(
        "profile", help="give a resident a rule profile of the loaded packs (or --clear); alone: show it"
    )
    p.add_argument("id", help="pseudonymous resident id")
    p.add_argument("name", nargs="?", help="a profile under `profiles:` in the rule packs (rules.packs)")
    p.add_argument("--clear", action="store_true", help="no profile: the pack's values")
    p = resident.add_parser("away", help="mark a resident away or in hospital (on) or back home (off)")
    p.add_argument("id", help="pseudonymous resident id")
    p.add_argument("state", choices=["on", "off"], help="on: away or in hospital (no alarms from home); off: back home")
    device = sub.add_parser("device", help="devices").add_subparsers(dest="device_command", required=True)
    p = device.add_parser("maintenance", help="take a device out for service (on) or put it back (off)")
    p.add_argument("id", help="device id")
    p.add_argument(
        "state", choices=["on", "off"], help="on: out for service (its silence and faults do not ring); off: back"
    )
    vendor = sub.add_parser("vendor", help="for vendors and integrators").add_subparsers(
        dest="vendor_command", required=True
    )
    p = vendor.add_parser("check", help="watch a site's live traffic and write a conformance report (Markdown, JSON)")
    p.add_argument("--site", required=True, help="site id whose vaka/v1/{site}/… topics are watched")
    p.add_argument("--duration", default="10m", help="how long to watch: 30s, 10m, 1h")
    p.add_argument("--device-prefix", default="", help="only devices whose id starts with this")
    p.add_argument("--out", type=Path, default=Path("."), help="directory for the report files")
    db = sub.add_parser("db", help="the database").add_subparsers(dest="db_command", required=True)
    p = db.add_parser("roles", help="print (or --apply) the SQL that sets up the runtime and read-only roles")
    p.add_argument("--runtime-role", help="the hub's least-privilege role (default: db.runtime_role or vaka_hub)")
    p.add_argument("--readonly-role", help="a SELECT-only role, e.g. for Grafana (default: db.readonly_role)")
    p.add_argument("--apply", action="store_true", help="run it, connected as db.owner_dsn (or db.dsn)")
    p = sub.add_parser("schema", help="print a JSON Schema")
    p.add_argument(
        "what",
        choices=["event", "rules", "inventory", "asyncapi"],
        help="event: a device's MQTT payload; rules: a rule pack; inventory: a site file; asyncapi: the MQTT API",
    )
    p.add_argument("--output", type=Path, help="write to this file instead of printing")
    from hub.simulation import add_arguments as add_simulate_arguments

    add_simulate_arguments(sub.add_parser("simulate", help="simulate a care unit's nights over MQTT"))
    from hub.relatives.cli import add_arguments as add_relatives_arguments

    add_relatives_arguments(sub, resident)
    staff = sub.add_parser("staff", help="staff accounts").add_subparsers(dest="staff_command", required=True)
    add_staff_arguments(staff.add_parser("add", help="create or update a staff account"))
    from hub.people.duty import add_duty_arguments

    add_duty_arguments(
        staff.add_parser("duty", help="sign a person on or off duty (a roster; escalation goes to those on duty)")
    )
    from hub.devices.broker_accounts import add_arguments as add_mqtt_arguments

    mqtt = sub.add_parser("mqtt", help="the broker").add_subparsers(dest="mqtt_command", required=True)
    add_mqtt_arguments(mqtt.add_parser("credentials", help="write the broker's password file and ACL for an inventory"))
    from hub.followup.cli import add_commands as add_followup_commands

    add_followup_commands(sub)
    from hub.checkins.cli import add_commands as add_checkin_commands

    add_checkin_commands(sub)
    describe(parser)
    return parser


def describe(parser: argparse.ArgumentParser) -> None:
    """Every subcommand's `--help` opens with what it is for: its one-line help as the description, where it has
    none of its own (argparse prints only the usage otherwise)."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        for name, child in action.choices.items():
            if child.description is None and helps.get(name):
                child.description = str(helps[name])[:1].upper() + str(helps[name])[1:] + "."
            describe(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vaka` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "rules":
        return _rules_check(args)
    if args.command == "schema":
        return _schema(args)
    if args.command == "mqtt":
        from hub.devices.broker_accounts import credentials_main

        inventory = _read_inventory(args.inventory, "mqtt credentials")
        return 2 if inventory is None else credentials_main(args, inventory)
    if args.command == "simulate":
        from hub.simulation import main as simulate_main

        _configure_logging("INFO")
        return _run(simulate_main(args))
    try:
        settings = load_settings(args.config)
    except VakaError as exc:
        print(f"vaka: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    if args.command == "serve":
        return _run(_serve(args, settings))
    if args.command == "vendor":
        return _run(_vendor_check(args, settings))
    if args.command == "migrate":
        return _run(_migrate(args, settings))
    if args.command == "db":
        return _run(_db_roles(args, settings))
    if args.command == "site" and args.site_command == "discover":
        from hub.vendor.discover import discover_zigbee2mqtt

        try:
            print(discover_zigbee2mqtt(settings.mqtt, args.base_topic, args.site, args.timeout_s), end="")
        except VakaError as exc:
            print(f"vaka site discover: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "site":
        inventory = _read_inventory(Path(args.file))
        return 2 if inventory is None else _run(_site_load(inventory, settings))
    from hub.relatives import cli as relatives_cli

    if (
        args.command in relatives_cli.COMMANDS
        or getattr(args, "resident_command", None) in relatives_cli.RESIDENT_COMMANDS
    ):
        return _run(relatives_cli.main(args, settings))
    if args.command == "resident" and args.resident_command == "import-csv":
        from hub.people.residents import import_csv_main

        async def import_csv() -> int:
            result = await _with_database(
                settings, "resident import-csv", lambda conn: import_csv_main(args.file, conn)
            )
            return 2 if result is None else result

        return _run(import_csv())
    if args.command == "resident" and args.resident_command == "profile":
        return _run(_resident_profile(args, settings))
    if args.command in ("resident", "device"):
        return _run(_set_flag(args, settings))
    if args.command == "staff" and args.staff_command == "duty":
        return _run(_staff_duty(args, settings))
    if args.command == "staff":
        return _run(staff_add_main(args, settings))
    from hub.followup.cli import COMMANDS as FOLLOWUP_COMMANDS

    if args.command == "checkin":
        from hub.checkins.cli import main as checkin_main

        return _run(checkin_main(args, settings))
    if args.command in FOLLOWUP_COMMANDS:
        from hub.followup.cli import main as followup_main

        return _run(followup_main(args, settings))
    return 2


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        result = asyncio.run(coro)
    except KeyboardInterrupt:
        return 130
    except VakaError as exc:
        print(f"vaka: {exc}", file=sys.stderr)
        return 2
    return int(result)


if __name__ == "__main__":
    sys.exit(main())
