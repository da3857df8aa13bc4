"""Web security both page apps share: the one session and CSRF guard, tokens, the allowed origin, headers; the staff
page's cookies."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from hub.web.bodies import field, read_form

logger = logging.getLogger(__name__)

SESSION_COOKIE = "vaka_session"
LOGIN_CSRF_COOKIE = "vaka_login_csrf"
COOKIE_PATH = "/staff"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
S = TypeVar("S")
CROSS_ORIGIN = "cross-origin request refused"


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


class SessionGuard(Generic[S]):
    """The one session and CSRF middleware of the staff and the relatives pages; each app says only what differs.

    Every POST must come from our own Origin (a browser always sends it; another site's page or none is refused);
    every path but the `public` ones needs a live session (`load`); every POST carries the session's CSRF token, in
    the `X-CSRF-Token` header (the pages' scripts) or the form's `csrf` field (plain forms), read the same bounded
    way for both apps. The session is then `request[key]`.
    """

    def __init__(
        self,
        *,
        key: web.RequestKey[S],
        public: tuple[str, ...],
        public_url: Callable[[web.Request], str],
        load: Callable[[web.Request], Awaitable[S | None]],
        csrf_token: Callable[[S], str],
        not_signed_in: Callable[[web.Request], web.StreamResponse],
        bad_csrf: Callable[[web.Request, S], web.HTTPException],
    ) -> None:
        self.key = key
        self._public = public
        self._public_url = public_url
        self._load = load
        self._csrf_token = csrf_token
        self._not_signed_in = not_signed_in
        self._bad_csrf = bad_csrf

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and not origin_allowed(request, self._public_url(request)):
            raise web.HTTPForbidden(text=CROSS_ORIGIN)
        if request.path.startswith(self._public):
            return await handler(request)
        session = await self._load(request)
        if session is None:
            return self._not_signed_in(request)
        if request.method == "POST" and not tokens_match(self._csrf_token(session), await posted_csrf(request)):
            raise self._bad_csrf(request, session)
        request[self.key] = session
        return await handler(request)


async def posted_csrf(request: web.Request) -> str | None:
    """The CSRF token a POST carries: the `X-CSRF-Token` header, else a urlencoded form's `csrf` field."""
    given = request.headers.get("X-CSRF-Token")
    if given is None and request.content_type == "application/x-www-form-urlencoded":
        given = field(await read_form(request), "csrf", 256)
    return given
