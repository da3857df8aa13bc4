"""The aiohttp application: operations endpoints here, staff and API routes from their own modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from hub.metrics import Metrics
from hub.web.ops import Readiness, add_ops_routes, metrics_token
from hub.web.security import security_headers

if TYPE_CHECKING:
    from hub.settings import HttpSettings


def create_app(metrics: Metrics, probes: Readiness, http: HttpSettings | None = None) -> web.Application:
    """A web application with /metrics, /healthz and /readyz; callers add the staff routes. Every response, unknown
    paths and /metrics included, carries the security headers."""
    app = web.Application(client_max_size=64 * 1024, middlewares=[security_headers])
    add_ops_routes(app, metrics, probes, token=metrics_token(http))

    async def to_staff(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/staff/")

    app.router.add_get("/", to_staff)
    return app
