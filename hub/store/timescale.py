"""Everything TimescaleDB-specific, in one place: detection, hypertable, columnstore (compression) and retention.

Written against the TimescaleDB 2.13+ API (`by_range`) with the hypercore names of 2.18+ (`enable_columnstore`,
`add_columnstore_policy`) and the compression names before that. Every statement is idempotent (`if_not_exists`,
or guarded by a catalog check) so `vaka migrate` can run at every start. Function calls are qualified with the
schema the extension lives in, because Vaka's connections set `search_path` to Vaka's own schema only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

logger = logging.getLogger(__name__)

EXTENSION = "timescaledb"
CHUNK_INTERVAL = "1 day"
COMPRESS_AFTER_DAYS = 7
SEGMENT_BY = "device_id"
# every column of the unique key (device_id, ts, seq) is a segmentby or orderby column, as TimescaleDB asks
ORDER_BY = "ts DESC, seq"


@dataclass(frozen=True, slots=True)
class TimescaleInfo:
    """The installed extension: its version and the schema its functions live in."""

    version: str
    schema: str

    @property
    def has_columnstore_api(self) -> bool:
        """True from 2.18, where compression became the columnstore (hypercore) and got new names."""
        return version_tuple(self.version) >= (2, 18)


def version_tuple(version: str) -> tuple[int, ...]:
    """'2.21.3' -> (2, 21, 3); ignores suffixes such as '-dev'."""
    parts: list[int] = []
    for part in version.split("."):
        digits = "".join(ch for ch in part.split("-")[0] if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_extension(conn: asyncpg.Connection) -> TimescaleInfo | None:
    """Return the installed TimescaleDB, creating it when installable; None when it is not available here.

    Creating the extension needs it in `shared_preload_libraries`: without that, TimescaleDB answers
    `CREATE EXTENSION` with a FATAL that closes the connection, so the setting is checked first and, when the library
    is not preloaded, Vaka says so once and falls back to native partitions without trying.
    """
    info = await installed(conn)
    if info is not None:
        return info
    available = await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = $1", EXTENSION)
    if not available:
        return None
    if not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
        # TimescaleDB is not a trusted extension: only a superuser creates it (and reads shared_preload_libraries)
        logger.warning(
            "timescaledb is installed but not created in this database, and this role may not create it; events "
            "use native partitions. To use TimescaleDB: a superuser runs CREATE EXTENSION timescaledb first"
        )
        return None
    preload = str(await conn.fetchval("SELECT current_setting('shared_preload_libraries')"))
    if not is_preloaded(preload):
        logger.warning(
            "timescaledb is installed but not in shared_preload_libraries (%r); events use native partitions. "
            "To use TimescaleDB: add timescaledb to shared_preload_libraries, restart PostgreSQL, and migrate a "
            "fresh database (an existing partitioned events table stays as it is)",
            preload,
        )
        return None
    try:
        async with conn.transaction():
            await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {EXTENSION}")
    except asyncpg.PostgresError as exc:
        logger.warning("timescaledb is installed but cannot be created (%s); using native partitions", exc)
        return None
    return await installed(conn)


def is_preloaded(shared_preload_libraries: str) -> bool:
    """True when the `shared_preload_libraries` value names TimescaleDB ('timescaledb', '$libdir/timescaledb', …)."""
    for entry in shared_preload_libraries.split(","):
        name = entry.strip().strip("'\"").rsplit("/", 1)[-1]
        if name.removesuffix(".so") == EXTENSION:
            return True
    return False


async def installed(conn: asyncpg.Connection) -> TimescaleInfo | None:
    """The TimescaleDB extension in this database, or None."""
    row = await conn.fetchrow(
        "SELECT extversion, extnamespace::regnamespace::text AS schema FROM pg_extension WHERE extname = $1",
        EXTENSION,
    )
    if row is None:
        return None
    return TimescaleInfo(version=str(row["extversion"]), schema=str(row["schema"]).strip('"'))


def hypertable_statement(info: TimescaleInfo, table: str) -> str:
    """Turn the (empty) events table into a hypertable with daily chunks."""
    ts = _ident(info.schema)
    return (
        f"SELECT {ts}.create_hypertable('{table}'::regclass, {ts}.by_range('ts', INTERVAL '{CHUNK_INTERVAL}'), "
        "if_not_exists => TRUE)"
    )


def columnstore_statements(info: TimescaleInfo, table: str) -> list[str]:
    """Enable the columnstore (compression before 2.18), segmented by device, and a policy for chunks a week old."""
    ts = _ident(info.schema)
    after = f"INTERVAL '{COMPRESS_AFTER_DAYS} days'"
    if info.has_columnstore_api:
        return [
            f"ALTER TABLE {table} SET (timescaledb.enable_columnstore = true, "
            f"timescaledb.segmentby = '{SEGMENT_BY}', timescaledb.orderby = '{ORDER_BY}')",
            f"CALL {ts}.add_columnstore_policy('{table}'::regclass, after => {after}, if_not_exists => TRUE)",
        ]
    return [
        f"ALTER TABLE {table} SET (timescaledb.compress, "
        f"timescaledb.compress_segmentby = '{SEGMENT_BY}', timescaledb.compress_orderby = '{ORDER_BY}')",
        f"SELECT {ts}.add_compression_policy('{table}'::regclass, compress_after => {after}, if_not_exists => TRUE)",
    ]


def retention_statements(info: TimescaleInfo, table: str, retention_days: int) -> list[str]:
    """Drop chunks older than the retention setting; replaced so a changed setting takes effect."""
    ts = _ident(info.schema)
    return [
        f"SELECT {ts}.remove_retention_policy('{table}'::regclass, if_exists => TRUE)",
        f"SELECT {ts}.add_retention_policy('{table}'::regclass, drop_after => INTERVAL '{int(retention_days)} days', "
        "if_not_exists => TRUE)",
    ]


async def compression_enabled(conn: asyncpg.Connection, schema: str, table: str) -> bool:
    """True when the hypertable already has compression (columnstore) settings; they are not changed again."""
    value = await conn.fetchval(
        "SELECT compression_enabled FROM timescaledb_information.hypertables "
        "WHERE hypertable_schema = $1 AND hypertable_name = $2",
        schema,
        table,
    )
    return bool(value)


async def retention_drop_after(conn: asyncpg.Connection, schema: str, table: str) -> str | None:
    """The `drop_after` of the table's retention policy as TimescaleDB stored it (e.g. '90 days'), or None."""
    value = await conn.fetchval(
        "SELECT config ->> 'drop_after' FROM timescaledb_information.jobs "
        "WHERE proc_name = 'policy_retention' AND hypertable_schema = $1 AND hypertable_name = $2 LIMIT 1",
        schema,
        table,
    )
    return None if value is None else str(value)


async def setup_events(conn: asyncpg.Connection, info: TimescaleInfo, schema: str, retention_days: int) -> None:
    """Make `events` a hypertable with a columnstore and a retention policy; safe to run at every start."""
    table = "events"
    await conn.execute(hypertable_statement(info, table))
    alter, policy = columnstore_statements(info, table)
    if not await compression_enabled(conn, schema, table):
        await conn.execute(alter)
    else:
        # already enabled (by an earlier start, or by default on newer versions): re-apply our segmentby/orderby;
        # versions that refuse to change settings once chunks are compressed keep what they have
        try:
            async with conn.transaction():
                await conn.execute(alter)
        except asyncpg.PostgresError as exc:
            logger.info("events columnstore settings kept as they are: %s", exc)
    await conn.execute(policy)
    current = await retention_drop_after(conn, schema, table)
    if current != f"{int(retention_days)} days":
        # a changed setting replaces the policy; an unchanged one is left alone (no new job at every start)
        for statement in retention_statements(info, table, retention_days):
            await conn.execute(statement)
    logger.info("events storage: timescaledb %s hypertable in schema %s", info.version, schema)
