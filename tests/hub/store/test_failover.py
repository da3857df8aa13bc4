"""The database between two primaries (a Patroni failover, docs/ha.md), against a PRIVATE PostgreSQL made read-only.

While a replicated database moves its primary, the hub meets nodes that answer but take no writes: the standby it
reached before the promotion, or the old primary demoted. That is the database being away, not a bad row: what
was to be written waits in the spool and reaches the database once a primary takes writes, never stored as a
rejection or dropped. Here one PostgreSQL is switched read-only (`default_transaction_read_only`, what a standby
reports) and back.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import asyncpg
import pytest

from hub.metrics import Metrics
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings, SpoolSettings
from hub.store.db import Database, DatabaseUnavailableError, NodeList
from hub.store.migrate import migrate
from hub.store.spool import Spool
from hub.store.writer import Writer
from tests.hub.store.conftest import Acks, make_events
from tests.services import PrivatePostgres


def _settings(dsn: str) -> DbSettings:
    return DbSettings(
        dsn=dsn,  # type: ignore[arg-type]
        db_schema="vaka",
        connect_timeout_s=1.0,
        command_timeout_s=2.0,
        write_deadline_s=1.0,
        batch_size=200,
        flush_interval_s=0.05,
    )


async def _read_only(pg: PrivatePostgres, on: bool) -> None:
    """Make every session of the server read-only (as a standby is) or writable again."""
    conn = await asyncpg.connect(pg.dsn, server_settings={"default_transaction_read_only": "off"})
    try:
        if on:
            await conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        else:
            await conn.execute("ALTER SYSTEM RESET default_transaction_read_only")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def _stored(pg: PrivatePostgres, site: str) -> tuple[list[int], int]:
    conn = await asyncpg.connect(pg.dsn, server_settings={"search_path": "vaka"})
    try:
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM events WHERE site = $1", site)]
        rejected = await conn.fetchval("SELECT count(*) FROM rejected_messages")
    finally:
        await conn.close()
    return seqs, rejected


async def test_events_written_while_the_node_is_read_only_wait_in_the_spool_not_rejected(
    private_postgres: PrivatePostgres, metrics: Metrics, tmp_path: Path, spawner: Spawner
) -> None:
    settings = _settings(private_postgres.dsn)
    db = Database(settings, metrics, spawner=spawner)
    await db.open()
    async with db.acquire() as conn:
        await migrate(conn, settings)
    spool = Spool(SpoolSettings(directory=tmp_path / "spool", fsync_interval_s=0.005), metrics, spawner=spawner)
    writer = Writer(db, spool, settings, metrics, spawner=spawner)
    task = asyncio.get_running_loop().create_task(writer.run_loop())
    acks = Acks()
    events = make_events("ro", 600)
    try:
        writer.submit(events[:200], [], acks.callback(0))
        assert await writer.wait_drained(timeout_s=10)
        await _read_only(private_postgres, on=True)  # the node the hub writes to is a standby now
        writer.submit(events[200:400], [], acks.callback(1))
        writer.submit(events[400:], [], acks.callback(2))
        for _ in range(100):  # acknowledged all the same: into the spool
            if acks.all_once():
                break
            await asyncio.sleep(0.05)
        assert acks.all_once()
        await asyncio.sleep(1.0)  # the drain tries the read-only node meanwhile, and must not give the rows up
        await _read_only(private_postgres, on=False)  # a primary takes writes again
        assert await writer.wait_drained(timeout_s=30)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.close()
        await db.close()
        await spool.close()
    seqs, rejected = await _stored(private_postgres, "ro")
    assert sorted(seqs) == list(range(600)), f"{600 - len(set(seqs))} events lost"
    assert rejected == 0, "events were stored as rejections while the node was read-only"
    assert acks.all_once()


async def test_no_host_taking_writes_is_the_database_away_until_one_does(
    private_postgres: PrivatePostgres, metrics: Metrics, spawner: Spawner
) -> None:
    await _read_only(private_postgres, on=True)  # the only host is a standby: no primary yet
    host = private_postgres.dsn.removeprefix("postgresql://postgres@").split("/")[0]
    dsn = f"postgresql://postgres@{host},{host}/postgres?target_session_attrs=read-write"
    db = Database(_settings(dsn), metrics, spawner=spawner)
    try:
        await db.open()
        assert not db.up
        with pytest.raises(DatabaseUnavailableError):
            async with db.acquire():
                pass
        await _read_only(private_postgres, on=False)  # promoted
        assert await db.wait_up(timeout_s=15)
        async with db.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await db.close()


@pytest.mark.parametrize(
    ("dsn", "after_one", "after_three"),
    [
        (
            "postgresql://vaka_hub@pg1:5432,pg2:5432,pg3:5432/vaka?target_session_attrs=read-write",
            "postgresql://vaka_hub@pg2:5432,pg3:5432,pg1:5432/vaka?target_session_attrs=read-write",
            "postgresql://vaka_hub@pg1:5432,pg2:5432,pg3:5432/vaka?target_session_attrs=read-write",
        ),
        ("postgresql://u:p%40ss@a,b/db", "postgresql://u:p%40ss@b,a/db", "postgresql://u:p%40ss@b,a/db"),
        ("postgresql://postgres@127.0.0.1:5432/test", None, None),  # one host: as it is
    ],
)
def test_the_next_connection_starts_from_the_next_node(
    dsn: str, after_one: str | None, after_three: str | None
) -> None:
    nodes = NodeList(dsn)
    assert nodes.dsn == dsn
    nodes.rotate()
    assert nodes.dsn == (after_one or dsn)
    nodes.rotate()
    nodes.rotate()
    assert nodes.dsn == (after_three or dsn)


def test_the_node_a_probe_committed_on_goes_first() -> None:
    nodes = NodeList("postgresql://h@pg1:5432,pg2:5432,pg3/vaka?target_session_attrs=read-write")
    assert nodes.prefer("pg2", 5432)
    assert nodes.dsn == "postgresql://h@pg2:5432,pg1:5432,pg3/vaka?target_session_attrs=read-write"
    assert not nodes.prefer("pg2", 5432)  # already first
    assert nodes.prefer("pg3", 5432)  # no port in the DSN: the default
    assert nodes.hosts == ["pg3", "pg2:5432", "pg1:5432"]
    assert not nodes.prefer("elsewhere", 5432)
