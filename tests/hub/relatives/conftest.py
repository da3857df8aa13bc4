"""A migrated schema with the desk tests' site (residents r1, r2 in unit A, r3 in unit B) and staff, `vaka`, and a
running relatives page."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web

from hub.metrics import Metrics
from hub.people.staff import StaffMember
from hub.relatives.accounts import invite
from hub.relatives.consent import GivenBy, Scope, grant, revoke
from hub.settings import Settings
from hub.store.db import Database
from hub.web.relatives import setup_relatives
from tests.conftest import PG_DSN
from tests.hub.desk_support import add_inventory_and_staff, migrated_database


@dataclass
class Home:
    """The test's site, its database and staff."""

    site: str
    db: Database
    settings: Settings
    staff: dict[str, StaffMember]

    def resident(self, n: int) -> str:
        return f"{self.site}-r{n}"

    def vaka(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """The `vaka` command on this test's schema."""
        env = {**os.environ, "VAKA_DB__DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": self.settings.db.db_schema}
        env["VAKA_HTTP__PUBLIC_URL"] = self.settings.http.public_url
        return subprocess.run(
            [sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=60, env=env, input=stdin
        )


@pytest.fixture
async def home(settings: Settings, metrics: Metrics, unique: str) -> AsyncIterator[Home]:
    async with migrated_database(settings, metrics) as db:
        staff = await add_inventory_and_staff(db, unique)
        yield Home(unique, db, settings, staff)


class HeldClock:
    """Wall time that a test can move forward (consents ending, invitations expiring)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class RelativesSite:
    """A running relatives page on http://localhost:PORT with the test's home behind it."""

    home: Home
    url: str
    clock: HeldClock
    app: web.Application  # the relatives' sub-application (its CONTEXT)

    async def invite(self, email: str, resident: str, at: datetime | None = None) -> str:
        """The invitation link for `email` (as `vaka relative invite` prints it)."""
        async with self.home.db.acquire() as conn:
            token, _ = await invite(
                conn, email=email, resident_id=resident, created_by=f"nils-{self.home.site}", at=at or self.clock()
            )
        return f"{self.url}/relative/invite/{token}"

    async def grant(self, email: str, resident: str, *scopes: Scope, until: datetime | None = None) -> None:
        async with self.home.db.acquire() as conn:
            await grant(
                conn,
                resident_id=resident,
                relative_email=email,
                scopes=list(scopes),
                given_by=GivenBy.RESIDENT,
                recorded_by=f"nils-{self.home.site}",
                text_version="2026-1",
                at=self.clock(),
                valid_until=until,
            )

    async def revoke(self, email: str, resident: str, *scopes: Scope) -> None:
        async with self.home.db.acquire() as conn:
            await revoke(
                conn,
                resident_id=resident,
                relative_email=email,
                scopes=list(scopes) or None,
                recorded_by=f"nils-{self.home.site}",
                at=self.clock(),
            )

    async def access_rows(self, resident: str | None = None) -> list[tuple[str, str, str]]:
        """(resident, what, role) of every access-log row, oldest first."""
        async with self.home.db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT resident_id, purpose, role FROM resident_access_log"
                " WHERE $1::text IS NULL OR resident_id = $1 ORDER BY seq",
                resident,
            )
        return [(r["resident_id"], r["purpose"], r["role"]) for r in rows]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def relatives_site(home: Home) -> AsyncIterator[RelativesSite]:
    port = _free_port()
    # a passkey's relying party must be a host name: localhost, never 127.0.0.1
    home.settings.http.public_url = f"http://localhost:{port}"
    clock = HeldClock()
    app = web.Application()
    sub = setup_relatives(app, db=home.db, settings=home.settings, now=clock)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield RelativesSite(home, home.settings.http.public_url, clock, sub)
    finally:
        await runner.cleanup()


PASSWORD = "mammas natt 2026"
DAUGHTER = "dotter@example.se"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


class Relative:
    """A relative's browser without the browser: a cookie jar and our Origin on every POST."""

    def __init__(self, site: RelativesSite) -> None:
        self.site = site
        self.http = aiohttp.ClientSession(
            base_url=site.url, cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": site.url}
        )

    async def accept(self, link: str, password: str = PASSWORD, again: str | None = None) -> aiohttp.ClientResponse:
        page = await self.http.get(link)
        if page.status != 200:
            return page
        form = {"csrf": csrf_of(await page.text()), "password": password, "password2": again or password, "lang": "en"}
        return await self.http.post(link, data=form, allow_redirects=False)

    async def login(self, email: str = DAUGHTER, password: str = PASSWORD) -> aiohttp.ClientResponse:
        page = await self.http.get("/relative/login?lang=en")
        form = {"csrf": csrf_of(await page.text()), "email": email, "password": password, "lang": "en"}
        return await self.http.post("/relative/login", data=form, allow_redirects=False)

    async def get_json(self, path: str) -> tuple[int, dict[str, object]]:
        response = await self.http.get(path)
        return response.status, await response.json()


@pytest.fixture
async def daughter(relatives_site: RelativesSite) -> AsyncIterator[Relative]:
    relative = Relative(relatives_site)
    link = await relatives_site.invite(DAUGHTER, relatives_site.home.resident(1))
    response = await relative.accept(link)
    assert response.status == 303, await response.text()
    try:
        yield relative
    finally:
        await relative.http.close()
