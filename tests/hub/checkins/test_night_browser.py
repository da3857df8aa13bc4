"""A night of check-ins played on the simulated clock against `vaka serve` as its own process, in Debian's Chromium
on two phones of the unit: a plan with three camera slots (23:00, 02:00, 05:00); each task appears on both phones
when its window opens; a look is granted inside the slot, its view ends when the gateway's token expires, and a look
after the window is refused; "not visible" twice makes a visit; a camera silent at 05:00 makes a visit at once; the
tasks are the same after the hub process is stopped and started again; axe finds nothing serious on the list in
English or Swedish. The live view goes from the camera gateway (a test double outside Vaka) to the browser only.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, expect

from hub.checkins.plan import Plan, Slot
from hub.checkins.service import save_plans
from hub.metrics import Metrics
from hub.model import Device, Inventory
from hub.runtime.clock import CLOCK_TOPIC
from hub.settings import Settings
from hub.simulation import Publisher
from hub.store.inventory import load_inventory
from tests.conftest import PG_DSN
from tests.hub.checkins.conftest import GatewayDouble
from tests.hub.desk_support import add_inventory_and_staff, migrated_database, sites_for
from tests.hub.web.conftest import CHROMIUM, free_port, staff_page
from tests.hub.web.test_staff_browser import axe_violations
from tests.services import PrivateMosquitto, private_mosquitto  # noqa: F401  (fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"),
]

REPO = Path(__file__).resolve().parents[3]
EVENING = datetime(2026, 11, 26, 21, 30, tzinfo=UTC)  # 22:30 in Stockholm (CET)
STEP_S = 600  # the simulated clock moves in ten-minute steps, every device but a silent one reporting at each
CAMERA_SUPERVISION_S = 1200
TOKEN_S = 8  # the gateway double grants eight seconds a look (the hub asks for 45)
WAIT_MS = 20_000  # for what the hub process does: a loaded machine may take seconds


class HubProcess:
    """`vaka serve` as its own process on the simulated clock, stopped with SIGTERM as an operator would."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int) -> None:
        self.env, self.log_path, self.port = env, log_path, port
        self.url = f"http://127.0.0.1:{port}"
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start and wait until /readyz says the database and the broker (subscribed) are there."""
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: ASYNC220 (Popen does not wait)
                [sys.executable, "-m", "hub.cli", "serve"], cwd=REPO, env=self.env, stdout=log, stderr=log
            )
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                assert self._proc.poll() is None, f"hub exited: {self.log()[-2000:]}"
                try:
                    async with http.get(f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)  # until the next look at readiness
        raise AssertionError(f"hub not ready: {self.log()[-2000:]}")

    async def stop(self) -> None:
        """SIGTERM and wait for the process to finish its shutdown."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Night:
    """The hub process, the simulated night's clock and devices, and the people on duty."""

    hub: HubProcess
    publisher: Publisher
    gateway: GatewayDouble
    site: str
    resident: str
    camera: str
    devices: list[str]
    now: datetime = EVENING
    silent: set[str] = field(default_factory=set)
    seq: int = 0

    def task(self, hhmm: str) -> str:
        return f"ci-{self.resident}-20261126-{hhmm}"

    async def clock_to(self, until: datetime) -> None:
        """Move the simulated night on to `until`, the devices that are not silent reporting at every step."""
        while True:
            self.publisher.publish(CLOCK_TOPIC, json.dumps({"now": self.now.isoformat(), "speed": 0}).encode())
            for device in self.devices:
                if device not in self.silent:
                    self.seq += 1
                    beat = {"ts": self.now.isoformat(), "kind": "heartbeat", "seq": self.seq}
                    self.publisher.publish(f"vaka/v1/{self.site}/{device}/telemetry", json.dumps(beat).encode())
            if self.now >= until:
                break
            self.now = min(until, self.now + timedelta(seconds=STEP_S))
        assert await self.publisher.drain(30)

    async def log_of(self, task_id: str) -> list[tuple[str, str]]:
        conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": self.hub.env["VAKA_DB__DB_SCHEMA"]})
        try:
            rows = await conn.fetch(
                "SELECT action, detail FROM checkin_log WHERE checkin_id = $1 ORDER BY seq", task_id
            )
        finally:
            await conn.close()
        return [(r["action"], r["detail"]) for r in rows]


@pytest.fixture
async def night(
    settings: Settings,
    metrics: Metrics,
    unique: str,
    gateway: GatewayDouble,
    private_mosquitto: PrivateMosquitto,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[Night]:
    resident, camera = f"{unique}-r1", f"{unique}-cam1"
    base = sites_for(unique)[0]
    site = base.model_copy(
        update={
            "devices": [
                *base.devices,
                Device(id=camera, kind="camera", resident=resident, supervision_interval_s=CAMERA_SUPERVISION_S),
            ]
        }
    )
    async with migrated_database(settings, metrics) as db:
        await add_inventory_and_staff(db, unique)
        async with db.acquire() as conn:
            await load_inventory(conn, Inventory(sites=[site]))
            await save_plans(conn, [Plan(resident=resident, consent_ref="samtycke 2026-11-02", care_decision_ref="beslut 2026/1187",
                                         camera=camera, travel_minutes=12,
                                         slots=[Slot(at=time(23, 0)), Slot(at=time(2, 0)), Slot(at=time(5, 0))])])  # fmt: skip
    gateway.grant_s = TOKEN_S
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAKA_")}
    env.update(
        VAKA_DB__DSN=PG_DSN,
        VAKA_DB__OWNER_DSN=PG_DSN,
        VAKA_DB__DB_SCHEMA=settings.db.db_schema,
        VAKA_MQTT__HOST="127.0.0.1",
        VAKA_MQTT__PORT=str(private_mosquitto.port),
        VAKA_MQTT__CLIENT_ID=f"hub-{unique}",
        VAKA_MQTT__TELEMETRY_CONNECTION="false",  # one connection: the clock arrives in order with the events
        VAKA_SPOOL__DIRECTORY=str(tmp_path / "spool"),
        VAKA_HTTP__PORT=str(port),
        VAKA_HTTP__PUBLIC_URL=f"http://127.0.0.1:{port}",
        VAKA_HTTP__COOKIE_SECURE="false",
        VAKA_CLOCK__MODE="simulated",
        VAKA_CHECKINS__GATEWAY_URL=gateway.url,
        VAKA_CHECKINS__TICK_S="0.2",
    )
    hub = HubProcess(env, tmp_path / "hub.log", port)
    await hub.start()
    try:
        async with Publisher("127.0.0.1", private_mosquitto.port, client_id=f"night-{unique}") as publisher:
            night = Night(hub, publisher, gateway, unique, resident, camera, [d.id for d in site.devices])
            await night.clock_to(EVENING)
            yield night
    finally:
        await hub.stop()


async def test_a_night_of_check_ins_on_two_phones_through_a_hub_restart(night: Night, browser: Browser) -> None:
    n = night
    url = n.hub.url
    anna = await staff_page(browser, url, n.site, "anna")
    bo = await staff_page(browser, url, n.site, "bo")  # the same unit, another phone
    phones = (anna, bo)
    for page in phones:
        await page.goto(f"{url}/staff/checkins")
        await expect(page.locator(".no-checkins")).to_be_visible()

    async def look(card: str) -> None:
        """Anna looks: the live view comes from the gateway."""
        await anna.locator(card).get_by_role("button", name="Look", exact=True).click()
        await expect(anna.frame_locator("iframe.live-view").locator("body")).to_have_text(n.gateway.frame)

    async def not_visible(card: str) -> None:
        """Anna looks and taps "Not visible", back on the list."""
        await look(card)
        await anna.get_by_role("button", name="Not visible").click()
        await anna.wait_for_url(f"{url}/staff/checkins")

    # 22:46: the 23:00 slot's window (±15 min) is open: the task is on both phones without a reload
    await n.clock_to(datetime(2026, 11, 26, 21, 46, tzinfo=UTC))
    first = n.task("2300")
    for page in phones:
        item = page.locator(f"#checkin-{first}")
        await expect(item).to_contain_text(n.resident, timeout=WAIT_MS)
        await expect(item).to_contain_text("23:00")
        await expect(item.locator(".mode")).to_have_text("Camera")

    # a look inside the slot: the live view straight from the gateway, until its token expires
    await look(f"#checkin-{first}")
    await expect(anna.locator(".look-ended")).to_be_visible(timeout=(TOKEN_S + 10) * 1000)
    await expect(anna.locator("iframe.live-view")).to_have_count(0)
    await expect(anna.get_by_role("button", name="Look again")).to_be_visible()

    # 23:16: the window has closed: the task is overdue on both phones, and a look is refused
    await anna.goto(f"{url}/staff/checkins")
    await n.clock_to(datetime(2026, 11, 26, 22, 16, tzinfo=UTC))
    for page in phones:
        await expect(page.locator(f"#checkin-{first} .overdue-badge")).to_have_text("Overdue", timeout=WAIT_MS)
    # no look and no false 'camera not working': the true endings (issue 26)
    overdue = anna.locator(f"#checkin-{first}")
    await expect(overdue.get_by_role("button", name="Look", exact=True)).to_have_count(0)
    await expect(overdue.get_by_role("button", name="Camera not working")).to_have_count(0)
    for ending in ("Visited instead", "Not needed", "Other (say what)"):
        await expect(overdue.get_by_role("button", name=ending)).to_be_visible()

    # 01:46: the 02:00 slot; "not visible" twice makes a visit, on both phones
    await anna.goto(f"{url}/staff/checkins")
    await n.clock_to(datetime(2026, 11, 27, 0, 46, tzinfo=UTC))
    second = n.task("0200")
    for page in phones:
        await expect(page.locator(f"#checkin-{second}")).to_contain_text("02:00", timeout=WAIT_MS)
    await not_visible(f"#checkin-{second}")
    for page in phones:
        await expect(page.locator(f"#checkin-{second}-2")).to_contain_text("Second look", timeout=WAIT_MS)
    await not_visible(f"#checkin-{second}-2")
    for page in phones:
        visit = page.locator(f"#checkin-{second}-visit")
        await expect(visit.locator(".mode")).to_have_text("Visit", timeout=WAIT_MS)
        await expect(visit.locator(".reason")).to_have_text("Not visible twice: visit")
        await expect(page.locator(f"#checkin-{second}-2")).to_have_count(0)

    # the camera stops at 04:20 (silent from 04:40): at 04:46 the 05:00 slot is a visit from the start
    await n.clock_to(datetime(2026, 11, 27, 3, 20, tzinfo=UTC))
    n.silent.add(n.camera)
    await n.clock_to(datetime(2026, 11, 27, 3, 46, tzinfo=UTC))
    third = n.task("0500")
    for page in phones:
        item = page.locator(f"#checkin-{third}")
        await expect(item.locator(".mode")).to_have_text("Visit", timeout=WAIT_MS)
        await expect(item.locator(".reason")).to_have_text("The camera is not answering: visit instead")
    assert [a for a, _ in await n.log_of(third)] == ["created"]  # made a visit at slot time, not turned later
    assert "mode=physical" in (await n.log_of(third))[0][1]

    for page in phones:  # the windows of 23:00 and of the 02:00 visit have closed
        await expect(page.locator(f"#checkin-{first} .overdue-badge")).to_be_visible()
        await expect(page.locator(f"#checkin-{second}-visit .overdue-badge")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator(f"#checkin-{third} .overdue-badge")).to_have_count(0)

    # the hub process stops and starts again: both phones say so, then show the same tasks
    before = [await page.locator("li.checkin").all_inner_texts() for page in phones]
    await n.hub.stop()
    for page in phones:
        await expect(page.locator("#conn-lost")).to_be_visible(timeout=WAIT_MS)
    await n.hub.start()
    await n.clock_to(n.now)  # the restarted hub follows the simulation's clock from its next message
    for page, texts in zip(phones, before, strict=True):
        await expect(page.locator("#conn-lost")).to_be_hidden(timeout=WAIT_MS)
        await expect(page.locator("li.checkin")).to_have_text(texts, use_inner_text=True, timeout=WAIT_MS)
    assert await bo.locator("li.checkin").count() == 3  # 23:00 overdue, the 02:00 visit, the 05:00 visit

    # axe on the list in both languages
    found = await axe_violations(anna)
    assert found == [], [(v["id"], v["help"]) for v in found]
    await anna.get_by_role("button", name="Svenska").click()
    await expect(anna.locator("h1")).to_have_text("Nattillsyn")
    await expect(anna.locator(f"#checkin-{third} .reason")).to_have_text("Kameran svarar inte: besök i stället")
    found = await axe_violations(anna)
    assert found == [], [(v["id"], v["help"]) for v in found]

    # the live view went from the gateway to the browsers only: the hub (aiohttp) asked for viewing URLs, nothing else
    assert {path for path, agent in n.gateway.clients if "aiohttp" in agent} == {"/api/v1/view-tokens"}
    assert len([path for path, agent in n.gateway.clients if "aiohttp" not in agent and path.startswith("/live/")]) >= 3
    assert n.gateway.frame not in n.hub.log()
    for page in phones:
        await page.context.close()
