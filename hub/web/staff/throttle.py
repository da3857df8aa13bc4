"""Staff login throttling per (account, address), with a progressive delay, kept in the database.

The first `free_failures` wrong passwords of a name from one address cost nothing; after that each one makes that
pair wait `first_delay_s`, doubled per further failure up to `max_delay_s`. Nothing else waits: the same account
from another address (a colleague's phone, the nurse's office) and other accounts behind the same address (a
shared NAT or reverse proxy) log in as usual, so nobody can lock the night staff out. Failures older than
`forget_after_s` are forgotten; a good login clears the pair. The state lives in `login_throttle` (migration 106)
and survives a restart.

Many addresses guessing at one account (a botnet) are held by a cap per account: past `account_free_failures`
failures from all addresses together, the account takes the slow path, one attempt per `account_delay_s` from
anywhere (kept as the pseudo-address `*`), so guessing slows to a crawl while the real person still gets in within
seconds. The relatives' login uses the same throttle, its accounts under `relative:<e-mail>`.

The address is the TCP peer, or — only when that peer is one of `http.trusted_proxies` — the nearest
`X-Forwarded-For` entry that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

if TYPE_CHECKING:
    from hub.settings import HttpSettings
    from hub.store.pool import Database

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ACCOUNT = "*"  # the pseudo-address of an account's slow path
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[Network]) -> str:
    """Who is logging in: the peer, unless it is a trusted proxy; then the right-most untrusted X-Forwarded-For
    entry (entries left of it could be written by anyone). A malformed header falls back to the peer."""
    if not peer:
        return "?"
    if not trusted_proxies or not forwarded_for or not _trusted(peer, trusted_proxies):
        return peer
    for entry in reversed([e.strip() for e in forwarded_for.split(",")]):
        try:
            address = ipaddress.ip_address(entry)
        except ValueError:
            return peer
        if not any(address in net for net in trusted_proxies):
            return str(address)
    return peer


def _trusted(peer: str, trusted_proxies: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in net for net in trusted_proxies)


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How failures turn into waiting."""

    free_failures: int = 3
    first_delay_s: float = 2.0
    max_delay_s: float = 600.0
    forget_after_s: float = 3600.0
    account_free_failures: int = 20
    account_delay_s: float = 10.0

    def delay_after(self, failures: int) -> float:
        """Seconds the pair waits after its `failures`-th failure in a row."""
        if failures <= self.free_failures:
            return 0.0
        return float(min(self.max_delay_s, self.first_delay_s * 2 ** (failures - self.free_failures - 1)))


def login_policy(http: HttpSettings) -> ThrottlePolicy:
    """The throttle the settings ask for (staff and relatives alike)."""
    return ThrottlePolicy(
        http.login_free_failures,
        http.login_first_delay_s,
        http.login_max_delay_s,
        account_free_failures=http.login_account_free_failures,
        account_delay_s=http.login_account_delay_s,
    )


class LoginThrottle:
    """Failed logins per (account, address) in `login_throttle`; see the module docstring."""

    def __init__(self, db: Database, policy: ThrottlePolicy | None = None) -> None:
        self._db = db
        self.policy = policy or ThrottlePolicy()

    async def wait_s(self, username: str, address: str) -> float:
        """Seconds this pair (or the account on its slow path) must still wait before a password is even checked."""
        async with self._db.acquire() as conn:
            until = await conn.fetchval(
                "SELECT max(blocked_until) FROM login_throttle WHERE username = $1 AND address IN ($2, $3)",
                username.lower(),
                address,
                ACCOUNT,
            )
        if until is None:
            return 0.0
        return float(max(0.0, (until - datetime.now(UTC)).total_seconds()))

    async def failed(self, username: str, address: str) -> float:
        """Count a wrong password; returns the wait it earned (0 while still free)."""
        now = datetime.now(UTC)
        forget_before = now - timedelta(seconds=self.policy.forget_after_s)
        async with self._db.acquire() as conn, conn.transaction():
            failures = await conn.fetchval(
                "INSERT INTO login_throttle AS t (username, address, failures, last_failure, blocked_until)"
                " VALUES ($1, $2, 1, $3, $3)"
                " ON CONFLICT (username, address) DO UPDATE SET"
                " failures = CASE WHEN t.last_failure < $4 THEN 1 ELSE t.failures + 1 END, last_failure = $3"
                " RETURNING failures",
                username.lower(),
                address,
                now,
                forget_before,
            )
            delay_s = self.policy.delay_after(int(failures))
            await conn.execute(
                "UPDATE login_throttle SET blocked_until = $3 WHERE username = $1 AND address = $2",
                username.lower(),
                address,
                now + timedelta(seconds=delay_s),
            )
            total = await conn.fetchval(
                "SELECT coalesce(sum(failures), 0) FROM login_throttle WHERE username = $1 AND address <> $2"
                " AND last_failure >= $3",
                username.lower(),
                ACCOUNT,
                forget_before,
            )
            if total > self.policy.account_free_failures:
                await conn.execute(
                    "INSERT INTO login_throttle (username, address, failures, last_failure, blocked_until)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username, address) DO UPDATE SET"
                    " failures = EXCLUDED.failures, last_failure = EXCLUDED.last_failure,"
                    " blocked_until = EXCLUDED.blocked_until",
                    username.lower(),
                    ACCOUNT,
                    int(total),
                    now,
                    now + timedelta(seconds=self.policy.account_delay_s),
                )
                logger.info("login account on the slow path failures=%s", total)
                delay_s = max(delay_s, self.policy.account_delay_s)
            await conn.execute("DELETE FROM login_throttle WHERE last_failure < $1", forget_before)
        if delay_s:
            logger.info("staff login throttled failures=%s delay_s=%s", failures, delay_s)
        return delay_s

    async def succeeded(self, username: str, address: str) -> None:
        """A good login clears its pair."""
        async with self._db.acquire() as conn:
            await conn.execute(
                "DELETE FROM login_throttle WHERE username = $1 AND address = $2", username.lower(), address
            )


def forwarded_client(http: HttpSettings) -> Middleware:
    """A middleware that makes `request.remote` the client (see `client_address`, `http.trusted_proxies`), for the
    throttle and for the address in the access log; without trusted proxies it changes nothing."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        trusted = http.trusted_proxies
        if not trusted:
            return await handler(request)
        client = client_address(request.remote, request.headers.get("X-Forwarded-For"), trusted)
        return await handler(request.clone(remote=client) if client != request.remote else request)

    return middleware
