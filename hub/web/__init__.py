"""The aiohttp application: operations endpoints here, staff and API routes from their own modules."""

from __future__ import annotations

from aiohttp import web

from hub.metrics import Metrics
from hub.web.ops import Readiness, add_ops_routes


def create_app(metrics: Metrics, probes: Readiness) -> web.Application:
    """A web application with /metrics, /healthz and /readyz; callers add the staff routes."""
    app = web.Application(client_max_size=64 * 1024)
    add_ops_routes(app, metrics, probes)

    async def to_staff(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/staff/")

    app.router.add_get("/", to_staff)
    return app
