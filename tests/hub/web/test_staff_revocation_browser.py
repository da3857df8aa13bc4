"""A staff page's live connection ends with the session (issue 9, finding 2), seen from Debian's Chromium.

Logout in another tab, idle expiry, a password change from `vaka staff add --update` (another process) and a move
to another unit each close the open page's WebSocket within 5 s, and no alarm reaches that page afterwards.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, WebSocket, expect

from hub.desk.build import DeskParts
from hub.web.staff.context import CONTEXT
from tests.hub.desk_support import decision
from tests.hub.web.conftest import CHROMIUM, StaffSite, staff_page

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"),
]

CLOSE_WITHIN_S = 5.0


@dataclass
class Sockets:
    """Every WebSocket a page opened, when each closed and every frame it received."""

    opened: list[WebSocket] = field(default_factory=list)
    closed_at: dict[int, float] = field(default_factory=dict)
    frames: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        def on_socket(ws: WebSocket) -> None:
            index = len(self.opened)
            self.opened.append(ws)
            ws.on("framereceived", lambda payload: self.frames.append(str(payload)))
            ws.on("close", lambda _: self.closed_at.setdefault(index, time.monotonic()))

        page.on("websocket", on_socket)

    async def first_closed(self, timeout_s: float) -> float:
        """When the first socket closed (monotonic seconds); fails after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if 0 in self.closed_at:
                return self.closed_at[0]
            await asyncio.sleep(0.05)
        pytest.fail(f"the staff page's WebSocket was still open {timeout_s} s later")


async def watched_page(browser: Browser, site: StaffSite, name: str) -> tuple[Page, Sockets]:
    """A logged-in page of `name` whose live connection is up and watched."""
    sockets = Sockets()
    page = await staff_page(browser, site.url, site.site, name, before_login=sockets.watch)
    for _ in range(200):
        if sockets.opened and site.desk.pages.client_count >= 1:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the staff page never connected")
    return page, sockets


async def no_alarm_reaches(page: Page, sockets: Sockets, desk: DeskParts, site: str, *, unit_b: bool = False) -> None:
    """Raise an alarm of the unit the page was showing and check it arrives on no socket and no card."""
    d = decision(site, device="button3", resident="r3", subject="r3") if unit_b else decision(site)
    alarm = desk.lane.apply(d)
    assert alarm is not None
    await desk.lane.store.flushed()
    await asyncio.sleep(1.0)  # give a wrongly open socket time to deliver it
    assert not [f for f in sockets.frames if alarm.id in f]
    await expect(page.locator(f"#alarm-{alarm.id}")).to_have_count(0)


async def test_logout_in_another_tab_closes_the_open_page_within_5_s(browser: Browser, staff_site: StaffSite) -> None:
    page, sockets = await watched_page(browser, staff_site, "anna")
    other = await page.context.new_page()
    await other.goto(f"{staff_site.url}/staff/residents")
    started = time.monotonic()
    await other.locator("footer summary").click()
    await other.get_by_role("button", name="Sign out and go off duty").click()
    await other.wait_for_url(f"{staff_site.url}/staff/login")
    assert await sockets.first_closed(CLOSE_WITHIN_S) - started < CLOSE_WITHIN_S
    await page.wait_for_url(f"{staff_site.url}/staff/login")  # the page says plainly that the session ended
    await no_alarm_reaches(page, sockets, staff_site.desk, staff_site.site)


async def test_idle_expiry_closes_the_open_page_within_5_s(browser: Browser, staff_site: StaffSite) -> None:
    page, sockets = await watched_page(browser, staff_site, "anna")
    idle_s = staff_site.settings.http.session_idle_s
    started = time.monotonic()
    for session in staff_site.staff_app[CONTEXT].sessions._sessions.values():
        session.last_seen_s -= idle_s + 1  # as if nobody had touched the phone past the idle timeout
    assert await sockets.first_closed(CLOSE_WITHIN_S) - started < CLOSE_WITHIN_S
    await page.wait_for_url(f"{staff_site.url}/staff/login")
    await no_alarm_reaches(page, sockets, staff_site.desk, staff_site.site)


async def test_a_password_change_from_the_command_line_closes_the_open_page_within_5_s(
    browser: Browser, staff_site: StaffSite
) -> None:
    page, sockets = await watched_page(browser, staff_site, "anna")
    env = {
        **os.environ,
        "VAKA_DB__DSN": staff_site.settings.db.dsn.get_secret_value(),
        "VAKA_DB__DB_SCHEMA": staff_site.settings.db.db_schema,
    }
    vaka = Path(sys.executable).with_name("vaka")
    proc = await asyncio.create_subprocess_exec(
        str(vaka),
        *("staff", "add", f"anna-{staff_site.site}", "--update", "--unit", f"{staff_site.site}/A"),
        *("--password-stdin", "--lang", "en"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, err = await proc.communicate(b"a new password\n")
    assert proc.returncode == 0, err.decode()
    changed = time.monotonic()  # the command has committed the new password
    assert await sockets.first_closed(CLOSE_WITHIN_S) - changed < CLOSE_WITHIN_S
    await page.wait_for_url(f"{staff_site.url}/staff/login")
    await no_alarm_reaches(page, sockets, staff_site.desk, staff_site.site)


async def test_a_move_to_another_unit_closes_the_open_page_within_5_s_and_it_gets_no_alarm_of_the_old_unit(
    browser: Browser, staff_site: StaffSite
) -> None:
    page, sockets = await watched_page(browser, staff_site, "anna")
    anna = staff_site.staff["anna"]
    started = time.monotonic()
    async with staff_site.db.acquire() as conn:
        await conn.execute("UPDATE staff_units SET unit = 'B' WHERE staff_id = $1", anna.id)
    assert await sockets.first_closed(CLOSE_WITHIN_S) - started < CLOSE_WITHIN_S
    # the session is still good: the page reconnects, now for unit B
    for _ in range(200):
        if len(sockets.opened) >= 2 and staff_site.desk.pages.client_count >= 1:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the page did not reconnect for its new unit")
    await no_alarm_reaches(page, sockets, staff_site.desk, staff_site.site)
    b_alarm = staff_site.desk.lane.apply(decision(staff_site.site, device="button3", resident="r3", subject="r3"))
    assert b_alarm is not None
    await expect(page.locator(f"#alarm-{b_alarm.id}")).to_be_visible(timeout=2000)
