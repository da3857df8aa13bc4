"""The daily events rollup the indicators read: one row per device and local day.

`followup_device_day (day, site, device_id, events, activity_events, med_due, med_taken, med_missed, med_late)`:
- on TimescaleDB a view over a continuous aggregate (`time_bucket('1 day', ts, ZONE)`), kept current by a refresh
  policy and real-time aggregation, and kept after the raw chunks are dropped by the events retention;
- on plain PostgreSQL a table that `refresh()` upserts from `events` for the days not yet final (the hub calls it
  every few minutes, `vaka report` and `vaka indicators` before they read).
Days are local days in `ZONE`: one fixed zone, so both paths bucket identically (the sites of one hub share a zone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from hub.store import timescale

logger = logging.getLogger(__name__)

ZONE = "Europe/Stockholm"
# kinds that only say the device is alive; any other kind means the technology was in use
SUPERVISION_KINDS = ("heartbeat", "battery", "device_online", "device_offline")
# a day is final once it ended this long ago (late events and the spool drain have arrived)
SETTLE = timedelta(hours=2)

_SUPERVISION_SQL = ", ".join(f"'{k}'" for k in SUPERVISION_KINDS)
_AGGREGATES_SQL = f"""
    count(*) AS events,
    count(*) FILTER (WHERE kind NOT IN ({_SUPERVISION_SQL})) AS activity_events,
    count(*) FILTER (WHERE kind = 'medication_due') AS med_due,
    count(*) FILTER (WHERE kind = 'medication_taken') AS med_taken,
    count(*) FILTER (WHERE kind = 'medication_missed') AS med_missed,
    count(*) FILTER (WHERE kind = 'medication_late') AS med_late
"""
_COLUMNS = "events, activity_events, med_due, med_taken, med_missed, med_late"


def _table_sql(name: str, period: str) -> str:
    """A rollup table: one row per device and `period` ('day' or 'month'), with its counts."""
    counts = ", ".join(f"{c} bigint NOT NULL" for c in _COLUMNS.split(", "))
    return f"""
CREATE TABLE IF NOT EXISTS {name} (
    {period} date NOT NULL, site text NOT NULL, device_id text NOT NULL, {counts},
    PRIMARY KEY ({period}, device_id)
);
CREATE INDEX IF NOT EXISTS {name}_site ON {name} (site, {period});
"""


_NATIVE_TABLE_SQL = _table_sql("followup_device_day", "day")
# whole months per device, summed from the days: what a monthly report reads (12 rows a device a year, not 365)
_MONTH_TABLE_SQL = _table_sql("followup_device_month", "month")


async def mode(conn: asyncpg.Connection) -> str | None:
    """'timescaledb' (view over a continuous aggregate), 'native' (table) or None before set-up."""
    kind = await conn.fetchval(
        "SELECT c.relkind FROM pg_class c WHERE c.relname = 'followup_device_day' "
        "AND c.relnamespace = current_schema()::regnamespace"
    )
    if kind is None:
        return None
    return "timescaledb" if kind in (b"v", "v") else "native"


async def ensure(conn: asyncpg.Connection, storage: str) -> None:
    """Create the rollup for the events storage mode ('timescaledb' or 'native'); idempotent."""
    await conn.execute(_MONTH_TABLE_SQL)
    if await mode(conn) is not None:
        return
    if storage == "timescaledb":
        info = await timescale.installed(conn)
        if info is None:
            msg = "events is a hypertable but the timescaledb extension is not installed"
            raise RuntimeError(msg)
        ts = f'"{info.schema}"'
        # a continuous aggregate cannot be created inside a transaction block
        await conn.execute(
            f"""
            CREATE MATERIALIZED VIEW IF NOT EXISTS followup_device_day_cagg
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT {ts}.time_bucket(INTERVAL '1 day', ts, '{ZONE}') AS bucket, site, device_id, {_AGGREGATES_SQL}
            FROM events GROUP BY bucket, site, device_id WITH NO DATA
            """
        )
        await conn.execute(
            f"SELECT {ts}.add_continuous_aggregate_policy('followup_device_day_cagg', "
            "start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 hour', "
            "schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE)"
        )
        await conn.execute(
            f"""
            CREATE OR REPLACE VIEW followup_device_day AS
            SELECT (bucket AT TIME ZONE '{ZONE}')::date AS day, site, device_id, {_COLUMNS}
            FROM followup_device_day_cagg
            """
        )
    else:
        await conn.execute(_NATIVE_TABLE_SQL)
        await conn.execute(
            "CREATE INDEX IF NOT EXISTS followup_device_day_device ON followup_device_day (device_id, day)"
        )
    logger.info("follow-up rollup created (%s)", storage)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


async def refresh(conn: asyncpg.Connection, now: datetime, since: date | None = None) -> int:
    """Bring the rollup up to `now`; returns the number of (device, day) rows written (0 on TimescaleDB).

    On plain PostgreSQL it recomputes every day from the last non-final one (or `since`) to today and upserts; on
    TimescaleDB it asks for a refresh of the same window so that a report sees settled numbers at once.
    """
    storage = await mode(conn)
    today = now.astimezone(ZoneInfo(ZONE)).date()
    if storage is None:
        return 0
    if since is None:
        refreshed_to = await conn.fetchval("SELECT refreshed_to FROM followup_refresh")
        since = refreshed_to if refreshed_to is not None else date.min
    first = await conn.fetchval("SELECT min(ts) FROM events")
    if first is None:
        return 0
    # never recompute days whose events are gone (past retention): their rollup rows are all that is left
    since = max(since, first.astimezone(ZoneInfo(ZONE)).date())
    start, end = _day_start(since), _day_start(today + timedelta(days=1))
    if storage == "timescaledb":
        info = await timescale.installed(conn)
        assert info is not None
        try:
            await conn.execute(
                f'CALL "{info.schema}".refresh_continuous_aggregate($1::regclass, $2::timestamptz, $3::timestamptz)',
                "followup_device_day_cagg",
                start,
                end,
            )
        except (asyncpg.InsufficientPrivilegeError, asyncpg.LockNotAvailableError) as exc:
            # the hub's least-privilege role does not own the aggregate, or TimescaleDB's own policy job is refreshing
            # it right now: that job and real-time aggregation keep the days current; the months are rebuilt anyway
            logger.debug("continuous aggregate left to its refresh policy (%s)", exc.__class__.__name__)
        written = 0
    else:
        async with conn.transaction():
            # the first refresh after a long time reads many days of events: longer than the hub's usual limit
            await conn.execute("SET LOCAL statement_timeout = '30min'")
            await conn.execute("DELETE FROM followup_device_day WHERE day >= $1", since)
            status = await conn.execute(
                f"""
                INSERT INTO followup_device_day (day, site, device_id, {_COLUMNS})
                SELECT (ts AT TIME ZONE '{ZONE}')::date, site, device_id, {_AGGREGATES_SQL}
                FROM events WHERE ts >= $1 AND ts < $2
                GROUP BY 1, site, device_id
                """,
                start,
                end,
            )
            written = int(status.split()[-1])
            # in the same transaction: a reader sees the days and their months change together
            await rebuild_months(conn, since)
    if storage == "timescaledb":
        await rebuild_months(conn, since)
    # the first day not yet final is where the next refresh starts
    settled = (now - SETTLE).astimezone(ZoneInfo(ZONE)).date()
    await conn.execute(
        "INSERT INTO followup_refresh (id, refreshed_to, refreshed_at) VALUES (1, $1, $2) "
        "ON CONFLICT (id) DO UPDATE SET refreshed_to = EXCLUDED.refreshed_to, refreshed_at = EXCLUDED.refreshed_at",
        settled,
        now,
    )
    return written


async def rebuild_months(conn: asyncpg.Connection, since: date) -> None:
    """Recompute the month rows from the month of `since` on, from the day rows."""
    first = since.replace(day=1)
    async with conn.transaction():
        await conn.execute("SET LOCAL statement_timeout = '30min'")
        await conn.execute("DELETE FROM followup_device_month WHERE month >= $1", first)
        sums = ", ".join(f"sum({c})" for c in _COLUMNS.split(", "))
        await conn.execute(
            f"""
            INSERT INTO followup_device_month (month, site, device_id, {_COLUMNS})
            SELECT date_trunc('month', day)::date, site, device_id, {sums}
            FROM followup_device_day WHERE day >= $1 GROUP BY 1, site, device_id
            """,
            first,
        )


async def refresh_loop(dsn: str, schema: str, interval_s: float, now: Callable[[], datetime]) -> None:
    """Keep the rollup current (on TimescaleDB the days also by the aggregate's own policy): every `interval_s`,
    on a connection of its own without the hub's statement limit, so a long refresh never touches the alarm path."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            conn = await asyncpg.connect(dsn, timeout=10, server_settings={"search_path": schema})
            try:
                rows = await refresh(conn, now())
                logger.debug("follow-up rollup refreshed: %s rows", rows)
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            logger.warning("follow-up rollup not refreshed (%s); next try in %.0f s", exc, interval_s)
