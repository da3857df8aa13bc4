"""The staff page: login, open alarms of my units, residents, alarm actions and the live WebSocket.

Mounted as a sub-application under /staff/ so its middlewares (session, CSRF, security headers) apply only here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

from hub.web.bodies import well_formed_bodies
from hub.web.paths import STATIC_DIR, TEMPLATES_DIR
from hub.web.security import security_headers
from hub.web.staff.context import CONTEXT, StaffContext
from hub.web.staff.sessions import SessionStore
from hub.web.staff.throttle import LoginThrottle, forwarded_client, login_policy

if TYPE_CHECKING:
    from alarms.rules import RuleSet
    from hub.checkins.service import CheckinService
    from hub.desk.build import DeskParts
    from hub.metrics import Metrics
    from hub.runtime.tasks import Spawner
    from hub.settings import Settings
    from hub.store.pool import Database


def setup_staff(
    app: web.Application,
    *,
    desk: DeskParts,
    db: Database,
    settings: Settings,
    metrics: Metrics,
    spawner: Spawner,
    checkins: CheckinService | None = None,
    rules: RuleSet | None = None,
    sessions: SessionStore | None = None,
) -> web.Application:
    """Add the staff pages under /staff/ to `app`; returns the sub-application. `rules`: the packs the hub's engine
    loaded (read from `settings.rules.packs` when not given)."""
    from alarms.rules import default_pack_path, load_rules
    from hub.notify.webpush import WebPushNotifier
    from hub.web.staff.pages import (
        alarm_action,
        alarms_page,
        health,
        login_page,
        login_submit,
        logout,
        push_key,
        push_subscribe,
        residents_page,
        service_worker,
        session_middleware,
    )
    from hub.web.staff.socket import staff_socket
    from hub.web.staff.watch import StaffWatch

    jinja = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    push = next((n for n in desk.lane.dispatcher.notifiers if isinstance(n, WebPushNotifier)), None)
    if sessions is None:  # the hub builds them first: its desk asks them whether a page's session still stands
        sessions = SessionStore(
            db,
            settings.http.session_idle_s,
            spawner=spawner,
            local_path=settings.spool.directory / "staff_sessions.msgpack",
        )
    ctx = StaffContext(desk, db, settings, metrics, sessions, jinja, push, spawner)
    sub = web.Application(
        middlewares=[
            security_headers,
            forwarded_client(settings.http),
            well_formed_bodies,
            session_middleware,
        ]
    )
    ctx.checkins = checkins
    ctx.rules = rules if rules is not None else load_rules(settings.rules.packs or [default_pack_path()])
    http = settings.http
    ctx.throttle = LoginThrottle(db, login_policy(http))
    sub[CONTEXT] = ctx
    sub.router.add_get("/", alarms_page, name="alarms")
    sub.router.add_get("/health", health)
    sub.router.add_get("/login", login_page, name="login")
    sub.router.add_post("/login", login_submit)
    sub.router.add_post("/logout", logout)
    sub.router.add_get("/residents", residents_page, name="residents")
    from hub.web.staff.checkins import (
        STREAMS_CLOSING,
        checkin_events,
        checkin_look,
        checkin_outcome,
        checkins_page,
        close_event_streams,
        plans_page,
        plans_submit,
    )

    sub[STREAMS_CLOSING] = asyncio.Event()
    sub.on_shutdown.append(close_event_streams)
    sub.router.add_get("/checkins", checkins_page, name="checkins")
    sub.router.add_get("/checkins/events", checkin_events)
    sub.router.add_get("/checkins/plans", plans_page)
    sub.router.add_post("/checkins/plans", plans_submit)
    sub.router.add_post("/checkins/{task_id}/look", checkin_look)
    sub.router.add_post("/checkins/{task_id}/outcome", checkin_outcome)
    from hub.web.staff.followup import followup_chart, followup_download, followup_page

    sub.router.add_get("/followup", followup_page, name="followup")
    sub.router.add_get("/followup/chart/{name}.svg", followup_chart)
    sub.router.add_get("/followup/report.{fmt}", followup_download)
    from hub.web.staff import consents

    consents.add_routes(sub)
    sub.router.add_post("/alarms/{alarm_id}/{action}", alarm_action)
    sub.router.add_get("/push/key", push_key)
    sub.router.add_post("/push/subscribe", push_subscribe)
    sub.router.add_get("/sw.js", service_worker)
    sub.router.add_get("/ws", staff_socket)
    sub.router.add_static("/static/", STATIC_DIR, name="static")
    from hub.web.staff.patrol import add_patrol_routes

    add_patrol_routes(sub)
    app.add_subapp("/staff/", sub)

    watch = StaffWatch(db, ctx.sessions, desk)

    async def watch_staff(_: web.Application) -> AsyncIterator[None]:
        task = spawner.spawn(watch.watch_loop(), name="vaka.staff.watch")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(watch_staff)

    async def close_pages(_: web.Application) -> None:
        await desk.pages.aclose()  # open staff pages would otherwise hold shutdown until they time out

    app.on_shutdown.append(close_pages)

    async def close_sessions(_: web.Application) -> None:
        await ctx.sessions.aclose()

    app.on_cleanup.append(close_sessions)

    async def to_staff(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/staff/")

    app.router.add_get("/staff", to_staff)
    return sub
