"""One database connection for one command (`vaka …`, exports): opened, waited for, closed.

Kept apart from the command line so that the subcommands and the domain modules they call (archive, open data)
use it without importing `hub.cli`, which nothing imports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from hub.metrics import Metrics
from hub.runtime.tasks import Spawner
from hub.settings import Settings
from hub.store.db import Database, VakaConnection

T = TypeVar("T")


async def with_database(
    settings: Settings, command: str, work: Callable[[VakaConnection], Awaitable[T]], wait_s: float = 10.0
) -> T | None:
    """Run `work(conn)` on a migrated-or-not database connection; None (after saying so) when it does not answer."""
    metrics = Metrics()
    async with Spawner(metrics) as spawner:
        db = Database(settings.db, metrics, spawner=spawner)
        await db.open()
        try:
            if not await db.wait_up(timeout_s=wait_s):
                print(f"vaka {command}: the database did not answer within {wait_s:.0f} s; is PostgreSQL running?")
                return None
            async with db.acquire() as conn:
                return await work(conn)
        finally:
            await db.close()


def as_owner(settings: Settings) -> Settings:
    """The settings with `db.dsn` replaced by `db.owner_dsn` (when set): for migrations and other owner's work."""
    if settings.db.owner_dsn is None:
        return settings
    return settings.model_copy(update={"db": settings.db.model_copy(update={"dsn": settings.db.owner_dsn})})
