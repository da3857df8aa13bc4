"""The relatives page and API under /relative/: phone-first, Swedish, English, Finnish and Arabic (right to left).

A relative sees only the residents and scopes consented to them now; every request re-checks consent against the
database (`hub.relatives.view.authorize`), the HTML and the JSON alike, and every read of a resident's status is one
row in the access log, written in the same transaction as the read. Mounted as a sub-application so its session,
Origin and header rules apply only here. See docs/relatives.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

from hub.web.bodies import well_formed_bodies
from hub.web.paths import RELATIVES_STATIC_DIR, TEMPLATES_DIR, wall_clock
from hub.web.relatives.context import CONTEXT, Challenges, RelativesContext
from hub.web.security import security_headers
from hub.web.staff.throttle import LoginThrottle, forwarded_client, login_policy

if TYPE_CHECKING:
    from hub.settings import Settings
    from hub.store.pool import Database


def setup_relatives(
    app: web.Application, *, db: Database, settings: Settings, now: Callable[[], datetime] = wall_clock
) -> web.Application:
    """Add the relatives page and API under /relative/ to `app`; returns the sub-application."""
    from hub.web.relatives import api, pages, passkeys

    jinja = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    ctx = RelativesContext(db, settings, jinja, Challenges(), LoginThrottle(db, login_policy(settings.http)), now)
    sub = web.Application(
        middlewares=[
            pages.same_origin_referrer,
            security_headers,
            forwarded_client(settings.http),
            well_formed_bodies,
            pages.session_middleware,
        ]
    )
    sub[CONTEXT] = ctx
    pages.add_routes(sub)
    api.add_routes(sub)
    passkeys.add_routes(sub)
    sub.router.add_static("/static/", RELATIVES_STATIC_DIR)
    app.add_subapp("/relative/", sub)
    return sub
