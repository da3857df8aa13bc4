"""The engine and the desk agree after a restart (issue 22, point 5), with the hub in-process on the real services.

The desk restores its open alarms from the database, the engine from its snapshot (or from nothing); when they
disagree about an open device_silent, no sign of life ever closed it on main: the engine thought the device alive
(it never raised, so it never cleared), the desk kept the alarm open for good. Here the start-up reconciles them by
key, and the device's next fresh heartbeat closes the alarm.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.app import Hub
from hub.metrics import Metrics
from hub.model import Device, Inventory, Resident, Site
from hub.recovery import snapshots
from hub.settings import Settings
from hub.store.inventory import load_inventory
from tests.hub.desk_support import migrated_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SUPERVISION_S = 10


async def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)


async def test_a_silence_the_engine_lost_in_a_restart_closes_at_the_desk_on_a_fresh_heartbeat(
    settings: Settings, unique: str
) -> None:
    site = f"a{unique}"
    device = f"{site}-bed"
    inventory = Inventory(
        sites=[
            Site(
                id=site,
                residents=[Resident(id=f"{site}-r1", room="1")],
                devices=[
                    Device(id=device, kind="bed_sensor", resident=f"{site}-r1", supervision_interval_s=SUPERVISION_S)
                ],
            )
        ]
    )
    async with migrated_database(settings, Metrics()) as db, db.acquire() as conn:
        await load_inventory(conn, inventory)
    hub_settings = settings.model_copy(
        update={"reliability": settings.reliability.model_copy(update={"blind_grace_s": 0.5})}
    )

    def silences(hub: Hub) -> list[str]:
        return [a.id for a in hub.desk.machine.open_alarms() if a.rule_id == "device_silent" and a.device_id == device]

    async with Hub(hub_settings) as hub:
        await hub.wait_connected()
        await wait_until("the silent bed sensor raises its alarm", lambda: len(silences(hub)) == 1)
        [alarm_id] = silences(hub)
    # the engine restarts from nothing (its snapshot lost); the desk from the database
    (hub_settings.spool.directory / snapshots.ENGINE_FILE).unlink()
    async with migrated_database(settings, Metrics()) as db, db.acquire() as conn:
        await conn.execute("DELETE FROM engine_state")

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    try:
        async with Hub(hub_settings) as hub:
            await hub.wait_connected()
            assert silences(hub) == [alarm_id]  # restored at the desk
            seq = 0
            deadline = time.monotonic() + 15
            while silences(hub) and time.monotonic() < deadline:
                seq += 1
                body = {"ts": datetime.now(UTC).isoformat(), "kind": "heartbeat", "seq": seq}
                client.publish(f"vaka/v1/{site}/{device}/event", json.dumps(body).encode(), qos=1)
                await asyncio.sleep(0.5)
            assert silences(hub) == [], "the device speaks again, and its silence alarm stays open"
            await hub.desk.lane.store.flushed()
            async with hub.db.acquire() as conn:
                state = await conn.fetchval("SELECT state FROM desk_alarms WHERE id = $1", alarm_id)
            assert state == "cancelled"  # closed itself: a technical alarm nobody had taken
    finally:
        client.disconnect()
        client.loop_stop()
