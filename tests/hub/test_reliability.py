"""Alarms that stay right under faults (issue 10): old news, replays, clocks and retained messages, end to end.

The hub runs with the real Mosquitto and PostgreSQL; devices publish over MQTT as a device would. What a user
notices: which alarms are open on the desk, and what the hub published about them for integrations.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.app import Hub
from hub.desk.alarm import Alarm
from hub.metrics import Metrics
from hub.model import Device, Inventory, Resident, Site
from hub.settings import Settings
from hub.store.inventory import load_inventory
from tests.conftest import MQTT_HOST, MQTT_PORT, PG_DSN
from tests.hub.desk_support import migrated_database

pytestmark = pytest.mark.timeout(120)


def home(site: str, supervision_s: int = 3600) -> Inventory:
    """Two residents: r1 with a fall radar, an alarm button, an entrance door and a camera; r2 with a button."""
    return Inventory(
        sites=[
            Site(
                id=site,
                residents=[Resident(id=f"{site}-r1", room="101"), Resident(id=f"{site}-r2", room="102")],
                devices=[
                    Device(id=f"{site}-radar", kind="fall_radar", resident=f"{site}-r1", safety=True),
                    Device(id=f"{site}-button", kind="alarm_button", resident=f"{site}-r1", safety=True),
                    Device(id=f"{site}-door", kind="door_entrance", resident=f"{site}-r1"),
                    Device(
                        id=f"{site}-cam", kind="camera", resident=f"{site}-r1", supervision_interval_s=supervision_s
                    ),
                    Device(id=f"{site}-button2", kind="alarm_button", resident=f"{site}-r2", safety=True),
                ],
            )
        ]
    )


async def load_home(settings: Settings, inventory: Inventory) -> None:
    async with migrated_database(settings, Metrics()) as db, db.acquire() as conn:
        await load_inventory(conn, inventory)


class Device_:
    """A device on the shared broker: publishes QoS 1 and waits for the broker's ack; also watches alarm topics."""

    def __init__(self, site: str) -> None:
        self.site = site
        self.published: dict[str, list[dict[str, object]]] = {}
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect(MQTT_HOST, MQTT_PORT)
        self.client.loop_start()
        self.client.subscribe(f"vaka/v1/{site}/alarms/+", qos=1)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.published.setdefault(msg.topic.rsplit("/", 1)[1], []).append(json.loads(msg.payload))

    def send(self, device: str, kind: str, ts: datetime, *, retain: bool = False, **fields: object) -> None:
        payload = json.dumps({"ts": ts.isoformat(), "kind": kind, **fields}).encode()
        info = self.client.publish(f"vaka/v1/{self.site}/{self.site}-{device}/event", payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=10)

    def status(self, device: str, state: str, *, retain: bool) -> None:
        topic = f"vaka/v1/{self.site}/{self.site}-{device}/status"
        info = self.client.publish(topic, json.dumps({"state": state}).encode(), qos=1, retain=retain)
        info.wait_for_publish(timeout=10)

    def changes(self, alarm_id: str) -> list[str]:
        """The states the hub published for an alarm, in order."""
        with self._lock:
            return [str(m["state"]) for m in self.published.get(alarm_id, [])]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
async def rig(settings: Settings, unique: str) -> AsyncIterator[tuple[Hub, Device_, asyncpg.Connection]]:
    site = f"s{unique}"
    await load_home(settings, home(site))
    device = Device_(site)
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": settings.db.db_schema})
    try:
        async with Hub(settings) as hub:
            await hub.wait_connected()
            yield hub, device, conn
    finally:
        device.close()
        await conn.close()


async def processed(
    conn: asyncpg.Connection, site: str, expected: int, table: str = "events", timeout_s: float = 15.0
) -> None:
    """Wait until `expected` rows of this test's site are stored: ingest runs the alarm lane before it stores.

    Every hub on the shared broker hears every site, so rows are counted by the site's topics only."""
    where = "site = $1" if table == "events" else "topic LIKE 'vaka/v1/' || $1 || '/%'"
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (n := await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", site)) < expected:
        assert asyncio.get_running_loop().time() < deadline, f"only {n} of {expected} rows in {table}"
        await asyncio.sleep(0.05)


def open_alarms(hub: Hub, rule_id: str, site: str) -> list[Alarm]:
    """Open alarms of one rule at this test's site (the shared broker carries other tests' sites too)."""
    return [a for a in hub.desk.machine.open_alarms() if a.rule_id == rule_id and a.site == site]


async def test_an_older_battery_reading_does_not_clear_a_newer_alarm(
    rig: tuple[Hub, Device_, asyncpg.Connection],
) -> None:
    hub, device, conn = rig
    now = datetime.now(UTC)
    await asyncio.to_thread(device.send, "radar", "battery", now, value=10, seq=2)
    await processed(conn, device.site, 1)
    [alarm] = open_alarms(hub, "battery_low", device.site)
    await asyncio.to_thread(device.send, "radar", "battery", now - timedelta(minutes=5), value=30, seq=1)
    await processed(conn, device.site, 2)
    assert [a.id for a in open_alarms(hub, "battery_low", device.site)] == [alarm.id]


async def test_a_cancel_dated_before_the_press_and_a_redelivered_press_change_nothing(
    rig: tuple[Hub, Device_, asyncpg.Connection],
) -> None:
    hub, device, conn = rig
    now = datetime.now(UTC)
    await asyncio.to_thread(device.send, "button", "alarm_button", now, seq=10)
    await processed(conn, device.site, 1)
    [alarm] = open_alarms(hub, "alarm_button", device.site)
    await asyncio.to_thread(device.send, "button", "alarm_button_cancel", now - timedelta(seconds=2), seq=9)
    await processed(conn, device.site, 2)
    assert [a.id for a in open_alarms(hub, "alarm_button", device.site)] == [alarm.id]
    assert device.changes(alarm.id) == ["raised"]  # nothing told integrations it was withdrawn
    # the real cancel withdraws it; the same press delivered again afterwards raises no second alarm
    await asyncio.to_thread(device.send, "button", "alarm_button_cancel", now + timedelta(seconds=1), seq=11)
    await processed(conn, device.site, 3)
    await asyncio.to_thread(device.send, "button", "alarm_button", now, seq=10)
    await asyncio.to_thread(device.send, "radar", "heartbeat", now + timedelta(seconds=2), seq=12)
    await processed(conn, device.site, 4)  # the re-delivered press is stored once: the heartbeat marks the lane as done
    assert [a.id for a in open_alarms(hub, "alarm_button", device.site) if a.id != alarm.id] == []
    raised = await conn.fetchval(
        "SELECT count(*) FROM desk_alarm_log l JOIN desk_alarms a ON a.id = l.alarm_id"
        " WHERE l.action = 'raised' AND a.rule_id = 'alarm_button'"
    )
    assert raised in (0, 1)  # persisted in the background: never two


async def test_the_same_fall_delivered_three_times_is_counted_once(
    rig: tuple[Hub, Device_, asyncpg.Connection],
) -> None:
    hub, device, conn = rig
    now = datetime.now(UTC)
    for _ in range(3):
        await asyncio.to_thread(device.send, "radar", "fall_detected", now, seq=5, ref="f1")
    await asyncio.to_thread(device.send, "button2", "heartbeat", now, seq=6)
    await processed(conn, device.site, 2)
    [alarm] = open_alarms(hub, "fall", device.site)
    assert alarm.count == 1


async def test_a_night_door_opening_reported_in_the_morning_raises_nothing(
    rig: tuple[Hub, Device_, asyncpg.Connection],
) -> None:
    hub, device, conn = rig
    zone = ZoneInfo("Europe/Stockholm")
    local_now = datetime.now(zone)
    three = local_now.replace(hour=3, minute=0, second=0, microsecond=0)
    if three > local_now - timedelta(minutes=10):
        three -= timedelta(days=1)
    await asyncio.to_thread(device.send, "door", "door_open", three.astimezone(UTC), seq=1)
    await processed(conn, device.site, 1)
    assert open_alarms(hub, "entrance_door_night", device.site) == []


async def test_clocks_far_off_are_refused_or_ignored_and_fire_no_timer(
    rig: tuple[Hub, Device_, asyncpg.Connection],
) -> None:
    hub, device, conn = rig
    now = datetime.now(UTC)
    await asyncio.to_thread(device.send, "door", "motion", now + timedelta(minutes=50), seq=1)
    await processed(conn, device.site, 1, "rejected_messages")
    reason = await conn.fetchval(
        "SELECT reason FROM rejected_messages WHERE topic LIKE 'vaka/v1/' || $1 || '/%'", device.site
    )
    assert reason.startswith("future_timestamp")
    await asyncio.to_thread(device.send, "button2", "alarm_button", datetime(2001, 1, 1, 3, tzinfo=UTC), seq=1)
    await processed(conn, device.site, 1)
    assert [
        a for a in hub.desk.machine.open_alarms() if a.site == device.site
    ] == []  # no silence storm, nothing from 2001


async def test_a_fall_cancel_without_ref_from_a_stranger_leaves_the_fall_standing(
    rig: tuple[Hub, Device_, asyncpg.Connection],
) -> None:
    """Issue 9: an anonymous client published `fall_cancelled` without a ref and withdrew a real fall alarm."""
    hub, device, conn = rig
    now = datetime.now(UTC)
    await asyncio.to_thread(device.send, "radar", "fall_detected", now, seq=1, ref="f1")
    await processed(conn, device.site, 1)
    [alarm] = open_alarms(hub, "fall", device.site)
    await asyncio.to_thread(device.send, "radar", "fall_cancelled", now + timedelta(seconds=1), seq=2)
    await asyncio.to_thread(device.send, "button", "fall_cancelled", now + timedelta(seconds=1), seq=3, ref="f1")
    await processed(conn, device.site, 3)
    assert [a.id for a in open_alarms(hub, "fall", device.site)] == [alarm.id]
    assert device.changes(alarm.id) == ["raised"]
    assert hub.engine.withdrawals_unmatched == 2


async def test_a_retained_online_is_no_sign_of_life(settings: Settings, unique: str) -> None:
    """A broker (or hub) restart replays a dead device's retained "online": it must not end its silence alarm."""
    site = f"s{unique}"
    await load_home(settings, home(site, supervision_s=10))
    settings = settings.model_copy(
        update={"reliability": settings.reliability.model_copy(update={"blind_grace_s": 1.0})}
    )
    device = Device_(site)
    await asyncio.to_thread(device.status, "cam", "online", retain=True)  # left by the camera before it died
    try:
        async with Hub(settings) as hub:
            await hub.wait_connected()
            deadline = asyncio.get_running_loop().time() + 30
            while not [a for a in open_alarms(hub, "device_silent", device.site) if a.device_id == f"{site}-cam"]:
                assert asyncio.get_running_loop().time() < deadline, "the silent camera raised no alarm"
                await asyncio.sleep(0.1)
        [alarm] = [a for a in open_alarms(hub, "device_silent", device.site) if a.device_id == f"{site}-cam"]
        async with Hub(settings) as again:  # a hub restart: the broker replays the retained status on subscribe
            await again.wait_connected()
            gated = again.metrics.events_gated.labels("retained")
            deadline = asyncio.get_running_loop().time() + 10
            while gated._value.get() < 1:  # the retained status has come and gone through ingest
                assert asyncio.get_running_loop().time() < deadline, "the broker replayed no retained status"
                await asyncio.sleep(0.05)
            silent = [a for a in open_alarms(again, "device_silent", device.site) if a.device_id == f"{site}-cam"]
            assert [a.id for a in silent] == [alarm.id]  # the same alarm: not cancelled, not raised anew
    finally:
        device.client.publish(f"vaka/v1/{site}/{site}-cam/status", b"", qos=1, retain=True).wait_for_publish(5)
        device.close()


@pytest.mark.parametrize(("device", "supervision_s", "watch_s"), [("radar", 600, 0.0), ("cam", 10, 12.0)])
async def test_a_last_will_offline_is_evidence_of_absence_at_once_and_one_alarm(
    settings: Settings, unique: str, device: str, supervision_s: int, watch_s: float
) -> None:
    """On main a radar's Will counted as a sign of life (`device_silent` a whole supervision interval later), and a
    camera going offline gave `camera_offline` and then `device_silent`: two alarms for one fault."""
    site = f"s{unique}"
    inventory = home(site, supervision_s=supervision_s)
    devices = [d.model_copy(update={"supervision_interval_s": supervision_s}) for d in inventory.sites[0].devices]
    await load_home(settings, Inventory(sites=[inventory.sites[0].model_copy(update={"devices": devices})]))
    settings = settings.model_copy(
        update={"reliability": settings.reliability.model_copy(update={"blind_grace_s": 0.5, "offline_grace_s": 2.0})}
    )
    device_id = f"{site}-{device}"
    topic = f"vaka/v1/{site}/{device_id}/status"
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{device}-{unique}", protocol=paho.MQTTv5)
    client.will_set(topic, json.dumps({"state": "offline"}).encode(), qos=1, retain=True)
    try:
        async with Hub(settings) as hub:
            await hub.wait_connected()

            def faults() -> list[str]:
                return [
                    a.rule_id for a in hub.desk.machine.open_alarms() if a.site == site and a.device_id == device_id
                ]

            client.connect(MQTT_HOST, MQTT_PORT)
            client.loop_start()
            await asyncio.sleep(0.5)
            client.loop_stop()
            client.socket().close()  # the device loses power: no DISCONNECT, the broker sends its Will
            deadline = asyncio.get_running_loop().time() + 15
            while not faults():
                assert asyncio.get_running_loop().time() < deadline, "the Will raised nothing within 15 s"
                await asyncio.sleep(0.1)
            await asyncio.sleep(watch_s)  # past the device's own supervision interval: still one alarm
            assert len(faults()) == 1
    finally:
        cleaner = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        cleaner.connect(MQTT_HOST, MQTT_PORT)
        cleaner.loop_start()
        cleaner.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        cleaner.disconnect()
        cleaner.loop_stop()
