"""Native daily range partitions of `events`, for PostgreSQL without TimescaleDB.

One partition per UTC day (`events_pYYYYMMDD`), created a few days ahead, plus `events_default` for anything outside
them (late or very old events), so an insert never fails for want of a partition. Partitions wholly older than the
retention window are dropped. A new partition whose day already has rows in the default partition takes them over.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime

import asyncpg

from hub.settings import DbSettings

logger = logging.getLogger(__name__)

DEFAULT_PARTITION = "events_default"
_NAME = re.compile(r"^events_p(\d{8})$")
LATE_DAYS = 1  # also keep a partition for yesterday: devices that buffered overnight report late


def partition_name(day: date) -> str:
    """`events_p20261126` for 26 Nov 2026."""
    return f"events_p{day:%Y%m%d}"


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


async def maintain(conn: asyncpg.Connection, settings: DbSettings, today: date) -> tuple[list[str], list[str]]:
    """Create partitions from yesterday to `partitions_ahead_days` ahead; drop those past `retention_days`.

    The work is done by `vaka_maintain_partitions` (migration 100), which runs with the schema owner's rights: the
    hub's runtime role may call it, but owns no table and could not create a partition itself.
    """
    rows = await conn.fetch(
        "SELECT action, partition_name FROM vaka_maintain_partitions($1, $2, $3, $4)",
        today,
        LATE_DAYS,
        settings.partitions_ahead_days,
        settings.retention_days,
    )
    created = [r["partition_name"] for r in rows if r["action"] == "created"]
    dropped = [r["partition_name"] for r in rows if r["action"] == "dropped"]
    for name in created:
        logger.info("events partition created: %s", name)
    for name in dropped:
        logger.info("events partition dropped: %s (older than %s days)", name, settings.retention_days)
    return created, dropped
