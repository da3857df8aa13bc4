"""End to end: a fall published over MQTT rings on the staff pages of its unit; a hub restart keeps the alarm and
continues its escalation from where it stood. The real hub (`hub.app.Hub`), Mosquitto, PostgreSQL and Chromium."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import paho.mqtt.client as paho
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, expect

from hub.app import Hub
from hub.metrics import Metrics
from hub.settings import DeskSettings, EscalationPolicy, EscalationTier, NotifySettings, Settings
from tests.hub.desk_support import add_inventory_and_staff, migrated_database
from tests.hub.web.conftest import CHROMIUM, free_port, staff_page

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium")


class Receiver:
    """A webhook receiver that records delivery ids in arrival order."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        msg_id = request.headers["webhook-id"]
        if msg_id not in self.ids:
            self.ids.append(msg_id)
        return web.Response(status=204)

    def tiers(self) -> list[str]:
        return [i.rsplit(":", 1)[1] for i in self.ids if ":tier" in i]

    async def wait_for(self, tier: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while tier not in self.tiers():
            if time.monotonic() > deadline:
                pytest.fail(f"{tier} never arrived; got {self.tiers()}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield rec, str(server.make_url("/hook"))
    await server.close()


@pytest.fixture
async def hub_settings(settings: Settings, metrics: Metrics, unique: str, receiver: tuple[Receiver, str]) -> Settings:
    port = free_port()
    settings.http.port = port
    settings.http.public_url = f"http://127.0.0.1:{port}"
    settings.desk = DeskSettings(
        policies=[
            EscalationPolicy(
                category="care",
                tiers=[
                    EscalationTier(after_s=0, audience="unit"),
                    EscalationTier(after_s=1.5, audience="nurse"),
                    EscalationTier(after_s=4.5, audience="lead"),
                ],
                repeat_s=60,
            )
        ]
    )
    settings.notify = NotifySettings(webhook_urls=[receiver[1]], webhook_backoff_s=0.05)
    async with migrated_database(settings, metrics) as db:
        await add_inventory_and_staff(db, unique)
    return settings


def publish_fall(settings: Settings, site: str) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"pub-{site}", protocol=paho.MQTTv5)
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    payload = json.dumps({"ts": datetime.now(UTC).isoformat(), "kind": "fall_detected", "seq": 1})
    client.publish(f"vaka/v1/{site}/{site}-radar1/event", payload, qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


async def test_fall_over_mqtt_rings_on_the_unit_and_survives_a_hub_restart(
    browser: Browser,
    hub_settings: Settings,
    unique: str,
    receiver: tuple[Receiver, str],
) -> None:
    rec = receiver[0]
    hub = Hub(hub_settings, Metrics())
    await hub.__aenter__()
    try:
        await hub.wait_connected()
        url = hub_settings.http.public_url
        anna = await staff_page(browser, url, unique, "anna")
        bo = await staff_page(browser, url, unique, "bo")
        carl = await staff_page(browser, url, unique, "carl")
        for _ in range(100):
            if hub.desk.pages.client_count >= 3:
                break
            await asyncio.sleep(0.05)

        await asyncio.to_thread(publish_fall, hub_settings, unique)
        card = anna.locator("li.alarm")
        await expect(card).to_have_count(1, timeout=1000)
        await expect(bo.locator("li.alarm")).to_have_count(1, timeout=1000)
        await expect(card.locator(".room")).to_have_text("101")
        alarm_id = await card.get_attribute("data-id")
        await rec.wait_for("tier1")  # the nurse has been called; the lead is next
        assert rec.tiers() == ["tier0", "tier1"]
    finally:
        await hub.__aexit__(None, None, None)
    await expect(anna.locator("#conn-lost")).to_be_visible(timeout=5000)

    hub = Hub(hub_settings, Metrics())
    await hub.__aenter__()
    try:
        restored = hub.desk.machine.get(str(alarm_id))
        assert restored is not None
        assert restored.next_tier == 2
        await expect(anna.locator("#conn-lost")).to_be_hidden(timeout=15000)
        await expect(anna.locator(f"#alarm-{alarm_id}")).to_be_visible()
        await rec.wait_for("tier2")
        assert rec.tiers() == ["tier0", "tier1", "tier2"]  # continued, not started over
        await anna.locator(f"#alarm-{alarm_id}").get_by_role("button", name="Accept").click()
        await expect(bo.locator(f"#alarm-{alarm_id} .accepted-by")).to_have_text("Anna", timeout=1000)
        assert await carl.locator("li.alarm").count() == 0
    finally:
        await hub.__aexit__(None, None, None)
