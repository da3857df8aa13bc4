"""Staff page security: session cookie, CSRF tokens, login rate limit, allowed WebSocket origin, headers."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from urllib.parse import urlsplit

from aiohttp import web

logger = logging.getLogger(__name__)

SESSION_COOKIE = "vaka_session"
LOGIN_CSRF_COOKIE = "vaka_login_csrf"
COOKIE_PATH = "/staff"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tokens_match(expected: str, given: str | None) -> bool:
    """Constant-time token comparison."""
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(request: web.Request, public_url: str) -> bool:
    """True when the request's Origin is the origin staff open the page at."""
    origin = request.headers.get("Origin")
    return origin is not None and origin.lower().rstrip("/") == origin_of(public_url)


def set_cookie(response: web.StreamResponse, name: str, value: str, *, secure: bool) -> None:
    """A session-scoped, HttpOnly, SameSite=Strict cookie on /staff."""
    response.set_cookie(name, value, path=COOKIE_PATH, secure=secure, httponly=True, samesite="Strict")


def add_security_headers(headers: MutableMapping[str, str]) -> None:
    """CSP and friends, where the response does not set its own."""
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin, not no-referrer: under no-referrer a browser's POST says `Origin: null`, and every staff POST must
    # show our Origin; other sites still get no referrer
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Content-Security-Policy and friends on every staff response, errors included; a failure is a plain 500."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # 303, 400, 401, 403, 404, 405 … raised by handlers and the router
        add_security_headers(exc.headers)
        raise
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        logger.exception("staff request failed method=%s path=%s", request.method, request.path[:200])
        response = web.Response(
            status=500, text="The hub could not answer this request. It has been logged; try again."
        )
    if not response.prepared:
        add_security_headers(response.headers)
    return response
