"""The spawner (hub/runtime/tasks.py): the one owner of the tasks components start in the background, and the rule that
nothing under hub/ starts a task any other way."""

from __future__ import annotations

import ast
import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from hub.app import Hub
from hub.desk.lane import TASK_FAILURE_RULE
from hub.metrics import Metrics
from hub.model import Inventory
from hub.runtime.tasks import Spawner
from hub.settings import Settings
from hub.store.inventory import load_inventory
from tests.conftest import _own_tasks
from tests.hub.desk_support import migrated_database, sites_for

HUB = Path(__file__).resolve().parents[2] / "hub"
# the spawner itself and the hub's TaskGroup; the simulator is a command of its own that owns its few tasks
ALLOWED = {HUB / "runtime" / "tasks.py", HUB / "app.py"}
SIMULATION = HUB / "simulation"


class BoomError(Exception):
    """A bug in a background task."""


async def _fails_when(event: asyncio.Event) -> None:
    await event.wait()
    raise BoomError("the store is on fire")


def _failures(metrics: Metrics, task: str) -> float:
    value = metrics.registry.get_sample_value("vaka_background_task_failures_total", {"task": task})
    return value or 0.0


async def test_a_failing_task_is_logged_by_name_counted_and_leaves_the_others_running(
    metrics: Metrics, spawner: Spawner, caplog: pytest.LogCaptureFixture
) -> None:
    go, release = asyncio.Event(), asyncio.Event()
    failing = spawner.spawn(_fails_when(go), name="vaka.test.write", about="batch-7")
    sibling = spawner.spawn(release.wait(), name="vaka.test.sibling")
    reported: list[str] = []
    spawner.on_failure = reported.append
    with caplog.at_level(logging.ERROR, logger="hub.runtime.tasks"):
        go.set()
        await asyncio.gather(failing, return_exceptions=True)
        await asyncio.sleep(0)  # the done callback runs one turn after the task ends

    assert "background task vaka.test.write[batch-7] failed: BoomError" in caplog.text
    assert "the store is on fire" in caplog.text  # the traceback is in the log
    assert _failures(metrics, "vaka.test.write") == 1  # labelled by the name family, not the batch
    assert reported == ["vaka.test.write"]
    assert spawner.running == ["vaka.test.sibling"]
    release.set()
    assert await sibling is True
    assert spawner.running == []


async def test_shutdown_cancels_every_task_and_waits_at_most_its_deadline(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    spawner = Spawner(metrics, shutdown_s=0.2)
    forever = spawner.spawn(asyncio.Event().wait(), name="vaka.test.forever")
    let_go = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await let_go.wait()  # a task that does not stop when asked

    slow = spawner.spawn(stubborn(), name="vaka.test.stubborn")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="hub.runtime.tasks"):
        await asyncio.wait_for(spawner.aclose(), 2.0)
    assert forever.cancelled()
    assert spawner.running == ["vaka.test.stubborn"]
    assert "still running after 0.2 s: vaka.test.stubborn" in caplog.text
    let_go.set()
    await slow
    assert spawner.running == []
    assert _failures(metrics, "vaka.test.forever") == 0  # cancelled is not failed

    late = spawner.spawn(asyncio.Event().wait(), name="vaka.test.late")  # after shutdown: never runs
    await asyncio.gather(late, return_exceptions=True)
    assert late.cancelled()
    assert not _own_tasks()


def _task_starts(source: str, path: Path) -> list[str]:
    """Every call that starts a task itself (`….create_task`, `ensure_future`, a `TaskGroup`), as `path:line name`."""
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name in {"create_task", "ensure_future", "TaskGroup"}:
                found.append(f"{path.relative_to(HUB.parent)}:{node.lineno} {name}")
    return found


def test_only_the_spawner_and_the_hub_start_tasks() -> None:
    modules = [p for p in HUB.rglob("*.py") if p not in ALLOWED and SIMULATION not in p.parents]
    assert len(modules) > 50
    starts = [start for path in modules for start in _task_starts(path.read_text(), path)]
    assert starts == [], "start background tasks with the injected hub.runtime.tasks.Spawner: " + ", ".join(starts)


def test_the_rule_sees_a_task_started_directly() -> None:
    source = "import asyncio\n\nasync def f(loop):\n    loop.create_task(f(loop))\n    asyncio.ensure_future(f(loop))\n"
    assert _task_starts(source, HUB / "rogue.py") == ["hub/rogue.py:4 create_task", "hub/rogue.py:5 ensure_future"]


async def test_a_running_hub_owns_every_task_and_raises_a_failed_one_to_operations(
    settings: Settings, metrics: Metrics, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with migrated_database(settings, Metrics()) as db, db.acquire() as conn:
        await load_inventory(conn, Inventory(sites=sites_for(unique)))
    async with Hub(settings, metrics) as hub, aiohttp.ClientSession(f"http://127.0.0.1:{hub.http_port}") as http:
        await hub.wait_connected()
        # every task running the hub's code is a loop of its TaskGroup or one of the spawner's
        owned = set(hub.loops) | {t for t in _own_tasks() if t.get_name() in hub.spawner.running}
        assert set(_own_tasks()) <= owned, sorted(t.get_name() for t in set(_own_tasks()) - owned)

        with caplog.at_level(logging.ERROR, logger="hub.runtime.tasks"):
            failed = hub.spawner.spawn(_boom(), name="vaka.test.boom")
            await asyncio.gather(failed, return_exceptions=True)
            await asyncio.sleep(0)
        assert "background task vaka.test.boom failed" in caplog.text
        async with http.get("/metrics") as resp:
            assert 'vaka_background_task_failures_total{task="vaka.test.boom"} 1.0' in await resp.text()
        (alarm,) = [a for a in hub.desk.machine.open_alarms() if a.rule_id == TASK_FAILURE_RULE]
        assert (alarm.site, alarm.category.value) == (unique, "technical")
        assert "vaka.test.boom" in alarm.reason
        assert not [t.get_name() for t in hub.loops if t.done()]  # the hub runs on
        async with http.get("/readyz") as resp:
            assert resp.status == 200


async def _boom() -> None:
    raise BoomError("a bug in a background task")
