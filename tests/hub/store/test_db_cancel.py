"""A task cancelled while it hands its connection back to the pool ends: the release's own timeout never swallows
the cancellation (Python 3.11's `asyncio.wait_for` returns the inner result when both happen in the same turn of
the loop, and the desk's persistence loop then waited forever at shutdown, holding the hub's task group open)."""

from __future__ import annotations

import asyncio

from hub.store.db import Database


async def test_a_task_cancelled_at_any_point_of_a_query_and_its_release_ends(database: Database) -> None:
    hold = asyncio.Event()  # never set: a task that outlives its cancellation waits here

    async def writer() -> None:
        async with database.acquire() as conn:
            await conn.execute("SELECT 1")
        await hold.wait()

    survivors = []
    for turns in range(120):  # the cancellation lands on every turn of the loop in the acquire, query and release
        task = asyncio.create_task(writer())
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        if not done:
            survivors.append(turns)
            hold.set()
            await task
            hold.clear()
    assert survivors == []
