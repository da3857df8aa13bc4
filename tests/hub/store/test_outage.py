"""Database outages against a PRIVATE PostgreSQL that the tests stop and start: nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from hub.metrics import Metrics
from hub.model import EventKind
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings, SpoolSettings
from hub.store.db import Database, DatabaseUnavailableError
from hub.store.migrate import migrate
from hub.store.spool import Spool
from hub.store.writer import Writer
from tests.hub.store.conftest import Acks, make_events, segment_files
from tests.services import PrivatePostgres


def _settings(pg: PrivatePostgres) -> DbSettings:
    return DbSettings(
        dsn=pg.dsn,
        db_schema="vaka",
        connect_timeout_s=1.0,
        command_timeout_s=2.0,
        write_deadline_s=1.0,
        batch_size=200,
        flush_interval_s=0.05,
    )


async def test_open_while_the_database_is_down_does_not_raise_and_recovers(
    private_postgres: PrivatePostgres, metrics: Metrics, spawner: Spawner
) -> None:
    private_postgres.stop()
    db = Database(_settings(private_postgres), metrics, spawner=spawner)
    started = time.monotonic()
    await db.open()
    assert not db.up
    assert time.monotonic() - started < 3
    with pytest.raises(DatabaseUnavailableError):
        async with db.acquire():
            pass
    assert metrics.db_up._value.get() == 0

    await asyncio.to_thread(private_postgres.start)
    assert await db.wait_up(timeout_s=15)
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SHOW search_path") == "vaka"
        assert await conn.fetchval("SHOW statement_timeout") == "2s"
    assert metrics.db_up._value.get() == 1
    await db.close()


async def test_database_stopped_mid_stream_loses_nothing_and_duplicates_nothing(
    private_postgres: PrivatePostgres, metrics: Metrics, tmp_path: Path, spawner: Spawner
) -> None:
    settings = _settings(private_postgres)
    db = Database(settings, metrics, spawner=spawner)
    await db.open()
    async with db.acquire() as conn:
        await migrate(conn, settings)
    spool = Spool(SpoolSettings(directory=tmp_path / "spool", fsync_interval_s=0.005), metrics, spawner=spawner)
    writer = Writer(db, spool, settings, metrics, spawner=spawner)
    task = asyncio.get_running_loop().create_task(writer.run_loop())
    acks = Acks()
    total = 6000
    events = make_events("outage", total // 2) + make_events(
        "outage", total // 2, start=total // 2, kind=EventKind.ALARM_BUTTON
    )
    events.sort(key=lambda e: e.seq)
    states: set[str] = set()
    for i in range(0, total, 20):
        writer.submit(events[i : i + 20], [], acks.callback(i))
        if i == 1000:
            await asyncio.to_thread(private_postgres.stop)
        if i == 4000:
            await asyncio.to_thread(private_postgres.start)
        if i % 200 == 0:
            await asyncio.sleep(0.02)
            states.add(writer.state)
    # the broker re-delivers a few messages from before the outage: still stored once
    writer.submit(events[:500], [], acks.callback(-1))
    assert await writer.wait_drained(timeout_s=30)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await writer.close()
    async with db.acquire() as conn:
        stored = await conn.fetch("SELECT seq FROM events WHERE site = 'outage'")
    assert writer.state == "ok"
    await db.close()
    await spool.close()

    assert "spooling" in states
    assert len(stored) == total
    assert {r["seq"] for r in stored} == set(range(total))
    assert acks.all_once()
    assert len(acks.calls) == total // 20 + 1
    assert metrics.events_spooled._value.get() > 0
    assert metrics.events_deferred._value.get() == 0
    assert segment_files(tmp_path / "spool") == []
