"""What the desk, the channels and the staff pages need of the store: a connection with the schema on its path."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import asyncpg


class Database(Protocol):
    """What the desk and the staff pages need from hub.store: a connection with the schema on its search path."""

    def acquire(self) -> AbstractAsyncContextManager[asyncpg.Connection]: ...


class PlainDatabase:
    """A minimal Database on one asyncpg pool, for `vaka staff add` and tests when hub.store is not wired."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection."""
        async with self._pool.acquire() as conn:
            yield conn  # type: ignore[misc]
