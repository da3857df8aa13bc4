"""The autouse guard in conftest.py sees Vaka's own tasks left running (and leaves library tasks to their owners)."""

from __future__ import annotations

import asyncio

from hub.desk.persistence import DeskStore
from tests.conftest import _own_tasks


async def test_the_cleanup_guard_sees_a_task_of_ours_left_running() -> None:
    store = DeskStore(None)  # type: ignore[arg-type]  # its loop idles without touching the database
    task = asyncio.get_running_loop().create_task(store.write_loop(), name="vaka.test.leak")
    await asyncio.sleep(0)
    assert task in _own_tasks()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task not in _own_tasks()


async def test_the_cleanup_guard_leaves_other_tasks_alone() -> None:
    task = asyncio.get_running_loop().create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    assert task not in _own_tasks()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
