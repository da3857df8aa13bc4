"""The writer against the shared PostgreSQL: exactly once, rejections, acknowledgements; inventory and engine state."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from pydantic import SecretStr

from hub.metrics import Metrics
from hub.model import Device, EventKind, Inventory, Resident, Site
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings, SpoolSettings
from hub.store.db import Database
from hub.store.inventory import fetch_sites, load_inventory
from hub.store.spool import Spool
from hub.store.state import load_engine_state, save_engine_state
from hub.store.writer import Rejection, Writer
from tests.hub.store.conftest import Acks, make_events, segment_files
from tests.services import free_port


async def _run(writer: Writer) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(writer.run_loop(), name="test.writer")


async def _stop(task: asyncio.Task[None], writer: Writer) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await writer.close()


async def test_events_submitted_twice_are_stored_once(
    writer: Writer, database: Database, metrics: Metrics, unique: str
) -> None:
    events = make_events(unique, 2500)
    acks = Acks()
    task = await _run(writer)
    for round_ in range(2):
        for i in range(0, len(events), 10):  # ten events per MQTT message
            writer.submit(events[i : i + 10], [], acks.callback(round_ * 10_000 + i))
        await writer.flush()
    await _stop(task, writer)
    async with database.acquire() as conn:
        rows = await conn.fetch("SELECT device_id, ts, seq, kind, value, attrs FROM events WHERE site = $1", unique)
    assert len(rows) == 2500
    assert {r["seq"] for r in rows} == set(range(2500))
    assert acks.all_once()
    assert len(acks.calls) == 500
    assert metrics.events_written._value.get() == 2500
    assert metrics.events_duplicate._value.get() == 2500
    sample = next(r for r in rows if r["seq"] == 3)
    assert (sample["kind"], sample["value"], sample["attrs"]) == ("temperature", 23.0, '{"i": 3}')


async def test_rejections_are_stored_with_the_first_4_kib(writer: Writer, database: Database, unique: str) -> None:
    received = datetime.now(UTC)
    huge = Rejection(received, f"vaka/v1/{unique}/x/event", b"\xff" * 10_000, "invalid_json")
    small = Rejection(received, f"vaka/v1/{unique}/y/event", b"nan", "non_finite_value")
    acks = Acks()
    writer.submit([], [huge, small], acks.callback(1))
    writer.submit(make_events(unique, 3), [], acks.callback(2))
    await writer.flush()
    async with database.acquire() as conn:
        rows = await conn.fetch(
            "SELECT topic, octet_length(payload) AS n, reason FROM rejected_messages WHERE topic LIKE $1 ORDER BY topic",
            f"vaka/v1/{unique}/%",
        )
        events = await conn.fetchval("SELECT count(*) FROM events WHERE site = $1", unique)
    assert [(r["n"], r["reason"]) for r in rows] == [(4096, "invalid_json"), (3, "non_finite_value")]
    assert events == 3
    assert acks.all_once()


async def test_an_empty_submission_is_acknowledged(writer: Writer) -> None:
    acks = Acks()
    writer.submit([], [], acks.callback(1))
    await asyncio.sleep(0)
    assert acks.all_once()


async def test_spooled_events_reach_the_database_after_a_restart(
    database: Database,
    db_settings: DbSettings,
    spool_settings: SpoolSettings,
    metrics: Metrics,
    unique: str,
    spawner: Spawner,
) -> None:
    """Events spooled by one hub (database away) are drained by the next one, exactly once."""
    first_spool = Spool(spool_settings, metrics, spawner=spawner)
    nowhere = db_settings.model_copy(update={"dsn": SecretStr(f"postgresql://postgres@127.0.0.1:{free_port()}/none")})
    away = Database(nowhere, metrics, spawner=spawner)  # the first hub's database is away the whole time
    await away.open()
    first = Writer(away, first_spool, nowhere, metrics, spawner=spawner)
    acks = Acks()
    events = make_events(unique, 1200, kind=EventKind.BED_EXIT)
    for i in range(0, 1200, 100):
        first.submit(events[i : i + 100], [], acks.callback(i))
    await first.flush()
    assert first.state == "spooling"
    assert acks.all_once()
    await first.close()
    await away.close()
    await first_spool.close()
    assert segment_files(spool_settings.directory)

    second_spool = Spool(spool_settings, metrics, spawner=spawner)
    second = Writer(database, second_spool, db_settings, metrics, spawner=spawner)
    task = await _run(second)
    # the same events re-delivered by the broker meanwhile: still once
    second.submit(events[:100], [], None)
    assert await second.wait_drained(timeout_s=15)
    await _stop(task, second)
    async with database.acquire() as conn:
        count = await conn.fetchval("SELECT count(DISTINCT seq) FROM events WHERE site = $1", unique)
        total = await conn.fetchval("SELECT count(*) FROM events WHERE site = $1", unique)
    assert count == total == 1200
    assert segment_files(spool_settings.directory) == []
    await second_spool.close()


async def test_inventory_loads_idempotently_and_reads_back(database: Database, unique: str) -> None:
    site = Site(
        id=f"site-{unique}",
        name="Solbacken",
        residents=[Resident(id=f"r1-{unique}", room="12A", unit="north")],
        devices=[
            Device(id=f"bed-{unique}", kind="bed_sensor", resident=f"r1-{unique}", supervision_interval_s=600),
            Device(id=f"btn-{unique}", kind="alarm_button", safety=True),
        ],
    )
    inventory = Inventory(sites=[site])
    async with database.acquire() as conn:
        counts = await load_inventory(conn, inventory)
        again = await load_inventory(conn, inventory)
        sites = await fetch_sites(conn)
    assert counts == again == {"sites": 1, "residents": 1, "devices": 2}
    assert sites == [site]


async def test_engine_state_round_trips(database: Database) -> None:
    async with database.acquire() as conn:
        assert await load_engine_state(conn) is None
        await save_engine_state(conn, {"timers": [{"key": "r:1", "due": "2026-11-26T03:00:00+00:00"}], "n": 1})
        await save_engine_state(conn, {"timers": [], "n": 2})
        assert await load_engine_state(conn) == {"timers": [], "n": 2}


async def test_a_batch_slower_than_the_deadline_is_spooled_then_drained(
    database: Database, db_settings: DbSettings, spool: Spool, metrics: Metrics, unique: str, spawner: Spawner
) -> None:
    settings = db_settings.model_copy(update={"write_deadline_s": 0.3, "flush_interval_s": 0.02})
    writer = Writer(database, spool, settings, metrics, spawner=spawner)
    task = await _run(writer)
    acks = Acks()
    async with database.acquire() as blocker, blocker.transaction():
        # another session holds the events table: inserts wait past the write deadline
        await blocker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        writer.submit(make_events(unique, 50, kind=EventKind.FALL_DETECTED), [], acks.callback(1))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if acks.calls[1]:
                break
        assert acks.all_once()  # acknowledged from the spool while the database was stuck
        assert metrics.events_spooled._value.get() == 50
    assert await writer.wait_drained(timeout_s=15)
    await _stop(task, writer)
    async with database.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM events WHERE site = $1", unique) == 50


async def test_an_event_the_database_refuses_does_not_block_the_others(
    writer: Writer, database: Database, unique: str
) -> None:
    good = make_events(unique, 10)
    bad = make_events(unique, 1, start=10)[0]
    poisoned = type(bad)(bad.ts, bad.site, bad.device_id, bad.kind, unit="C\x00", seq=bad.seq, topic=bad.topic)
    acks = Acks()
    task = await _run(writer)
    writer.submit([*good, poisoned], [], acks.callback(1))
    assert await writer.wait_drained(timeout_s=15)
    await _stop(task, writer)
    async with database.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM events WHERE site = $1", unique)
        reasons = await conn.fetch(
            "SELECT reason FROM rejected_messages WHERE topic = $1", f"vaka/store/{unique}/{bad.device_id}"
        )
    assert count == 10
    assert [r["reason"] for r in reasons] == ["unstorable_event: 22021"]
    assert acks.all_once()
