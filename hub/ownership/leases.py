"""The site leases in the database (migration 380_site_leases.sql): take, renew, release, read, and the watch's claim.

Every time in these statements is the database's `now()`: the hubs' clocks never decide who holds a site. A lease is
taken when it is free (never held, or run out) and renewed by the process that holds it, run out or not, as long as
nobody else took it meanwhile; the token goes up by one only when another process takes the site, so a hub that
renews after a stall keeps its token (nobody acted in between), and a hub that restarts gets a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

# a row per site of the inventory, held by nobody, so a site no hub ever took has a lease to run out (the watch)
_PLACEHOLDERS = """
INSERT INTO site_leases (site, hub_id, owner, token, acquired_at, renewed_at, expires_at)
SELECT s, '', '', 0, now(), now(), now() FROM unnest($1::text[]) AS s
ON CONFLICT (site) DO NOTHING
"""

_TAKE = """
INSERT INTO site_leases AS l (site, hub_id, owner, token, acquired_at, renewed_at, expires_at)
SELECT s, $2, $3, 1, now(), now(), now() + make_interval(secs => $4) FROM unnest($1::text[]) AS s
ON CONFLICT (site) DO UPDATE SET
    hub_id = EXCLUDED.hub_id,
    owner = EXCLUDED.owner,
    token = CASE WHEN l.owner = EXCLUDED.owner THEN l.token ELSE l.token + 1 END,
    acquired_at = CASE WHEN l.owner = EXCLUDED.owner THEN l.acquired_at ELSE now() END,
    renewed_at = now(),
    expires_at = EXCLUDED.expires_at,
    unowned_alarm_by = CASE WHEN l.owner = EXCLUDED.owner THEN l.unowned_alarm_by END
WHERE l.owner = EXCLUDED.owner OR l.expires_at < now()
RETURNING site, token
"""

_RELEASE = "UPDATE site_leases SET expires_at = now() WHERE owner = $1 AND site = ANY($2::text[])"

_READ = """
SELECT site, hub_id, owner, token, expires_at, extract(epoch FROM now() - expires_at)::float8 AS overdue_s
FROM site_leases
"""

_CLAIM_UNOWNED = """
UPDATE site_leases SET unowned_alarm_by = $2
WHERE site = $1 AND unowned_alarm_by IS NULL AND expires_at < now() - make_interval(secs => $3)
RETURNING site
"""


class LeaseConnection:
    """One database connection of the lease rounds' own: a renewal never waits for a connection of the pool behind
    the store's batches (a busy pool must not cost a hub its sites). Reconnects after any failure."""

    def __init__(self, dsn: str, schema: str, connect_timeout_s: float) -> None:
        self._dsn = dsn
        self._schema = schema
        self._timeout_s = connect_timeout_s
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """The connection, (re)opened when needed; a failure inside closes it, the next use opens a new one."""
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(
                    self._dsn,
                    timeout=self._timeout_s,
                    server_settings={"search_path": self._schema, "application_name": "vaka-leases"},
                )
            try:
                yield self._conn
            except BaseException:
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.terminate()
                raise

    async def close(self) -> None:
        """Close the connection (at shutdown)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                async with asyncio.timeout(2.0):
                    await conn.close()
            except (TimeoutError, OSError, asyncpg.PostgresError):
                conn.terminate()


@dataclass(frozen=True, slots=True)
class Lease:
    """One site's lease as the database holds it now."""

    site: str
    hub_id: str
    owner: str
    token: int
    expires_at: datetime
    overdue_s: float  # how long ago it ran out, by the database's clock (negative: still running)

    @property
    def held(self) -> bool:
        """Whether a hub holds the site now."""
        return self.overdue_s < 0


async def add_sites(conn: asyncpg.Connection, sites: list[str]) -> None:
    """A lease held by nobody for each site that has none yet."""
    await conn.execute(_PLACEHOLDERS, sites)


async def take(conn: asyncpg.Connection, sites: list[str], hub_id: str, owner: str, lease_s: float) -> dict[str, int]:
    """Take or renew the leases of `sites` that are free or already this process's; site -> fencing token."""
    rows = await conn.fetch(_TAKE, sites, hub_id, owner, lease_s)
    return {r["site"]: int(r["token"]) for r in rows}


async def release(conn: asyncpg.Connection, owner: str, sites: list[str]) -> None:
    """Let the leases of `sites` run out now (a hub stopping): the next hub takes them within its renewal interval."""
    await conn.execute(_RELEASE, owner, sites)


async def read(conn: asyncpg.Connection) -> list[Lease]:
    """Every site's lease."""
    rows = await conn.fetch(_READ)
    return [Lease(r["site"], r["hub_id"], r["owner"], int(r["token"]), r["expires_at"], r["overdue_s"]) for r in rows]


async def claim_unowned_alarm(conn: asyncpg.Connection, site: str, hub_id: str, after_s: float) -> bool:
    """Whether this hub is the one to raise 'supervision lost' for a site nobody has held for `after_s` (once)."""
    return await conn.fetchval(_CLAIM_UNOWNED, site, hub_id, after_s) is not None
