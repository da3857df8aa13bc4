"""Migrations, events storage and partition maintenance against the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import asyncpg
import pytest

from hub.settings import DbSettings
from hub.store import timescale
from hub.store.db import Database
from hub.store.migrate import MigrationError, maintain_partitions, migrate, storage_mode
from hub.store.partitions import existing_partitions, partition_name

CATALOG_SQL = """
SELECT c.relname, c.relkind::text, a.attname, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = $1
ORDER BY 1, 3
"""


async def test_migrations_twice_change_nothing(database: Database, db_settings: DbSettings) -> None:
    async with database.acquire() as conn:
        before = [tuple(r) for r in await conn.fetch(CATALOG_SQL, db_settings.db_schema)]
        applied = await migrate(conn, db_settings)
        after = [tuple(r) for r in await conn.fetch(CATALOG_SQL, db_settings.db_schema)]
        recorded = await conn.fetch("SELECT name FROM schema_migrations ORDER BY version")
        mode = await storage_mode(conn, db_settings.db_schema)
    assert applied == []
    assert before == after
    assert "001_core" in [r["name"] for r in recorded]
    assert mode == "native"  # no TimescaleDB package on this machine


async def test_a_changed_migration_stops_the_migration(database: Database, db_settings: DbSettings) -> None:
    async with database.acquire() as conn:
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE name = '001_core'")
        with pytest.raises(MigrationError, match="001_core changed"):
            await migrate(conn, db_settings)


async def test_partitions_are_created_ahead_and_dropped_past_retention(database: Database, db_schema: str) -> None:
    settings = DbSettings(dsn=database.settings.dsn, db_schema=db_schema, retention_days=5, partitions_ahead_days=5)
    today = datetime.now(UTC).date()
    async with database.acquire() as conn:
        # migrate made yesterday to 3 days ahead (the default); 5 days ahead adds two
        created, dropped = await maintain_partitions(conn, settings, today)
        assert created == [partition_name(today + timedelta(days=d)) for d in (4, 5)]
        assert dropped == []
        assert await maintain_partitions(conn, settings, today) == ([], [])
        # an event for a day that has no partition yet lands in the default partition ...
        later = datetime.combine(today + timedelta(days=7), time(12), tzinfo=UTC)
        await conn.execute("INSERT INTO events (ts, site, device_id, kind) VALUES ($1, 's', 'd', 'motion')", later)
        # ... and moves into its own partition when that day's partition is created, a week later
        created, dropped = await maintain_partitions(conn, settings, today + timedelta(days=8))
        days = await existing_partitions(conn, db_schema)
        where = await conn.fetchval("SELECT tableoid::regclass::text FROM events WHERE ts = $1", later)
        count = await conn.fetchval("SELECT count(*) FROM events")
    assert created == [partition_name(today + timedelta(days=d)) for d in range(7, 14)]
    assert where == partition_name(today + timedelta(days=7))
    assert count == 1
    # retention 5 days on day 8: days before day 3 go
    assert dropped == [partition_name(today + timedelta(days=d)) for d in (-1, 0, 1, 2)]
    assert min(days) == today + timedelta(days=3)
    assert max(days) == today + timedelta(days=13)


async def test_old_events_in_the_default_partition_are_purged(database: Database, db_schema: str) -> None:
    settings = DbSettings(dsn=database.settings.dsn, db_schema=db_schema, retention_days=3)
    async with database.acquire() as conn:
        old = datetime(2020, 1, 1, tzinfo=UTC)
        await conn.execute("INSERT INTO events (ts, site, device_id, kind) VALUES ($1, 's', 'd', 'motion')", old)
        await maintain_partitions(conn, settings, datetime.now(UTC).date())
        left = await conn.fetchval("SELECT count(*) FROM events WHERE ts = $1", old)
    assert left == 0


async def test_timescaledb_is_not_available_on_plain_postgresql(database: Database) -> None:
    async with database.acquire() as conn:
        assert await timescale.ensure_extension(conn) is None
        assert await timescale.installed(conn) is None


@pytest.mark.parametrize(
    ("version", "alter", "policy"),
    [
        ("2.21.1", "timescaledb.enable_columnstore = true", "CALL \"ts\".add_columnstore_policy('events'::regclass"),
        ("2.18.0", "timescaledb.segmentby = 'device_id'", "after => INTERVAL '7 days', if_not_exists => TRUE"),
        ("2.15.3", "timescaledb.compress,", "SELECT \"ts\".add_compression_policy('events'::regclass, compress_after"),
        ("2.13.0-dev", "timescaledb.compress_orderby = 'ts DESC, seq'", "if_not_exists => TRUE"),
    ],
)
def test_timescaledb_statements_follow_the_installed_version(version: str, alter: str, policy: str) -> None:
    info = timescale.TimescaleInfo(version=version, schema="ts")
    alter_sql, policy_sql = timescale.columnstore_statements(info, "events")
    assert alter in alter_sql
    assert alter_sql.startswith("ALTER TABLE events SET (")
    assert policy in policy_sql
    hypertable = timescale.hypertable_statement(info, "events")
    assert hypertable == (
        "SELECT \"ts\".create_hypertable('events'::regclass, \"ts\".by_range('ts', INTERVAL '1 day'), "
        "if_not_exists => TRUE)"
    )
    remove, add = timescale.retention_statements(info, "events", 90)
    assert "remove_retention_policy('events'::regclass, if_exists => TRUE)" in remove
    assert "add_retention_policy('events'::regclass, drop_after => INTERVAL '90 days', if_not_exists => TRUE)" in add


async def test_timescaledb_statements_parse_on_postgresql(database: Database) -> None:
    """The generated SQL is syntactically valid PostgreSQL (it fails only for want of the functions)."""
    info = timescale.TimescaleInfo(version="2.21.1", schema="public")
    statements = [
        timescale.hypertable_statement(info, "events"),
        *timescale.columnstore_statements(info, "events")[1:],
        *timescale.retention_statements(info, "events", 30),
        *timescale.columnstore_statements(timescale.TimescaleInfo("2.15.0", "public"), "events")[1:],
    ]
    async with database.acquire() as conn:
        for sql in statements:
            with pytest.raises(asyncpg.UndefinedFunctionError):
                await conn.execute(sql)
