"""JSON for other front ends: `GET /relative/api/v1/residents` and `GET /relative/api/v1/residents/{id}/status`.

Both go through the same authorization and access log as the HTML (`pages.read_status`, `pages.read_residents`):
exactly the consented fields; 401 without a session, 403 for a resident this relative had a consent for that ended or
was revoked, 404 for every other id (a resident never shared with her and an unknown id alike: no enumeration).
"""

from __future__ import annotations

from aiohttp import web

from hub.web.relatives.pages import read_residents, read_status


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def residents(request: web.Request) -> web.StreamResponse:
    """The residents consented to me now, with the scopes."""
    found = await read_residents(request, "api_residents")
    return web.json_response(
        {
            "residents": [
                {"id": r, "name": name, "scopes": sorted(s.value for s in scopes)}
                for r, (scopes, name) in found.items()
            ]
        }
    )


async def resident_status(request: web.Request) -> web.StreamResponse:
    """One resident's consented status."""
    try:
        _, status = await read_status(request, request.match_info["resident_id"], "api_status")
    except web.HTTPForbidden:
        return _error(403, "not shared with you (no live consent)")
    except web.HTTPNotFound:
        return _error(404, "no such resident")
    return web.json_response(status)


def add_routes(app: web.Application) -> None:
    """The API routes of the relatives sub-application."""
    app.router.add_get("/api/v1/residents", residents)
    app.router.add_get("/api/v1/residents/{resident_id}/status", resident_status)
