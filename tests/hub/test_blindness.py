"""Blind supervision (issue 10, finding 5): the broker goes away while devices keep talking into their own queues.

On main, with the broker down longer than the devices' supervision interval, the hub raised a `device_silent` alarm
for every device while it could not see any of them, then a raise/cancel pair for each queued heartbeat as they
flushed, and never one "supervision lost". Here: silence is not judged while the hub is blind, one supervision-lost
alarm per site says so, the canary fails and the staff page says "go to physical rounds"; when sight returns the
flushed backlog is judged on its own time: the living devices raise nothing, the dead one keeps its one alarm.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.app import Hub
from hub.metrics import Metrics
from hub.model import Device, Inventory, Resident, Site
from hub.people.staff import Role
from hub.settings import Settings
from hub.store.inventory import load_inventory
from hub.store.staff import create_staff
from tests.hub.desk_support import PASSWORD, migrated_database
from tests.hub.web.test_staff_http import login
from tests.services import PrivateMosquitto

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

LIVING = 10
SUPERVISION_S = 10
OUTAGE_S = 16.0


async def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)


class Heartbeats:
    """Living devices: each says it is alive every 2 s, QoS 1, queued in the device while the broker is away."""

    def __init__(self, broker: PrivateMosquitto, site: str) -> None:
        self.site = site
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, reconnect_on_failure=True)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self._task: asyncio.Task[None] | None = None
        self.seq = 0

    async def run(self) -> None:
        while True:
            self.seq += 1
            ts = datetime.now(UTC).isoformat()
            for i in range(LIVING):
                body = json.dumps({"ts": ts, "kind": "heartbeat", "seq": self.seq}).encode()
                self.client.publish(f"vaka/v1/{self.site}/{self.site}-d{i}/event", body, qos=1)
            await asyncio.sleep(2.0)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.client.disconnect()
        self.client.loop_stop()


async def prepare(settings: Settings, site: str) -> None:
    devices = [
        Device(id=f"{site}-d{i}", kind="motion_hall", resident=f"{site}-r1", supervision_interval_s=SUPERVISION_S)
        for i in range(LIVING)
    ]
    devices.append(Device(id=f"{site}-dead", kind="motion_hall", supervision_interval_s=SUPERVISION_S))
    inventory = Inventory(sites=[Site(id=site, residents=[Resident(id=f"{site}-r1", room="1")], devices=devices)])
    async with migrated_database(settings, Metrics()) as db, db.acquire() as conn:
        await load_inventory(conn, inventory)
        await create_staff(
            conn, username=f"nina-{site}", password=PASSWORD, role=Role.STAFF, units=[(site, "*")], lang="en"
        )


async def test_a_broker_outage_blinds_supervision_once_and_a_flushed_backlog_does_not_flap(
    settings: Settings, unique: str
) -> None:
    site = f"s{unique}"
    await prepare(settings, site)
    with PrivateMosquitto() as broker:
        reliability = settings.reliability.model_copy(
            update={
                "blind_grace_s": 3.0,
                "blind_alarm_after_s": 4.0,
                "canary_interval_s": 1.0,
                "canary_timeout_s": 2.0,
            }
        )
        hub_settings = settings.model_copy(
            update={
                "mqtt": settings.mqtt.model_copy(update={"port": broker.port, "reconnect_max_s": 0.5}),
                "reliability": reliability,
            }
        )
        devices = Heartbeats(broker, site)
        devices.start()
        async with Hub(hub_settings) as hub, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as web:
            url = f"http://127.0.0.1:{hub.http_port}"
            await hub.wait_connected()

            def alarms(rule: str) -> list[str]:
                return [
                    a.device_id or a.key for a in hub.desk.machine.open_alarms() if a.site == site and a.rule_id == rule
                ]

            await wait_until("the dead device is found silent", lambda: alarms("device_silent") == [f"{site}-dead"])
            [dead_alarm] = [
                a.id for a in hub.desk.machine.open_alarms() if a.rule_id == "device_silent" and a.site == site
            ]
            await wait_until(
                "the canary came round", lambda: hub.metrics.canary_last_success.labels("events")._value.get() > 0
            )
            assert (await login(web, url, f"nina-{site}", origin=hub_settings.http.public_url)).status in (302, 303)
            async with web.get(f"{url}/staff/health") as resp:
                assert (await resp.json()) == {"degraded": False}

            broker.stop()
            outage_started = time.monotonic()
            await wait_until("supervision lost", lambda: alarms("supervision_lost") == [f"supervision_lost:{site}"])
            assert hub.metrics.supervision_blind._value.get() == 1
            async with web.get(f"{url}/staff/") as page:
                html = await page.text()
            banner = re.search(r'<div id="degraded"[^>]*>([^<]*)<', html)
            assert banner is not None
            assert "hidden" not in banner.group(0)  # shown, not merely in the page
            assert "go to physical rounds" in banner.group(1)
            await wait_until("the canary fails", lambda: hub.metrics.canary_failing.labels("events")._value.get() == 1)
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
            assert alarms("device_silent") == [f"{site}-dead"]  # longer than supervision, and yet: blind, not silent
            broker.start()

            await wait_until("sight returns", lambda: alarms("supervision_lost") == [], timeout_s=30)
            await asyncio.sleep(SUPERVISION_S / 2)
            assert alarms("device_silent") == [f"{site}-dead"]
            assert [
                a.id for a in hub.desk.machine.open_alarms() if a.rule_id == "device_silent" and a.site == site
            ] == [dead_alarm]
            await wait_until(
                "the canary recovers", lambda: hub.metrics.canary_failing.labels("events")._value.get() == 0
            )
            async with web.get(f"{url}/staff/health") as resp:
                assert (await resp.json()) == {"degraded": False}
            await hub.desk.lane.store.flushed()
            async with hub.db.acquire() as conn:
                silent_raised = await conn.fetchval(
                    "SELECT count(*) FROM desk_alarms WHERE site = $1 AND rule_id = 'device_silent'", site
                )
                lost = await conn.fetchval(
                    "SELECT count(*) FROM desk_alarms WHERE site = $1 AND rule_id = 'supervision_lost'", site
                )
            assert (silent_raised, lost) == (1, 1)  # no raise/cancel pairs from the flushed backlog; one outage alarm
        await devices.stop()
