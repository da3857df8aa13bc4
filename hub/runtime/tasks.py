"""The owner of every background task a component starts on demand (a batch write, a notification, an fsync).

The hub's forever-loops run in the one TaskGroup of hub/app.py (one of them failing stops the hub). Everything else
that runs in the background goes through the one `Spawner` the hub builds first and closes last, injected into each
component that needs it: it keeps a strong reference to every task and names it; when a task fails it logs the
exception with the task's name, counts it in `vaka_background_task_failures_total{task}` and tells operations (the
desk raises the technical alarm `hub_task_failure`), and the other tasks go on. On shutdown it cancels what is left
and waits for it, within a deadline. Outside hub/simulation no other module calls `create_task` or `ensure_future`
(tests/hub/test_tasks.py holds that).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from hub.metrics import Metrics

logger = logging.getLogger(__name__)
T = TypeVar("T")

SHUTDOWN_S = 5.0


class Spawner:
    """Starts, names, watches and finally stops the hub's background tasks; see the module docstring."""

    def __init__(
        self, metrics: Metrics, *, shutdown_s: float = SHUTDOWN_S, on_failure: Callable[[str], None] | None = None
    ) -> None:
        self._metrics = metrics
        self._shutdown_s = shutdown_s
        self._tasks: dict[asyncio.Task[Any], str] = {}  # task -> its name family (the metric's label)
        self._closed = False
        # told the name family of each failed task (the desk raises a technical alarm for operations)
        self.on_failure = on_failure

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str, about: str | None = None) -> asyncio.Task[T]:
        """Run `coro` in the background as task `name`, a fixed family such as `vaka.store.write` (the metric's
        label); `about` (a notification id, say) is added to the task's name for the log, never to the metric."""
        task = asyncio.get_running_loop().create_task(coro, name=name if about is None else f"{name}[{about}]")
        self._tasks[task] = name
        task.add_done_callback(self._done)
        if self._closed:
            logger.warning("background task %s started after shutdown: cancelled", task.get_name())
            task.cancel()
        return task

    @property
    def running(self) -> list[str]:
        """Names of the tasks still running, sorted (tests, diagnostics)."""
        return sorted(task.get_name() for task in self._tasks if not task.done())

    def _done(self, task: asyncio.Task[Any]) -> None:
        name = self._tasks.pop(task, task.get_name())
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        self._metrics.background_task_failures.labels(name).inc()
        logger.error("background task %s failed: %s", task.get_name(), type(exc).__name__, exc_info=exc)
        if self.on_failure is not None:
            try:
                self.on_failure(name)
            except Exception:
                logger.exception("background task %s: its failure could not be raised to operations", name)

    async def aclose(self) -> None:
        """Cancel every task still running and wait for them, at most `shutdown_s`; name those that did not stop."""
        self._closed = True
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self._shutdown_s)
        if pending:
            names = ", ".join(sorted(task.get_name() for task in pending))
            logger.warning("shutdown: background tasks still running after %.1f s: %s", self._shutdown_s, names)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
