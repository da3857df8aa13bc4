"""The production store against a real TimescaleDB: hypertable, columnstore, retention, exactly-once writes.

Runs when VAKA_TEST_TIMESCALE_DSN points at a PostgreSQL with timescaledb in shared_preload_libraries (the
`timescale/timescaledb` image, or a private cluster). Each test works in its own schema; the extension itself lives
in `public`, created by the fixture, so dropping a test's schema never drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from hub.metrics import Metrics
from hub.model import Event, EventKind
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings, SpoolSettings
from hub.store import rollup, timescale
from hub.store.db import Database
from hub.store.migrate import maintain_partitions, migrate, storage_mode
from hub.store.spool import Spool
from hub.store.writer import Writer
from tests.hub.store.conftest import Acks

TIMESCALE_DSN = os.environ.get("VAKA_TEST_TIMESCALE_DSN", "")

pytestmark = pytest.mark.skipif(
    not TIMESCALE_DSN,
    reason="VAKA_TEST_TIMESCALE_DSN is not set: no TimescaleDB to test against "
    "(set it to a PostgreSQL with timescaledb in shared_preload_libraries)",
)


@pytest.fixture
async def ts_settings(unique: str) -> AsyncIterator[DbSettings]:
    """Settings for a fresh schema in the TimescaleDB database; the schema is dropped afterwards."""
    schema = f"ts_{unique}"
    conn = await asyncpg.connect(TIMESCALE_DSN)
    try:
        with contextlib.suppress(asyncpg.UniqueViolationError, asyncpg.DuplicateObjectError):
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb SCHEMA public")
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    yield DbSettings(dsn=TIMESCALE_DSN, db_schema=schema, retention_days=30)  # type: ignore[arg-type]
    conn = await asyncpg.connect(TIMESCALE_DSN)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def ts_db(ts_settings: DbSettings, metrics: Metrics, spawner: Spawner) -> AsyncIterator[Database]:
    """An open Database on TimescaleDB, migrated in the test's schema, its policies run only when a test says so.

    TimescaleDB's scheduler starts a new policy at once: a retention run that lands between a test's insert of old
    events and its own `run_job` dropped them first (seen once in four runs)."""
    db = Database(ts_settings, metrics, spawner=spawner)
    await db.open()
    async with db.acquire() as conn:
        await migrate(conn, ts_settings)
        await conn.execute(
            "SELECT public.alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
            "WHERE hypertable_schema = $1",
            ts_settings.db_schema,
        )
    yield db
    await db.close()


def events_at(site: str, start: datetime, count: int, *, step: timedelta = timedelta(minutes=1)) -> list[Event]:
    return [
        Event(
            ts=start + i * step,
            site=site,
            device_id=f"{site}-d{i % 5}",
            kind=EventKind.TEMPERATURE,
            value=20.0 + i % 3,
            unit="Cel",
            seq=i,
            topic=f"vaka/v1/{site}/{site}-d{i % 5}/telemetry",
        )
        for i in range(count)
    ]


async def jobs(conn: asyncpg.Connection, schema: str) -> dict[str, list[asyncpg.Record]]:
    rows = await conn.fetch(
        "SELECT job_id, proc_name, config FROM timescaledb_information.jobs "
        "WHERE hypertable_schema = $1 AND hypertable_name = 'events' ORDER BY job_id",
        schema,
    )
    found: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        found.setdefault(row["proc_name"], []).append(row)
    return found


async def test_migrate_makes_events_a_hypertable_with_columnstore_and_retention(
    ts_db: Database, ts_settings: DbSettings
) -> None:
    schema = ts_settings.db_schema
    async with ts_db.acquire() as conn:
        assert await storage_mode(conn, schema) == "timescaledb"
        info = await timescale.installed(conn)
        assert info is not None
        assert info.has_columnstore_api
        dims = await conn.fetch(
            "SELECT column_name, time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_schema = $1 AND hypertable_name = 'events'",
            schema,
        )
        settings = await conn.fetch(
            "SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc "
            "FROM timescaledb_information.compression_settings "
            "WHERE hypertable_schema = $1 AND hypertable_name = 'events'",
            schema,
        )
        found = await jobs(conn, schema)
    assert [(d["column_name"], d["time_interval"]) for d in dims] == [("ts", timedelta(days=1))]
    segment = {s["attname"] for s in settings if s["segmentby_column_index"] is not None}
    order = [(s["attname"], s["orderby_asc"]) for s in sorted(settings, key=lambda s: s["orderby_column_index"] or 0)]
    assert segment == {"device_id"}
    assert ("ts", False) in order
    assert ("seq", True) in order
    assert len(found["policy_compression"]) == 1
    assert len(found["policy_retention"]) == 1
    assert found["policy_retention"][0]["config"].count("30 days") == 1


async def test_migrating_again_adds_no_jobs_and_a_new_retention_replaces_the_old(
    ts_db: Database, ts_settings: DbSettings
) -> None:
    schema = ts_settings.db_schema
    async with ts_db.acquire() as conn:
        assert await migrate(conn, ts_settings) == []
        assert await maintain_partitions(conn, ts_settings, datetime.now(UTC).date()) == ([], [])
        again = await jobs(conn, schema)
        await migrate(conn, ts_settings.model_copy(update={"retention_days": 60}))
        changed = await jobs(conn, schema)
    assert [len(again[k]) for k in ("policy_compression", "policy_retention")] == [1, 1]
    assert len(changed["policy_retention"]) == 1
    assert await timescale_drop_after(ts_db, schema) == "60 days"


async def timescale_drop_after(db: Database, schema: str) -> str | None:
    async with db.acquire() as conn:
        return await timescale.retention_drop_after(conn, schema, "events")


async def test_writer_stores_each_event_once_in_the_hypertable_also_after_compression(
    ts_db: Database, ts_settings: DbSettings, metrics: Metrics, tmp_path: object, unique: str, spawner: Spawner
) -> None:
    spool_settings = SpoolSettings(directory=f"{tmp_path}/spool", fsync_interval_s=0.005)  # type: ignore[arg-type]
    spool = Spool(spool_settings, metrics, spawner=spawner)
    await spool.open()
    writer = Writer(ts_db, spool, ts_settings, metrics, spawner=spawner)
    task = asyncio.get_running_loop().create_task(writer.run_loop(), name="test.writer")
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    events = events_at(unique, old, 600)
    acks = Acks()
    try:
        for i in range(0, 600, 20):
            writer.submit(events[i : i + 20], [], acks.callback(i))
        await writer.flush()
        async with ts_db.acquire() as conn:
            chunks = await conn.fetch(
                "SELECT format('%I.%I', chunk_schema, chunk_name) AS chunk FROM timescaledb_information.chunks "
                "WHERE hypertable_schema = $1 AND hypertable_name = 'events'",
                ts_settings.db_schema,
            )
            assert chunks
            for chunk in chunks:
                await conn.execute("CALL public.convert_to_columnstore($1::regclass)", chunk["chunk"])
            compressed = await conn.fetchval(
                "SELECT count(*) FROM timescaledb_information.chunks "
                "WHERE hypertable_schema = $1 AND hypertable_name = 'events' AND is_compressed",
                ts_settings.db_schema,
            )
            assert compressed == len(chunks)
        # the broker re-delivers, or a spool segment drains twice: rows land in compressed chunks a second time
        for i in range(0, 600, 20):
            writer.submit(events[i : i + 20], [], acks.callback(10_000 + i))
        await writer.flush()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.close()
        await spool.close()
    async with ts_db.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM events WHERE site = $1", unique)
        total = await conn.fetchval("SELECT sum(value) FROM events WHERE site = $1", unique)
    assert count == 600
    assert total == sum(e.value or 0 for e in events)
    assert acks.all_once()
    assert metrics.events_written._value.get() == 600
    assert metrics.events_duplicate._value.get() == 600


async def test_retention_job_drops_chunks_past_retention_and_keeps_the_rest(
    ts_db: Database, ts_settings: DbSettings, unique: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    async with ts_db.acquire() as conn:
        for age_days in (45, 40, 2):
            await conn.executemany(
                "INSERT INTO events (ts, site, device_id, kind, value, seq) VALUES ($1, $2, $3, 'temperature', 21, $4)",
                [
                    (now - timedelta(days=age_days, minutes=i), unique, f"{unique}-d", age_days * 100 + i)
                    for i in range(5)
                ],
            )
        job_id = (await jobs(conn, ts_settings.db_schema))["policy_retention"][0]["job_id"]
        await conn.execute("CALL public.run_job($1)", job_id)
        left = await conn.fetchval("SELECT count(*) FROM events WHERE site = $1", unique)
        oldest = await conn.fetchval("SELECT min(ts) FROM events WHERE site = $1", unique)
    assert left == 5
    assert now - oldest < timedelta(days=3)


async def test_columnstore_policy_job_compresses_week_old_chunks(
    ts_db: Database, ts_settings: DbSettings, unique: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    async with ts_db.acquire() as conn:
        await conn.executemany(
            "INSERT INTO events (ts, site, device_id, kind, value, seq) VALUES ($1, $2, $3, 'motion', 1, $4)",
            [(now - timedelta(days=days), unique, f"{unique}-pir", days) for days in (9, 8, 1)],
        )
        job_id = (await jobs(conn, ts_settings.db_schema))["policy_compression"][0]["job_id"]
        await conn.execute("CALL public.run_job($1)", job_id)
        rows = await conn.fetch(
            "SELECT range_end, is_compressed FROM timescaledb_information.chunks "
            "WHERE hypertable_schema = $1 AND hypertable_name = 'events' ORDER BY range_start",
            ts_settings.db_schema,
        )
        readable = await conn.fetchval("SELECT count(*) FROM events WHERE site = $1", unique)
    assert [r["is_compressed"] for r in rows] == [True, True, False]
    assert readable == 3


async def test_follow_up_rollup_is_a_continuous_aggregate_that_outlives_retention(
    ts_db: Database, ts_settings: DbSettings, unique: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    async with ts_db.acquire() as conn:
        assert await rollup.mode(conn) == "timescaledb"
        await conn.executemany(
            "INSERT INTO events (ts, site, device_id, kind, value, seq) VALUES ($1, $2, $3, $4, 1, $5)",
            [
                (now - timedelta(days=age, hours=12, minutes=i), unique, f"{unique}-bed", kind, i)
                for age in (40, 3)
                for i, kind in enumerate(("bed_exit", "heartbeat", "medication_taken"))
            ],
        )
        await rollup.refresh(conn, now, since=(now - timedelta(days=60)).date())
        before = await conn.fetch(
            "SELECT day, events, activity_events, med_taken FROM followup_device_day WHERE site = $1 ORDER BY day",
            unique,
        )
        job_id = (await jobs(conn, ts_settings.db_schema))["policy_retention"][0]["job_id"]
        await conn.execute("CALL public.run_job($1)", job_id)
        raw = await conn.fetchval("SELECT count(*) FROM events WHERE site = $1", unique)
        after = await conn.fetch(
            "SELECT day, events, activity_events, med_taken FROM followup_device_day WHERE site = $1 ORDER BY day",
            unique,
        )
    assert [(r["events"], r["activity_events"], r["med_taken"]) for r in before] == [(3, 2, 1), (3, 2, 1)]
    assert raw == 3  # the 40-day-old events are past the 30-day retention
    assert [tuple(r) for r in after] == [tuple(r) for r in before]  # the rollup keeps them
