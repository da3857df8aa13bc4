"""Native daily range partitions of `events`, for PostgreSQL without TimescaleDB.

One partition per UTC day (`events_pYYYYMMDD`), created a few days ahead, plus `events_default` for anything outside
them (late or very old events), so an insert never fails for want of a partition. Partitions wholly older than the
retention window are dropped. A new partition whose day already has rows in the default partition takes them over.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, time, timedelta

import asyncpg

from hub.settings import DbSettings

logger = logging.getLogger(__name__)

DEFAULT_PARTITION = "events_default"
_NAME = re.compile(r"^events_p(\d{8})$")
LATE_DAYS = 1  # also keep a partition for yesterday: devices that buffered overnight report late


def partition_name(day: date) -> str:
    """`events_p20261126` for 26 Nov 2026."""
    return f"events_p{day:%Y%m%d}"


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


async def existing_partitions(conn: asyncpg.Connection, schema: str) -> dict[date, str]:
    """The daily partitions of events in `schema`, by day."""
    rows = await conn.fetch(
        """
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE p.relname = 'events' AND n.nspname = $1
        """,
        schema,
    )
    days: dict[date, str] = {}
    for row in rows:
        match = _NAME.match(row["relname"])
        if match:
            days[datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC).date()] = row["relname"]
    return days


async def create_partition(conn: asyncpg.Connection, day: date) -> str:
    """Create and attach the partition for `day`, moving that day's rows out of the default partition first."""
    name = partition_name(day)
    start, end = _bounds(day)
    async with conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '5s'")
        await conn.execute(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        moved = await conn.execute(
            f"""
            WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts >= $1 AND ts < $2 RETURNING *)
            INSERT INTO {name} SELECT * FROM moved
            """,
            start,
            end,
        )
        await conn.execute(
            f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    logger.info("events partition created: %s (%s rows moved from default)", name, moved.split()[-1])
    return name


async def maintain(conn: asyncpg.Connection, settings: DbSettings, today: date) -> tuple[list[str], list[str]]:
    """Create partitions from yesterday to `partitions_ahead_days` ahead; drop those past `retention_days`."""
    have = await existing_partitions(conn, settings.db_schema)
    created: list[str] = []
    for offset in range(-LATE_DAYS, settings.partitions_ahead_days + 1):
        day = today + timedelta(days=offset)
        if day not in have:
            created.append(await create_partition(conn, day))
    cutoff = today - timedelta(days=settings.retention_days)
    dropped: list[str] = []
    for day, name in sorted(have.items()):
        if day < cutoff:
            async with conn.transaction():
                await conn.execute("SET LOCAL lock_timeout = '5s'")
                await conn.execute(f"DROP TABLE {name}")
            dropped.append(name)
            logger.info("events partition dropped: %s (older than %s days)", name, settings.retention_days)
    purged = await conn.execute(
        f"DELETE FROM {DEFAULT_PARTITION} WHERE ts < $1", datetime.combine(cutoff, time(0), tzinfo=UTC)
    )
    if purged != "DELETE 0":
        logger.info("events past retention removed from the default partition: %s", purged.split()[-1])
    return created, dropped
