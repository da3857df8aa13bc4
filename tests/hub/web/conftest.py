"""A running staff page for the web tests: migrated schema, inventory, staff, a desk with its loop, a real port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright
from py_vapid import Vapid

from hub.desk.build import DeskParts, build_desk
from hub.metrics import Metrics
from hub.notify.webpush import WebPushNotifier
from hub.people.staff import StaffMember
from hub.runtime.tasks import Spawner
from hub.settings import Settings
from hub.store.db import Database
from hub.web.staff import setup_staff
from hub.web.staff.sessions import SessionStore
from tests.hub.desk_support import PASSWORD, FakeClock, RecordingNotifier, add_inventory_and_staff, migrated_database


@dataclass
class StaffSite:
    """Everything a web test touches."""

    site: str
    url: str
    desk: DeskParts
    db: Database
    settings: Settings
    metrics: Metrics
    staff: dict[str, StaffMember]
    clock: FakeClock
    published: list[tuple[str, bytes]]
    runner: web.AppRunner
    port: int
    staff_app: web.Application

    async def stop_serving(self) -> None:
        """Take the web server away (the page should say it lost its connection)."""
        for site in list(self.runner.sites):
            await site.stop()
        await self.desk.pages.aclose()

    async def start_serving(self) -> None:
        """Bring the web server back on the same port."""
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()


CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            await b.close()


async def staff_page(
    browser: Browser,
    url: str,
    site: str,
    name: str,
    *,
    before_login: Callable[[Page], None] | None = None,
    password: str = PASSWORD,
) -> Page:
    """A phone-sized page logged in as `name` of `site` (through the Swedish login form)."""
    ctx = await browser.new_context(viewport={"width": 390, "height": 844})
    ctx.set_default_timeout(10_000)
    page = await ctx.new_page()
    if before_login is not None:
        before_login(page)
    await page.goto(f"{url}/staff/login?lang=sv")
    await page.get_by_label("Användarnamn").fill(f"{name}-{site}")
    await page.get_by_label("Lösenord").fill(password)
    await page.get_by_role("button", name="Logga in").click()
    await page.wait_for_url(f"{url}/staff/")
    return page


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def staff_site(settings: Settings, metrics: Metrics, unique: str, spawner: Spawner) -> AsyncIterator[StaffSite]:
    port = free_port()
    settings.http.public_url = f"http://127.0.0.1:{port}"
    async with migrated_database(settings, metrics) as db:
        staff = await add_inventory_and_staff(db, unique)
        published: list[tuple[str, bytes]] = []
        clock = FakeClock(datetime.now(UTC))
        sessions = SessionStore(
            db,
            settings.http.session_idle_s,
            spawner=spawner,
            local_path=settings.spool.directory / "staff_sessions.msgpack",
        )
        desk = build_desk(
            settings,
            db,
            metrics,
            publish=lambda topic, payload, *, qos=1, retain=False: published.append((topic, payload)),
            clock=clock,
            spawner=spawner,
            notifiers=[RecordingNotifier()],
            session_alive=lambda key: sessions.live(key) is not None,
        )
        vapid = Vapid()
        vapid.generate_keys()
        push = WebPushNotifier(settings.notify, vapid, db)
        desk.lane.dispatcher.notifiers.append(push)
        await desk.restorer.restore()
        loop_task = asyncio.create_task(desk.run_loop())
        app = web.Application()
        staff_app = setup_staff(
            app, desk=desk, db=db, settings=settings, metrics=metrics, spawner=spawner, sessions=sessions
        )
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield StaffSite(
                unique,
                settings.http.public_url,
                desk,
                db,
                settings,
                metrics,
                staff,
                clock,
                published,
                runner,
                port,
                staff_app,
            )
        finally:
            await runner.cleanup()
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
