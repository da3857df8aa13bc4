"""Store benchmark: events/s through the Writer into PostgreSQL (acks after commit) and spool append rates with fsync.

Prints one JSON object. Uses the local PostgreSQL (VAKA_BENCH_DSN, default the `test` database) in a throwaway
schema, and a temporary spool directory. Runs for a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from hub.metrics import Metrics
from hub.model import Event, EventKind
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings, SpoolSettings
from hub.store.db import Database
from hub.store.migrate import migrate
from hub.store.rows import encode_batch, event_row
from hub.store.spool import Spool
from hub.store.writer import Writer

DSN = os.environ.get("VAKA_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")
EVENTS = 100_000
PER_MESSAGE = 1
STEADY_RATE = 10_000
STEADY_S = 1.5


def _events(count: int) -> list[Event]:
    base = datetime.now(UTC) - timedelta(minutes=5)
    return [
        Event(
            ts=base + timedelta(microseconds=i),
            site="bench",
            device_id=f"d{i % 500}",
            kind=EventKind.TEMPERATURE,
            value=21.5,
            unit="Cel",
            seq=i,
        )
        for i in range(count)
    ]


async def bench_writer(schema: str, spool_dir: Path) -> dict[str, float]:
    """Submit EVENTS one per message as fast as the loop allows; time until every one is acknowledged."""
    metrics = Metrics()
    settings = DbSettings(dsn=DSN, db_schema=schema)
    spawner = Spawner(metrics)
    db = Database(settings, metrics, spawner=spawner)
    await db.open()
    async with db.acquire() as conn:
        await migrate(conn, settings)
    spool = Spool(SpoolSettings(directory=spool_dir), metrics, spawner=spawner)
    writer = Writer(db, spool, settings, metrics, spawner=spawner)
    task = asyncio.get_running_loop().create_task(writer.run_loop())
    events = _events(EVENTS)
    acked = 0
    done = asyncio.Event()
    submitted_at: list[float] = [0.0] * (EVENTS // PER_MESSAGE)
    latencies: list[float] = []

    def ack(index: int) -> None:
        nonlocal acked
        acked += 1
        latencies.append(time.perf_counter() - submitted_at[index])
        if acked == len(submitted_at):
            done.set()

    started = time.perf_counter()
    for n, i in enumerate(range(0, EVENTS, PER_MESSAGE)):
        submitted_at[n] = time.perf_counter()
        writer.submit(events[i : i + PER_MESSAGE], [], lambda n=n: ack(n))  # type: ignore[misc]
        if n % 500 == 0:
            await asyncio.sleep(0)
    await done.wait()
    elapsed = time.perf_counter() - started

    # steady 10k events/s for STEADY_S: acknowledgement latency when the writer keeps up
    latencies.clear()
    steady = [
        Event(e.ts, e.site, e.device_id, e.kind, e.value, e.unit, seq=e.seq + EVENTS)
        for e in _events(int(STEADY_RATE * STEADY_S))
    ]
    acked, done = 0, asyncio.Event()
    submitted_at = [0.0] * len(steady)
    tick_s, per_tick = 0.01, int(STEADY_RATE * 0.01)
    next_tick = time.perf_counter()
    for start in range(0, len(steady), per_tick):
        for n in range(start, start + per_tick):
            submitted_at[n] = time.perf_counter()
            writer.submit(steady[n : n + 1], [], lambda n=n: ack(n))  # type: ignore[misc]
        next_tick += tick_s
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    await done.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await writer.close()
    await db.close()
    await spool.close()
    await spawner.aclose()
    latencies.sort()
    return {
        "writer_events_per_s": round(EVENTS / elapsed),
        "steady_events_per_s": STEADY_RATE,
        "steady_ack_latency_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "steady_ack_latency_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
    }


async def bench_spool(spool_dir: Path) -> dict[str, float]:
    """Appends with group-committed fsync: 1000-event batches (the writer's unit) and single-event records."""
    metrics = Metrics()
    spawner = Spawner(metrics)
    spool = Spool(SpoolSettings(directory=spool_dir, max_bytes=1 << 34), metrics, spawner=spawner)
    rows = [event_row(e, datetime.now(UTC)) for e in _events(1000)]
    batch = encode_batch(rows, [])
    started = time.perf_counter()
    for _ in range(10):
        await asyncio.gather(*(spool.append(batch, 1000) for _ in range(3)))
    batch_rate = 30_000 / (time.perf_counter() - started)
    single = encode_batch(rows[:1], [])
    started = time.perf_counter()
    for _ in range(20):
        await asyncio.gather(*(spool.append(single, 1) for _ in range(200)))
    single_rate = 4000 / (time.perf_counter() - started)
    await spool.close()
    await spawner.aclose()
    return {
        "spool_events_per_s_batched": round(batch_rate),
        "spool_records_per_s_single": round(single_rate),
        "spool_batch_bytes": len(batch),
    }


async def main() -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(DSN)
    await conn.execute(f"CREATE SCHEMA {schema}")
    try:
        with tempfile.TemporaryDirectory(prefix="vaka-bench-") as tmp:
            result = await bench_writer(schema, Path(tmp) / "w")
            result |= await bench_spool(Path(tmp) / "s")
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
