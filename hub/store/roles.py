"""Least privilege in the database: the owner migrates, the hub runs as a role that cannot rewrite the audit trail.

Three roles (names are the operator's; `vaka db roles` prints or applies what creates them):
- the owner (`db.owner_dsn`): owns the schema and every table; runs `vaka migrate`.
- the runtime role (`db.dsn`, `db.runtime_role`): reads and writes Vaka's tables, but on the audit logs
  (`resident_access_log`, `desk_alarm_log`) it may only INSERT and SELECT: no UPDATE, DELETE or TRUNCATE, and as it owns
  nothing it cannot ALTER a table or DISABLE its trigger. It creates no table: daily partitions come from the owner's
  SECURITY DEFINER function `vaka_maintain_partitions` (migration 100). No superuser, CREATEROLE, CREATEDB, and no
  membership in the owner.
- the read-only role (`db.readonly_role`, for Grafana): SELECT on the tables and columns in `READABLE` only.
Grants are re-applied by every `vaka migrate`, so tables added by later migrations are covered.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, urlsplit

import asyncpg

from hub.model import VakaError
from hub.settings import DbSettings

logger = logging.getLogger(__name__)

# the audit trail: the runtime role may INSERT and SELECT, nothing else (a table that does not exist yet is skipped)
APPEND_ONLY_TABLES = ("resident_access_log", "desk_alarm_log", "admin_audit_log", "checkin_log", "desk_refused_rows")
READ_ONLY_FOR_RUNTIME = ("schema_migrations",)
RUNTIME_FUNCTIONS = ("vaka_maintain_partitions(date, integer, integer, integer)",)
# What the read-only role (Grafana's SQL panels, reports) may read: an allow-list, so a table added later stays
# unreadable until listed here, and staff accounts, sessions, relatives' credentials, consents, the access log,
# message payloads and every free-text field a person typed (alarm notes, log details) are never readable.
# table -> readable columns (None: all of them)
READABLE: dict[str, tuple[str, ...] | None] = {
    "sites": None,
    "residents": None,  # pseudonymous: id, site, room, unit
    "devices": None,
    "events": None,
    "rejected_messages": ("id", "received_at", "topic", "reason"),
    "desk_alarms": (
        "id", "rule_id", "category", "severity", "site", "unit", "resident_id", "device_id", "unregistered",
        "state", "outcome", "count", "raised_at", "updated_at", "accepted_at", "closed_at", "next_tier",
    ),
    "desk_alarm_log": ("seq", "alarm_id", "at", "actor", "action", "state"),
    "followup_device_day": None,
    "followup_device_day_cagg": None,
    "followup_device_month": None,
    "followup_refresh": None,
    "schema_migrations": None,
    "site_leases": None,  # which hub owns which site, until when (docs/ha.md)
}  # fmt: skip
# ... and every table it may not read, with the reason: each table a migration adds is on one of the two lists
# (tests/hub/store/test_roles.py fails otherwise), so it is kept from the dashboards, or opened to them, on purpose.
NOT_READABLE: dict[str, str] = {
    "engine_state": "the rule engine's snapshot: timers and windows per resident",
    "site_engine_state": "each site's rule engine snapshot in the HA profile: timers and windows per resident",
    "staff": "accounts: password hashes, phone numbers",
    "staff_units": "who works where",
    "staff_sessions": "session token hashes",
    "staff_duty": "who is on duty when",
    "push_subscriptions": "browsers' push endpoints and keys",
    "login_throttle": "who failed to log in from where",
    "resident_access_log": "who read whose data: the privacy audit trail, read with `vaka access-log`",
    "admin_audit_log": "nurses' changes, free text",
    "desk_refused_rows": "desk rows the database refused, whole: notes and log details people typed",
    "resident_directory": "names, addresses, door codes, contacts",
    "relatives": "relatives' identities",
    "relative_invitations": "invitation token hashes",
    "relative_passkeys": "relatives' credentials",
    "relative_sessions": "relatives' session token hashes",
    "consents": "consents and who gave them",
    "resident_erasures": "what `vaka resident erase` removed",
    "archive_exports": "what each e-archive export (`vaka archive export`) wrote and purged",
    "checkin_plans": "care decisions and consent references per resident",
    "checkins": "check-in tasks: the follow-up indicators count them through the hub (checkins.*)",
    "checkin_log": "every step of every check-in, with who did it",
    "checkin_looks": "who looked at whose camera when",
    "resident_rule_profiles": "each resident's rule profile: it tells of their care needs",
    "scaip_first_seen": "when each social alarm unit sent which alarm: the SCAIP receiver's duplicate check",
}
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SAFE_ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


class RoleError(VakaError):
    """A role name is unusable, or the roles could not be set up."""


def _ident(name: str) -> str:
    if not _ROLE.match(name):
        msg = f"role name {name!r} must be lower-case letters, digits and '_' (at most 63)"
        raise RoleError(msg)
    return f'"{name}"'


def dsn_user(dsn: str) -> str | None:
    """The user name in a `postgresql://user@host/db` connection string, if it names one."""
    parts = urlsplit(dsn)
    return unquote(parts.username) if parts.scheme.startswith("postgres") and parts.username else None


def runtime_role_of(settings: DbSettings) -> str | None:
    """The role that gets runtime privileges: `runtime_role`, else the user of `dsn` when an owner DSN is separate."""
    if settings.runtime_role:
        return settings.runtime_role
    if settings.owner_dsn is None:
        return None
    runtime = dsn_user(settings.dsn.get_secret_value())
    return runtime if runtime and runtime != dsn_user(settings.owner_dsn.get_secret_value()) else None


def create_role_statements(runtime_role: str, readonly_role: str | None, database: str) -> list[str]:
    """SQL that creates (or corrects) the login roles, for someone with CREATEROLE. Passwords are set apart
    (`\\password` in psql), so they never appear here or in a log."""
    statements: list[str] = []
    for role in (runtime_role, readonly_role):
        if role is None:
            continue
        quoted = _ident(role)
        statements += [
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {quoted} {_SAFE_ROLE_ATTRIBUTES}; END IF; END $$",
            f"ALTER ROLE {quoted} {_SAFE_ROLE_ATTRIBUTES}",
            f"GRANT CONNECT ON DATABASE {_ident(database)} TO {quoted}",
        ]
    return statements


def _if_exists(check: str, statement: str) -> str:
    """`statement`, run only when `check` (a to_regclass/to_regprocedure argument) exists: the roles may be set up
    before the first migration, and every `vaka migrate` grants again."""
    quoted = statement.replace("'", "''")
    return f"DO $$ BEGIN IF {check} IS NOT NULL THEN EXECUTE '{quoted}'; END IF; END $$"


def grant_statements(schema: str, runtime_role: str | None, readonly_role: str | None) -> list[str]:
    """SQL, run by the owner, that gives the runtime and read-only roles exactly what they need (idempotent)."""
    s = _ident(schema)
    statements: list[str] = []
    if runtime_role is not None:
        r = _ident(runtime_role)
        statements += [
            f"GRANT USAGE ON SCHEMA {s} TO {r}",
            f"REVOKE CREATE ON SCHEMA {s} FROM {r}",
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
        ]
        for table in APPEND_ONLY_TABLES:
            check = f"to_regclass('{s}.{table}')"
            statements.append(_if_exists(check, f"REVOKE UPDATE, DELETE ON {s}.{table} FROM {r}"))
        for table in READ_ONLY_FOR_RUNTIME:
            check = f"to_regclass('{s}.{table}')"
            statements.append(_if_exists(check, f"REVOKE INSERT, UPDATE, DELETE ON {s}.{table} FROM {r}"))
        for function in RUNTIME_FUNCTIONS:
            check = f"to_regprocedure('{s}.{function}')"
            statements.append(_if_exists(check, f"GRANT EXECUTE ON FUNCTION {s}.{function} TO {r}"))
    if readonly_role is not None:
        g = _ident(readonly_role)
        statements += [
            f"GRANT USAGE ON SCHEMA {s} TO {g}",
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {g}",
        ]
        for table, columns in READABLE.items():
            what = "SELECT" if columns is None else f"SELECT ({', '.join(columns)})"
            statements.append(_if_exists(f"to_regclass('{s}.{table}')", f"GRANT {what} ON {s}.{table} TO {g}"))
    return statements


async def apply_grants(conn: asyncpg.Connection, settings: DbSettings) -> list[str]:
    """Grant the configured runtime and read-only roles their privileges on the schema; returns the roles granted."""
    runtime, readonly = runtime_role_of(settings), settings.readonly_role
    statements = grant_statements(settings.db_schema, runtime, readonly)
    if not statements:
        return []
    try:
        async with conn.transaction():
            for statement in statements:
                await conn.execute(statement)
    except asyncpg.UndefinedObjectError as exc:
        msg = f"granting privileges failed: {exc}; create the roles first (`vaka db roles --apply`, as an admin)"
        raise RoleError(msg) from exc
    granted = [r for r in (runtime, readonly) if r]
    logger.info("database privileges granted: runtime %s, read-only %s", runtime or "-", readonly or "-")
    return granted


async def privilege_problems(conn: asyncpg.Connection, schema: str) -> list[str]:
    """What lets the connected role rewrite the audit trail or escalate (empty for a proper runtime role)."""
    row = await conn.fetchrow(
        "SELECT current_user AS me, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
        "WHERE rolname = current_user"
    )
    assert row is not None
    problems: list[str] = []
    for flag, what in (
        ("rolsuper", "is a superuser"),
        ("rolcreaterole", "may create roles"),
        ("rolbypassrls", "bypasses row security"),
    ):
        if row[flag]:
            problems.append(f"role {row['me']} {what}")
    tables = await conn.fetch(
        """
        SELECT c.relname, pg_get_userbyid(c.relowner) AS owner,
               pg_has_role(current_user, c.relowner, 'MEMBER') AS owns,
               has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE')
                   OR has_table_privilege(c.oid, 'TRUNCATE') OR has_table_privilege(c.oid, 'TRIGGER') AS can_rewrite
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = ANY($2::text[])
        """,
        schema,
        list(APPEND_ONLY_TABLES),
    )
    for table in tables:
        if table["owns"]:
            problems.append(f"role {row['me']} owns (or is a member of owner {table['owner']} of) {table['relname']}")
        elif table["can_rewrite"]:
            problems.append(f"role {row['me']} may UPDATE, DELETE or TRUNCATE {table['relname']}")
    return problems


def database_name(dsn: str) -> str | None:
    """The database a `postgresql://…/name` connection string names."""
    path = urlsplit(dsn).path.lstrip("/")
    return unquote(path) if path else None


def roles_sql(settings: DbSettings, runtime_role: str, readonly_role: str | None) -> list[str]:
    """Everything `vaka db roles` prints: create the roles, then the owner's grants on the schema."""
    database = database_name(settings.dsn.get_secret_value()) or "vaka"
    return [
        *create_role_statements(runtime_role, readonly_role, database),
        *grant_statements(settings.db_schema, runtime_role, readonly_role),
    ]


async def apply_roles(conn: asyncpg.Connection, statements: list[str]) -> None:
    """Run `vaka db roles --apply`'s statements in one transaction, or explain what right is missing."""
    try:
        async with conn.transaction():
            for statement in statements:
                await conn.execute(statement)
    except asyncpg.InsufficientPrivilegeError as exc:
        msg = (
            f"not allowed: {exc}. Creating roles needs CREATEROLE (an admin) and the grants need the schema's "
            "owner: run the printed SQL as those (`vaka db roles ... | psql`), or --apply with an owner DSN that may"
        )
        raise RoleError(msg) from exc
    except asyncpg.PostgresError as exc:
        msg = f"setting up the roles failed: {exc}"
        raise RoleError(msg) from exc
