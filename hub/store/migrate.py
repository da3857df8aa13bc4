"""Plain-SQL migrations (`hub/store/migrations/NNN_name.sql`) and the events storage set-up.

Each pending file runs in its own transaction and is recorded with its SHA-256 in `schema_migrations`; a file changed
after it was applied stops the migration. Numbers 010-049 are reserved for the alarm desk. After the files, `events`
is set up: a TimescaleDB hypertable (columnstore, retention) when the extension is available, else a natively
range-partitioned table with daily partitions. Concurrent migrations of one schema wait on an advisory lock.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import asyncpg

from hub.model import VakaError
from hub.settings import DbSettings
from hub.store import partitions, roles, rollup, timescale

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

StorageMode = Literal["timescaledb", "native"]

_EVENTS_COLUMNS_SQL = """
    ts           timestamptz NOT NULL,
    site         text NOT NULL,
    device_id    text NOT NULL,
    resident_id  text,
    kind         text NOT NULL,
    value        double precision,
    unit         text,
    attrs        jsonb NOT NULL DEFAULT '{}'::jsonb,
    seq          bigint NOT NULL DEFAULT 0,
    ref          text,
    received_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_key UNIQUE (device_id, ts, seq)
"""
_EVENTS_INDEXES_SQL = (
    "CREATE INDEX IF NOT EXISTS events_site_ts_idx ON events (site, ts DESC)",
    "CREATE INDEX IF NOT EXISTS events_resident_ts_idx ON events (resident_id, ts DESC) WHERE resident_id IS NOT NULL",
)


class MigrationError(VakaError):
    """A migration file is malformed, changed after it was applied, or failed."""


class StorageError(MigrationError):
    """The database cannot hold events the way `db.storage` says they must be held (TimescaleDB intended, absent)."""


class SchemaBehindError(MigrationError):
    """The schema needs migrations the connected (runtime) role may not run, and no owner DSN is configured."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str
    checksum: str


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in order; raises MigrationError on a stray file or a duplicate number."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            msg = f"migration file name {path.name!r} is not NNN_name.sql"
            raise MigrationError(msg)
        version = int(match.group(1))
        if version in found:
            msg = f"two migrations numbered {version:03d}"
            raise MigrationError(msg)
        data = path.read_bytes()
        found[version] = Migration(version, path.stem, data.decode(), hashlib.sha256(data).hexdigest())
    return [found[v] for v in sorted(found)]


async def migrate(conn: asyncpg.Connection, settings: DbSettings) -> list[str]:
    """Apply pending migrations in order and set up events storage; returns the names applied now (idempotent)."""
    schema = settings.db_schema
    if not await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema):
        # only then: even with IF NOT EXISTS, CREATE SCHEMA needs CREATE on the database, which an owner given
        # its schema by an admin does not have
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    await conn.execute("SELECT set_config('search_path', $1, false)", schema)
    await conn.execute("SELECT pg_advisory_lock(hashtext('vaka.migrate.' || $1))", schema)
    try:
        if settings.storage == "timescaledb" and await storage_mode(conn, schema) is None:
            # refused before any table exists: the database is left as it was
            info = await timescale.ensure_extension(conn)
            if info is None:
                raise StorageError(_storage_problem(None, schema))
        applied = await _apply_files(conn)
        mode = await setup_events_storage(conn, settings)
        await rollup.ensure(conn, mode)
        if mode == "native":
            await partitions.maintain(conn, settings, datetime.now(UTC).date())
        await roles.apply_grants(conn, settings)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext('vaka.migrate.' || $1))", schema)
    return applied


async def pending_migrations(conn: asyncpg.Connection, settings: DbSettings) -> list[str]:
    """What `migrate` would do in this schema (migration names, `events storage`); raises on an edited migration."""
    schema = settings.db_schema
    usable = await conn.fetchval(
        "SELECT has_schema_privilege(n.oid, 'USAGE') FROM pg_namespace n WHERE n.nspname = $1", schema
    )
    if usable is False:
        return ["the grants for this role (db.runtime_role)"]
    has_table = usable and await conn.fetchval(
        "SELECT to_regclass(format('%I.schema_migrations', $1::text)) IS NOT NULL", schema
    )
    if not has_table:
        return [m.name for m in discover()]
    rows = await conn.fetch(f'SELECT version, checksum FROM "{schema}".schema_migrations')
    done: dict[int, str] = {r["version"]: r["checksum"] for r in rows}
    behind: list[str] = []
    for migration in discover():
        checksum = done.get(migration.version)
        if checksum is None:
            behind.append(migration.name)
        elif checksum != migration.checksum:
            msg = f"migration {migration.name} changed after it was applied; add a new migration instead"
            raise MigrationError(msg)
    if await storage_mode(conn, schema) is None:
        behind.append("events storage")
    return behind


async def migrate_as_owner(settings: DbSettings) -> list[str]:
    """Run `migrate` on a connection of its own as the owner (`owner_dsn`)."""
    assert settings.owner_dsn is not None
    conn = await asyncpg.connect(
        settings.owner_dsn.get_secret_value(), timeout=settings.connect_timeout_s, command_timeout=60
    )
    try:
        return await migrate(conn, settings)
    finally:
        await conn.close()


def _storage_problem(mode: StorageMode | None, schema: str) -> str:
    if mode == "native":
        return (
            f"db.storage is timescaledb but events in schema {schema!r} is a native partitioned table (it was "
            "created without TimescaleDB and is never converted): restore a backup into a TimescaleDB database "
            "(docs/operations.md, Backup and restore), or set db.storage=auto to run on native partitions"
        )
    return (
        "db.storage is timescaledb but this database has no timescaledb extension (plain PostgreSQL, or TimescaleDB "
        "not in shared_preload_libraries, or created by no superuser): run the database image's init "
        "(deploy/timescaledb/vaka-init.sh creates it) or, as a superuser, CREATE EXTENSION timescaledb; "
        "or set db.storage=auto to run on native partitions"
    )


async def check_storage(conn: asyncpg.Connection, settings: DbSettings) -> None:
    """For `vaka serve`: raise StorageError when `db.storage` says TimescaleDB and events is not a hypertable."""
    if settings.storage != "timescaledb":
        return
    mode = await storage_mode(conn, settings.db_schema)
    if mode == "native" or (mode is None and await timescale.installed(conn) is None):
        raise StorageError(_storage_problem(mode, settings.db_schema))


async def ensure_current(conn: asyncpg.Connection, settings: DbSettings) -> list[str]:
    """For `vaka serve`: nothing when the schema is current; else migrate as the owner when `owner_dsn` is set,
    else raise SchemaBehindError saying to run `vaka migrate`. The runtime role itself never migrates. Raises
    StorageError first when events is not stored as `db.storage` says (the hub refuses to start then)."""
    await check_storage(conn, settings)
    behind = await pending_migrations(conn, settings)
    if not behind:
        return []
    if settings.owner_dsn is None:
        shown = ", ".join(behind[:4]) + (f" and {len(behind) - 4} more" if len(behind) > 4 else "")
        msg = (
            f"the database schema {settings.db_schema!r} is not current (pending: {shown}); run `vaka migrate` "
            "(it connects as db.owner_dsn), or set db.owner_dsn so the hub migrates at start as the owner"
        )
        raise SchemaBehindError(msg)
    return await migrate_as_owner(settings)


async def _apply_files(conn: asyncpg.Connection) -> list[str]:
    await conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version     integer PRIMARY KEY,
            name        text NOT NULL,
            checksum    text NOT NULL,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    done = {r["version"]: r for r in await conn.fetch("SELECT version, name, checksum FROM schema_migrations")}
    applied: list[str] = []
    for migration in discover():
        row = done.get(migration.version)
        if row is not None:
            if row["checksum"] != migration.checksum:
                msg = f"migration {migration.name} changed after it was applied; add a new migration instead"
                raise MigrationError(msg)
            continue
        try:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
        except asyncpg.PostgresError as exc:
            msg = f"migration {migration.name} failed: {exc}"
            raise MigrationError(msg) from exc
        logger.info("migration applied: %s", migration.name)
        applied.append(migration.name)
    return applied


async def storage_mode(conn: asyncpg.Connection, schema: str) -> StorageMode | None:
    """How `events` is stored in `schema`, or None before it exists."""
    relkind = await conn.fetchval(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname = 'events'",
        schema,
    )
    if relkind is None:
        return None
    return "native" if relkind == b"p" or relkind == "p" else "timescaledb"


async def setup_events_storage(conn: asyncpg.Connection, settings: DbSettings) -> StorageMode:
    """Create `events` if missing (hypertable or partitioned) and keep its TimescaleDB policies current."""
    schema = settings.db_schema
    mode = await storage_mode(conn, schema)
    info = await timescale.ensure_extension(conn) if mode != "native" else None
    if settings.storage == "timescaledb" and (mode == "native" or info is None):
        # before anything is created: a native events table made now is never converted later
        raise StorageError(_storage_problem(mode, schema))
    if mode is None:
        async with conn.transaction():
            if info is not None:
                await conn.execute(f"CREATE TABLE events ({_EVENTS_COLUMNS_SQL})")
            else:
                await conn.execute(f"CREATE TABLE events ({_EVENTS_COLUMNS_SQL}) PARTITION BY RANGE (ts)")
                await conn.execute(f"CREATE TABLE {partitions.DEFAULT_PARTITION} PARTITION OF events DEFAULT")
            for statement in _EVENTS_INDEXES_SQL:
                await conn.execute(statement)
        mode = "timescaledb" if info is not None else "native"
        logger.info("events table created (%s)", mode)
    if mode == "timescaledb":
        if info is None:
            msg = "events is a plain table but the timescaledb extension is gone"
            raise MigrationError(msg)
        async with conn.transaction():
            await timescale.setup_events(conn, info, schema, settings.retention_days)
    return mode


async def maintain_partitions(
    conn: asyncpg.Connection, settings: DbSettings, today: date
) -> tuple[list[str], list[str]]:
    """Create daily partitions ahead and drop those past retention: (created, dropped). A no-op on TimescaleDB."""
    if await storage_mode(conn, settings.db_schema) != "native":
        return [], []
    # the same lock as migrate: two hubs maintaining at once would race to create the same partition
    await conn.execute("SELECT pg_advisory_lock(hashtext('vaka.migrate.' || $1))", settings.db_schema)
    try:
        return await partitions.maintain(conn, settings, today)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext('vaka.migrate.' || $1))", settings.db_schema)
