"""Operations endpoints: /metrics (Prometheus), /healthz (the process lives), /readyz (database and broker state)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from hub.metrics import Metrics


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


def add_ops_routes(app: web.Application, metrics: Metrics, probes: Readiness) -> None:
    """Mount /metrics, /healthz and /readyz."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        code, body = readiness_report(probes)
        return web.json_response(body, status=code)

    app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
