"""The database handle: an asyncpg pool that survives the database going away and coming back, without a restart.

`Database.open()` never raises because the database is down: it marks it down and a background task keeps probing
(jittered backoff) until it answers. Every connection has `search_path` set to the configured schema and a server-side
`statement_timeout`; every wait (connect, acquire, query) is bounded.

A replicated database (docs/ha.md) is one DSN with every node, `postgresql://user@pg1:5432,pg2:5432,pg3:5432/vaka?
target_session_attrs=read-write`: asyncpg connects to the first node that takes writes. The database counts as up
only when a probe commits (a primary whose commits hang, its synchronous standby gone to a newer primary, is no
primary); a probe that fails starts the next one from the next node of the list, and the node a probe committed on
goes first, so a former primary that nobody demoted (its Patroni dead, its PostgreSQL alive) is left behind for the
one that took over, and stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import asyncpg

from hub.metrics import Metrics
from hub.model import VakaError
from hub.runtime.backoff import Backoff
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings

logger = logging.getLogger(__name__)

PROBE_MIN_S = 0.2
PROBE_MAX_S = 5.0

# errors that mean "the database (or our connection to it) is away", as opposed to a bad statement or bad data
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,  # statement_timeout: the database is too slow to count on
    # a replicated database between two primaries (docs/ha.md): no host of a multi-host DSN accepts writes yet
    # (target_session_attrs=read-write), or the node reached is read-only now (a demoted primary, a standby):
    # a primary will be back, and what was to be written waits for it in the spool (never a rejected row)
    asyncpg.TargetServerAttributeNotMatched,
    asyncpg.ReadOnlySQLTransactionError,
)


class DatabaseUnavailableError(VakaError):
    """The database did not answer in time or the connection broke; retry later or spool."""


class VakaConnection(asyncpg.Connection):
    """A connection that remembers whether it has created its session-local staging table."""

    __slots__ = ("_vaka_staging_ready",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._vaka_staging_ready = False

    def staging_ready(self) -> bool:
        """True once the writer's TEMP staging table exists on this connection."""
        return self._vaka_staging_ready

    def set_staging_ready(self, ready: bool) -> None:
        """Remember that the staging table exists (or not) on this connection."""
        self._vaka_staging_ready = ready


DATABASE_AWAY: tuple[type[BaseException], ...] = (*_CONNECTION_ERRORS, DatabaseUnavailableError)
"""What a caller catches to go on without the database (a page that says so instead of a 500)."""


def is_connection_error(exc: BaseException) -> bool:
    """True when `exc` means the database is unreachable or too slow, not that the statement was wrong."""
    if isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError | TypeError):
        return False  # asyncpg's client-side DataError: a value it cannot encode, the connection is fine
    return isinstance(exc, (*_CONNECTION_ERRORS, DatabaseUnavailableError))


class NodeList:
    """The hosts of a multi-host DSN in the order the next connection tries them; `rotate` moves the first to the end.

    A DSN with one host is left as it is.
    """

    def __init__(self, dsn: str) -> None:
        scheme, sep, rest = dsn.partition("://")
        netloc, slash, tail = rest.partition("/")
        user, at, hosts = netloc.rpartition("@")
        self._head = f"{scheme}{sep}{user}{at}"
        self._tail = f"{slash}{tail}"
        self.hosts = hosts.split(",") if sep else [hosts]
        self._dsn = dsn

    @property
    def dsn(self) -> str:
        """The DSN with the hosts in their current order."""
        if len(self.hosts) < 2:
            return self._dsn
        return f"{self._head}{','.join(self.hosts)}{self._tail}"

    def rotate(self) -> None:
        """The next connection starts from the next host."""
        if len(self.hosts) > 1:
            self.hosts.append(self.hosts.pop(0))

    def prefer(self, host: str, port: int) -> bool:
        """Put the host a connection reached (`host`, `port` as asyncpg connected to them) first; False when it is
        already first or not in the list."""
        for i, entry in enumerate(self.hosts):
            if entry in (f"{host}:{port}", f"[{host}]:{port}") or (entry == host and port == 5432):
                if i == 0:
                    return False
                self.hosts.insert(0, self.hosts.pop(i))
                return True
        return False


class Database:
    """Owns the asyncpg pool; `up` tells whether the database answered lately."""

    def __init__(self, settings: DbSettings, metrics: Metrics, *, spawner: Spawner) -> None:
        self._settings = settings
        self._metrics = metrics
        self._spawner = spawner
        self._pool: asyncpg.Pool | None = None
        self._up = False
        self._up_event = asyncio.Event()
        self._probe_task: asyncio.Task[None] | None = None
        self._closed = False
        self._prepare: Callable[[VakaConnection], Awaitable[object]] | None = None
        self._prepared = False
        self._nodes = NodeList(settings.dsn.get_secret_value())
        self._connect_kwargs: dict[str, Any] = {}
        metrics.db_up.set(0)

    def set_prepare(self, prepare: Callable[[VakaConnection], Awaitable[object]]) -> None:
        """Run `prepare(conn)` (the migrations) once before the database first counts as up.

        While it has not succeeded the database stays down, so the writer keeps spooling rather than writing
        into tables that do not exist yet (a hub started while the database was away).
        """
        self._prepare = prepare
        self._prepared = False

    @property
    def up(self) -> bool:
        """True while the database answers; False after a connection failure until a probe succeeds."""
        return self._up

    @property
    def settings(self) -> DbSettings:
        """The settings this database was opened with."""
        return self._settings

    async def open(self) -> None:
        """Create the pool and probe the database; when it is down, mark it down and keep probing in the background."""
        self._closed = False
        s = self._settings
        # what every new connection is opened with (also after the hosts' order changed)
        self._connect_kwargs = {
            "timeout": s.connect_timeout_s,
            "command_timeout": s.command_timeout_s,
            "server_settings": {
                "search_path": s.db_schema,
                "statement_timeout": str(int(s.command_timeout_s * 1000)),
                "application_name": "vaka",
            },
        }
        # min_size=0: creating the pool connects nothing, so it cannot fail while the database is away
        self._pool = await asyncpg.create_pool(
            self._nodes.dsn,
            min_size=0,
            max_size=s.pool_max,
            max_inactive_connection_lifetime=300.0,
            connection_class=VakaConnection,
            **self._connect_kwargs,
        )
        if await self._probe():
            self._mark_up()
            await self._warm_up()
        else:
            self.mark_down("unreachable at start")

    def _next_node(self) -> None:
        """New connections start from the next host of a multi-host DSN (see `NodeList`)."""
        if len(self._nodes.hosts) < 2:
            return
        self._nodes.rotate()
        self._reconnect_in_order()

    def _stay_on(self, conn: object) -> None:
        """New connections start from the host `conn` reached (the primary a probe committed on)."""
        addr = getattr(conn, "_addr", None)  # asyncpg's (host, port) of the connection, as the DSN named them
        if isinstance(addr, tuple) and len(addr) == 2 and self._nodes.prefer(str(addr[0]), int(addr[1])):
            logger.info("database primary now first: %s", self._nodes.hosts[0])
            self._reconnect_in_order()

    def _reconnect_in_order(self) -> None:
        if self._pool is not None:
            self._pool.set_connect_args(self._nodes.dsn, **self._connect_kwargs)

    async def close(self) -> None:
        """Stop probing and close the pool (terminating connections that do not close in time)."""
        self._closed = True
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
            self._probe_task = None
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self._settings.connect_timeout_s):
                    await pool.close()
            except _CONNECTION_ERRORS:
                pool.terminate()
        self._up = False
        self._up_event.clear()
        self._metrics.db_up.set(0)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[VakaConnection]:
        """A pooled connection, within `connect_timeout_s`; raises DatabaseUnavailableError when the database is away.

        A connection failure inside the block is raised as DatabaseUnavailableError too, and marks the database down.
        """
        pool = self._pool
        if pool is None:
            msg = "database is not open"
            raise DatabaseUnavailableError(msg)
        try:
            conn_cm = pool.acquire(timeout=self._settings.connect_timeout_s)
            conn = await conn_cm.__aenter__()
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            self.mark_down(type(exc).__name__)
            msg = f"database unavailable: {type(exc).__name__}"
            raise DatabaseUnavailableError(msg) from exc
        failed: BaseException | None = None
        try:
            yield cast("VakaConnection", conn)
        except Exception as exc:
            failed = exc
            if is_connection_error(exc) and not isinstance(exc, asyncpg.QueryCanceledError):
                self.mark_down(type(exc).__name__)
                msg = f"database connection lost: {type(exc).__name__}"
                raise DatabaseUnavailableError(msg) from exc
            raise
        finally:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that arrives as the
                # release completes, and the cancelled task lives on (tests/hub/store/test_db_cancel.py)
                async with asyncio.timeout(self._settings.connect_timeout_s):
                    await conn_cm.__aexit__(None, None, None)
            except _CONNECTION_ERRORS as exc:
                if failed is None:
                    logger.warning("database connection release failed: %s", type(exc).__name__)
        if failed is None and not self._up:
            self._mark_up()

    async def wait_up(self, timeout_s: float | None = None) -> bool:
        """Wait until the database answers again; False on timeout."""
        if self._up:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await self._up_event.wait()
        except TimeoutError:
            return False
        return True

    def mark_down(self, reason: str) -> None:
        """Record that the database is away and start probing for its return."""
        if self._up or self._probe_task is None:
            logger.warning("database down: %s", reason)
        self._up = False
        self._up_event.clear()
        self._metrics.db_up.set(0)
        if not self._closed and (self._probe_task is None or self._probe_task.done()):
            self._probe_task = self._spawner.spawn(self._probe_loop(), name="vaka.db.probe")

    def _mark_up(self) -> None:
        if self._prepare is not None and not self._prepared:
            return  # the probe loop prepares it first
        if not self._up:
            logger.info("database up")
        self._up = True
        self._up_event.set()
        self._metrics.db_up.set(1)

    async def _probe(self) -> bool:
        pool = self._pool
        if pool is None:
            return False
        try:
            async with pool.acquire(timeout=self._settings.connect_timeout_s) as conn:
                # a node that answers but takes no writes (a standby, a demoted primary) is no database to write to
                read_only = await conn.fetchval(
                    "SELECT current_setting('transaction_read_only')", timeout=self._settings.connect_timeout_s
                )
                if read_only == "on":
                    return False
                # a commit that writes WAL (a temporary table's catalog rows; an xid alone writes none and waits for
                # no standby): on a primary whose synchronous standby left (promoted elsewhere) it never returns
                await conn.execute(
                    "CREATE TEMP TABLE vaka_probe (at timestamptz) ON COMMIT DROP",
                    timeout=self._settings.connect_timeout_s,
                )
                self._stay_on(conn)
                if self._prepare is not None and not self._prepared:
                    await self._prepare(cast("VakaConnection", conn))
                    self._prepared = True
        except Exception as exc:
            if not is_connection_error(exc):
                logger.warning("database probe failed: %s", exc)
            return False
        return True

    async def _warm_up(self) -> None:
        """Open `pool_min` connections ahead of need (best effort)."""
        pool = self._pool
        if pool is None or self._settings.pool_min <= 1:
            return
        with contextlib.suppress(Exception):
            async with contextlib.AsyncExitStack() as stack:
                for _ in range(self._settings.pool_min):
                    await stack.enter_async_context(pool.acquire(timeout=self._settings.connect_timeout_s))

    async def _probe_loop(self) -> None:
        backoff = Backoff(PROBE_MIN_S, PROBE_MAX_S)
        while not self._closed:
            pool = self._pool
            if pool is not None:
                # connections from before the outage are dead; drop idle ones so the next acquire reconnects
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._settings.connect_timeout_s):
                        await pool.expire_connections()
            if await self._probe():
                self._mark_up()
                return
            self._next_node()
            await backoff.sleep()
