"""Operations endpoints: /metrics (Prometheus), /healthz (the process lives), /readyz (database and broker state).

/metrics tells how busy each unit's night is and when the staff answer: it takes a bearer token
(`http.metrics_token_file`, Prometheus's `authorization.credentials_file`), or without one answers only on loopback.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from hub.metrics import Metrics
from hub.model import VakaError

if TYPE_CHECKING:
    from hub.settings import HttpSettings


@dataclass(frozen=True, slots=True)
class Readiness:
    """Where readiness comes from: each a zero-argument probe of live state."""

    database_up: Callable[[], bool]
    broker_connected: Callable[[], bool]
    store_state: Callable[[], str]


def readiness_report(probes: Readiness) -> tuple[int, dict[str, str]]:
    """HTTP status and body for /readyz.

    ready: database and broker up. degraded (still 200): the database is away or behind and events go to the spool,
    so nothing is lost and alarms still flow. not_ready (503): the broker is away, so nothing reaches us.
    """
    db = "up" if probes.database_up() else "down"
    broker = "connected" if probes.broker_connected() else "disconnected"
    store = probes.store_state()
    if broker != "connected":
        status, code = "not_ready", 503
    elif db != "up" or store != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ready", 200
    return code, {"status": status, "database": db, "broker": broker, "store": store}


def metrics_token(http: HttpSettings | None) -> str | None:
    """The bearer token /metrics asks for (`http.metrics_token_file`), or None (then loopback only)."""
    if http is None or http.metrics_token_file is None:
        return None
    token = http.metrics_token_file.read_text().strip()
    if not token:
        msg = f"http.metrics_token_file {http.metrics_token_file} is empty"
        raise VakaError(msg)
    return token


def _loopback(peer: str | None) -> bool:
    try:
        return peer is not None and ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


def add_ops_routes(app: web.Application, metrics: Metrics, probes: Readiness, *, token: str | None = None) -> None:
    """Mount /metrics (with `token`: only for `Authorization: Bearer <token>`; without: only from loopback),
    /healthz and /readyz."""
    exposition = make_aiohttp_handler(metrics.registry)

    async def metrics_page(request: web.Request) -> web.StreamResponse:
        if token is None:
            if not _loopback(request.remote):  # the TCP peer: no proxy header is believed here
                raise web.HTTPForbidden(text="/metrics: set http.metrics_token_file to scrape from another host")
        elif not hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
            raise web.HTTPUnauthorized(text="/metrics needs its bearer token", headers={"WWW-Authenticate": "Bearer"})
        return await exposition(request)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        code, body = readiness_report(probes)
        return web.json_response(body, status=code)

    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
