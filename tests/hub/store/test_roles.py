"""Least privilege in the database: the owner migrates, the hub runs as a role that cannot rewrite the audit trail.

Every test runs with its own roles (the `db_roles` fixture: an owner that is no superuser, a runtime role, a read-only
role) in its own schema, on the real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.app import Hub
from hub.metrics import Metrics
from hub.model import Inventory
from hub.settings import DbSettings, Settings
from hub.store.inventory import load_inventory
from hub.store.migrate import maintain_partitions
from hub.store.partitions import existing_partitions, partition_name
from hub.store.roles import APPEND_ONLY_TABLES, NOT_READABLE, READ_ONLY_FOR_RUNTIME, READABLE, RoleError
from tests.conftest import MQTT_HOST, MQTT_PORT, PG_DSN, DbRoles


def vaka(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VAKA_")}
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=90, env={**clean, **env}
    )


def role_env(roles: DbRoles, schema: str, *, owner: bool = True) -> dict[str, str]:
    env = {
        "VAKA_DB__DSN": roles.runtime_dsn,
        "VAKA_DB__DB_SCHEMA": schema,
        "VAKA_DB__RUNTIME_ROLE": roles.runtime,
        "VAKA_DB__READONLY_ROLE": roles.readonly,
    }
    if owner:
        env["VAKA_DB__OWNER_DSN"] = roles.owner_dsn
    return env


def role_settings(roles: DbRoles, schema: str, **more: object) -> DbSettings:
    fields: dict[str, object] = {
        "dsn": roles.runtime_dsn,
        "owner_dsn": roles.owner_dsn,
        "db_schema": schema,
        "runtime_role": roles.runtime,
        "readonly_role": roles.readonly,
    }
    return DbSettings.model_validate(fields | more)


@pytest.fixture
def migrated(db_roles: DbRoles, db_schema: str) -> DbRoles:
    """The schema migrated by `vaka migrate` as the owner, granting the runtime and read-only roles."""
    result = vaka("migrate", env=role_env(db_roles, db_schema))
    assert result.returncode == 0, result.stdout + result.stderr
    return db_roles


async def _connect(dsn: str, schema: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings={"search_path": schema})


ACCESS_ROW = "INSERT INTO resident_access_log (at, staff_id, role, site, resident_id, purpose) VALUES (now(), 1, 'staff', 's', 'r-1', 'alarm')"
ALARM_LOG_ROW = "INSERT INTO desk_alarm_log (alarm_id, at, actor, action, state, detail) VALUES ('a-1', now(), 'staff:1', 'accept', 'accepted', '')"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE resident_access_log SET purpose = 'nothing to see'",
        "DELETE FROM resident_access_log",
        "TRUNCATE resident_access_log",
        "UPDATE desk_alarm_log SET actor = 'someone else'",
        "DELETE FROM desk_alarm_log",
        "TRUNCATE desk_alarm_log",
        "DELETE FROM admin_audit_log",
        "TRUNCATE admin_audit_log",
        "DELETE FROM checkin_log",
        "UPDATE checkin_log SET seq = seq",
        "ALTER TABLE desk_alarm_log DISABLE TRIGGER desk_alarm_log_no_change",
        "ALTER TABLE desk_alarm_log DISABLE TRIGGER ALL",
        "ALTER TABLE resident_access_log ADD COLUMN note text",
        "ALTER TABLE resident_access_log OWNER TO CURRENT_USER",
        "DROP TABLE resident_access_log",
        "CREATE TABLE events_p20991231 (LIKE events)",
        "CREATE OR REPLACE FUNCTION desk_alarm_log_append_only() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
        "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'x', 'x')",
        "CREATE ROLE escape_hatch SUPERUSER",
    ],
)
async def test_the_runtime_role_cannot_rewrite_the_audit_trail(
    migrated: DbRoles, db_schema: str, statement: str
) -> None:
    conn = await _connect(migrated.runtime_dsn, db_schema)
    try:
        await conn.execute(ACCESS_ROW)
        await conn.execute(ALARM_LOG_ROW)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM resident_access_log") == 1
        assert await conn.fetchval("SELECT count(*) FROM desk_alarm_log") == 1
    finally:
        await conn.close()


async def test_the_runtime_role_cannot_become_the_owner(migrated: DbRoles, db_schema: str) -> None:
    conn = await _connect(migrated.runtime_dsn, db_schema)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f"SET ROLE {migrated.owner}")
        row = await conn.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, pg_has_role(current_user, $1, 'MEMBER') AS member "
            "FROM pg_roles WHERE rolname = current_user",
            migrated.owner,
        )
        assert row is not None
        assert not any(row.values())
        owners = {
            r["owner"]
            for r in await conn.fetch(
                "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = $1",
                db_schema,
            )
        }
        assert owners == {migrated.owner}
    finally:
        await conn.close()


async def test_the_read_only_role_reads_and_nothing_else(migrated: DbRoles, db_schema: str) -> None:
    conn = await _connect(migrated.readonly_dsn, db_schema)
    try:
        assert await conn.fetchval("SELECT count(*) FROM events") == 0
        assert await conn.fetchval("SELECT count(*) FROM desk_alarm_log") == 0
        # only what dashboards need: no staff credentials, no note or log detail a person typed, no access log
        for query in (
            "SELECT password_hash FROM staff",
            "SELECT note FROM desk_alarms",
            "SELECT detail FROM desk_alarm_log",
            "SELECT count(*) FROM resident_access_log",
            "SELECT payload FROM rejected_messages",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(query)
        assert await conn.fetchval("SELECT count(*) FROM desk_alarms WHERE outcome = 'false_alarm'") == 0
        for statement in (
            ACCESS_ROW,
            "DELETE FROM desk_alarms",
            "INSERT INTO sites (id, name, timezone) VALUES ('x', '', 'UTC')",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_every_table_is_granted_on_purpose(migrated: DbRoles, db_schema: str) -> None:
    """Each table the migrations made (check-ins, duty, the directory … and whatever comes next): the runtime role reads
    and writes it, the audit logs only by INSERT and SELECT; the read-only role reads it only when READABLE lists it,
    and every table is on READABLE or NOT_READABLE, so a new one is shown to the dashboards or kept from them by
    decision, not by accident."""
    conn = await _connect(migrated.owner_dsn, db_schema)
    try:
        rows = await conn.fetch(
            """
            SELECT c.relname,
                   has_table_privilege($2, c.oid, 'SELECT') AS rt_select,
                   has_table_privilege($2, c.oid, 'INSERT') AS rt_insert,
                   has_table_privilege($2, c.oid, 'UPDATE') AS rt_update,
                   has_table_privilege($2, c.oid, 'DELETE') AS rt_delete,
                   has_table_privilege($2, c.oid, 'TRUNCATE') AS rt_truncate,
                   has_any_column_privilege($3, c.oid, 'SELECT') AS ro_select,
                   has_any_column_privilege($3, c.oid, 'INSERT, UPDATE') AS ro_write
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
            """,
            db_schema,
            migrated.runtime,
            migrated.readonly,
        )
    finally:
        await conn.close()
    tables = {r["relname"]: r for r in rows}
    assert {"checkins", "checkin_plans", "checkin_looks", "checkin_log", "staff_duty", "resident_directory"} <= set(
        tables
    )
    unlisted = sorted(set(tables) - set(READABLE) - set(NOT_READABLE))
    assert unlisted == [], f"add {unlisted} to READABLE or NOT_READABLE (with the reason) in hub/store/roles.py"
    assert set(READABLE) & set(NOT_READABLE) == set()
    for name, r in tables.items():
        if name in APPEND_ONLY_TABLES:
            expected = (True, True, False, False)
        elif name in READ_ONLY_FOR_RUNTIME:
            expected = (True, False, False, False)
        else:
            expected = (True, True, True, True)
        assert (r["rt_select"], r["rt_insert"], r["rt_update"], r["rt_delete"]) == expected, name
        assert not r["rt_truncate"], name
        assert r["ro_select"] is (name in READABLE), name
        assert not r["ro_write"], name


def test_serve_refuses_a_schema_it_may_not_migrate(db_roles: DbRoles, db_schema: str) -> None:
    result = vaka("serve", env={**role_env(db_roles, db_schema, owner=False), "VAKA_HTTP__PORT": "0"})
    assert result.returncode == 2
    assert "is not current" in result.stderr
    assert "run `vaka migrate`" in result.stderr


async def test_serve_refuses_a_role_that_could_rewrite_the_logs_when_told_to(settings: Settings) -> None:
    # postgres, a superuser that owns everything: what main ran as
    strict = settings.model_copy(update={"db": settings.db.model_copy(update={"require_least_privilege": True})})
    with pytest.raises(RoleError, match="superuser"):
        async with Hub(strict):
            pass


def test_db_roles_prints_the_grants_and_no_password(db_schema: str) -> None:
    result = vaka(
        "db",
        "roles",
        "--runtime-role",
        "vaka_hub",
        "--readonly-role",
        "vaka_grafana",
        env={"VAKA_DB__DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": db_schema},
    )
    assert result.returncode == 0, result.stderr
    sql = result.stdout
    assert 'CREATE ROLE "vaka_hub" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE' in sql
    assert f'GRANT SELECT ON "{db_schema}".events TO "vaka_grafana"' in sql
    assert "GRANT SELECT (id, rule_id, category," in sql  # desk_alarms without the note
    for private in ("staff", "staff_sessions", "resident_access_log"):
        assert f'".{private} TO "vaka_grafana"' not in sql
    assert 'REVOKE UPDATE, DELETE ON "' + db_schema + '".resident_access_log' in sql
    assert not [line for line in sql.splitlines() if "PASSWORD" in line.upper() and not line.startswith("--")]


async def test_db_roles_apply_creates_roles_the_hub_can_run_as(db_roles: DbRoles, db_schema: str, unique: str) -> None:
    runtime, readonly = f"vaka_hub_{unique}", f"vaka_graf_{unique}"
    env = {"VAKA_DB__DSN": PG_DSN, "VAKA_DB__OWNER_DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": db_schema}
    try:
        assert vaka("migrate", env=env).returncode == 0
        result = vaka("db", "roles", "--runtime-role", runtime, "--readonly-role", readonly, "--apply", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        conn = await _connect(PG_DSN, db_schema)
        try:
            row = await conn.fetchrow(
                "SELECT rolsuper, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = $1", runtime
            )
            assert row is not None
            assert (row["rolsuper"], row["rolcreaterole"], row["rolcanlogin"]) == (False, False, True)
        finally:
            await conn.close()
        conn = await _connect(PG_DSN.replace("postgres@", f"{runtime}@"), db_schema)
        try:
            await conn.execute(ALARM_LOG_ROW)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM desk_alarm_log")
        finally:
            await conn.close()
    finally:
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {db_schema} CASCADE")
            for role in (runtime, readonly):
                await conn.execute(f"DROP OWNED BY {role}")
                await conn.execute(f"DROP ROLE {role}")
        finally:
            await conn.close()


def _publish(topic: str, payloads: list[bytes]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    try:
        for payload in payloads:
            info = client.publish(topic, payload, qos=1)
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


async def test_the_hub_runs_and_ingests_as_the_runtime_role_across_a_day_boundary(
    migrated: DbRoles, db_schema: str, settings: Settings, unique: str
) -> None:
    """Past midnight, with today's partition not made yet: the hub, as the runtime role that may create no table,
    has it made (through the owner's function), ingests into it, raises and logs an alarm, and keeps the coming days'
    partitions made."""
    site, device = f"s{unique}", f"{unique}-radar"
    today = datetime.now(UTC).date()
    conn = await _connect(migrated.owner_dsn, db_schema)
    try:
        await load_inventory(
            conn,
            Inventory.model_validate(
                {
                    "sites": [
                        {
                            "id": site,
                            "residents": [{"id": "r-1", "room": "A1"}],
                            "devices": [{"id": device, "kind": "fall_radar", "resident": "r-1", "safety": True}],
                        }
                    ]
                }
            ),
        )
        for day, name in (await existing_partitions(conn, db_schema)).items():
            if day >= today:
                await conn.execute(f"DROP TABLE {name}")  # as if the last maintenance ran yesterday
    finally:
        await conn.close()

    db = role_settings(migrated, db_schema, owner_dsn=None, require_least_privilege=True)
    hub_settings = settings.model_copy(update={"db": db})
    now = datetime.now(UTC)
    events = [
        json.dumps({"ts": (now - timedelta(seconds=5 - i)).isoformat(), "kind": "motion", "seq": i}).encode()
        for i in range(3)
    ] + [json.dumps({"ts": now.isoformat(), "kind": "fall_detected", "ref": "f-1", "seq": 10}).encode()]
    async with Hub(hub_settings, Metrics()) as hub:
        await hub.wait_connected()
        assert today in await _partitions(migrated, db_schema)
        await asyncio.to_thread(_publish, f"vaka/v1/{site}/{device}/event", events)
        await _wait_for(migrated, db_schema, "SELECT count(*) = 4 FROM events")
        await _wait_for(migrated, db_schema, "SELECT count(*) > 0 FROM desk_alarm_log")
        # the next hourly maintenance, a few days on: made through the hub's own (runtime) connections
        async with hub.db.acquire() as conn:
            created, _ = await maintain_partitions(conn, db, today + timedelta(days=4))
        assert partition_name(today + timedelta(days=7)) in created
    conn = await _connect(migrated.owner_dsn, db_schema)
    try:
        where = await conn.fetch("SELECT tableoid::regclass::text AS part, count(*) FROM events GROUP BY 1")
        logged = await conn.fetchval("SELECT count(*) FROM desk_alarm_log")
    finally:
        await conn.close()
    assert [(r["part"], r["count"]) for r in where] == [(partition_name(today), 4)]
    assert logged >= 1


async def _partitions(roles: DbRoles, schema: str) -> set[object]:
    conn = await _connect(roles.owner_dsn, schema)
    try:
        return set(await existing_partitions(conn, schema))
    finally:
        await conn.close()


async def _wait_for(roles: DbRoles, schema: str, condition_sql: str, timeout_s: float = 20.0) -> None:
    """Wait until `condition_sql` (one boolean) holds, looking as the owner."""
    conn = await _connect(roles.owner_dsn, schema)
    try:
        async with asyncio.timeout(timeout_s):
            while not await conn.fetchval(condition_sql):  # noqa: ASYNC110  (a database row, not an event)
                await asyncio.sleep(0.05)
    finally:
        await conn.close()
