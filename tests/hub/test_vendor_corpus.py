"""Real product payloads (tests/adapters/fixtures, each folder's README cites the vendor's documentation) through the
hub as a process (`vaka serve`) on the real broker and database, seen as an integration or a receiving centre sees
them: one alarm per fault, one notification per technical fault, the right ending; and the hub's own retained status,
online while it runs and offline (its Last Will) once it is killed."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from alarms.instant import ABORT_REASON, RESET_REASON
from hub.model import Device, Inventory, Site
from hub.settings import DbSettings
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from tests.adapters.support import fixture
from tests.conftest import MQTT_HOST, MQTT_PORT, PG_DSN
from tests.hub.test_durability import HubProcess
from tests.hub.test_ingest import publish_all
from tests.hub.test_vendor_routes import dose_missed_now, radar_now

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

KEEPALIVE_S = 5  # the least the settings allow: the broker sends the Last Will after 1.5 keepalives of silence


def stats(camera_fps: float) -> bytes:
    """Frigate's `frigate/stats` (published every 60 s by default) with the entrance camera at `camera_fps`."""
    msg = json.loads(fixture("frigate", "stats.json"))
    msg["cameras"]["entre"]["camera_fps"] = camera_fps
    return json.dumps(msg).encode()


class Watcher:
    """What an integration or a receiving centre subscribed to the site sees: alarm states and the hub's status."""

    def __init__(self, site: str) -> None:
        self.alarms: list[dict[str, Any]] = []
        self.status: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self._client.on_message = self._message
        self._client.connect(MQTT_HOST, MQTT_PORT)
        self._client.subscribe([(f"vaka/v1/{site}/alarms/#", 1), (f"vaka/v1/{site}/hub/status", 1)])
        self._client.loop_start()

    def _message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        if not msg.payload:
            return
        with self._lock:
            (self.status if msg.topic.endswith("/hub/status") else self.alarms).append(json.loads(msg.payload))

    def of(self, rule_id: str) -> list[dict[str, Any]]:
        """The notifications an integration got for `rule_id`'s alarms, in order."""
        with self._lock:
            return [a for a in self.alarms if a["rule_id"] == rule_id]

    def last_status(self) -> str | None:
        with self._lock:
            return self.status[-1]["state"] if self.status else None

    def clear_retained(self, site: str) -> None:
        """Remove the hub's retained status of `site` from the shared broker."""
        self._client.publish(f"vaka/v1/{site}/hub/status", b"", qos=1, retain=True).wait_for_publish(10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def load_site(db: DbSettings, site: str) -> None:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": db.db_schema})
    try:
        await migrate(conn, db)
        devices = [
            Device(id="entre", kind="camera", vendor="frigate"),
            Device(id="kok_vatten", kind="water_sensor", vendor="zigbee2mqtt"),
        ]
        await load_inventory(conn, Inventory(sites=[Site(id=site, devices=devices)]))
    finally:
        await conn.close()


async def alarm_log(schema: str) -> list[tuple[str, str, str, str]]:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch(
            "SELECT d.rule_id, l.actor, l.action, l.detail FROM desk_alarm_log l"
            " JOIN desk_alarms d ON d.id = l.alarm_id ORDER BY l.seq"
        )
    finally:
        await conn.close()
    return [(r["rule_id"], r["actor"], r["action"], r["detail"]) for r in rows]


@pytest.fixture
def hub_process(db_settings: DbSettings, unique: str, tmp_path: Path) -> Iterator[HubProcess]:
    """`vaka serve` on the shared broker and the test's own schema, the vendor formats routed to the test's site."""
    site = f"s{unique}"
    routes = [
        {"topic_filter": f"z{unique}/#", "adapter": "zigbee2mqtt", "site": site},
        {"topic_filter": f"f{unique}/#", "adapter": "frigate", "site": site},
        {"topic_filter": f"sc{unique}/#", "adapter": "scaip", "site": site},
        {"topic_filter": f"r{unique}/+/+", "adapter": "fall_radar", "site": site},
        {"topic_filter": f"m{unique}/+/events", "adapter": "medication_robot", "site": site},
    ]
    hub = HubProcess(SimpleNamespace(dsn=PG_DSN), SimpleNamespace(port=MQTT_PORT), tmp_path, unique)  # type: ignore[arg-type]
    hub.env |= {
        "VAKA_DB__DB_SCHEMA": db_settings.db_schema,
        "VAKA_MQTT__HOST": MQTT_HOST,
        "VAKA_MQTT__CLIENT_ID": f"vaka-corpus-{unique}",
        "VAKA_MQTT__KEEPALIVE_S": str(KEEPALIVE_S),
        "VAKA_MQTT__ROUTES": json.dumps(routes),
    }
    yield hub
    hub.stop()


async def test_real_payloads_through_the_running_hub_give_one_alarm_per_fault_and_the_right_ending(
    hub_process: HubProcess, db_settings: DbSettings, unique: str
) -> None:
    site, ref = f"s{unique}", f"r{unique}"
    await load_site(db_settings, site)
    watcher = Watcher(site)
    try:
        await asyncio.to_thread(hub_process.start)
        await asyncio.to_thread(hub_process.wait_status, "ready")
        assert await asyncio.to_thread(until, lambda: watcher.last_status() == "online")

        # a camera that stopped: Frigate says so in every stats message (every 60 s): one alarm, one notification
        await asyncio.to_thread(publish_all, [(f"f{unique}/stats", stats(0.0)) for _ in range(11)])
        # the leak, repeated with every battery report (Zigbee2MQTT's cache_state), then dry
        wet, dry = fixture("zigbee2mqtt", "water_leak.json"), fixture("zigbee2mqtt", "water_dry.json")
        await asyncio.to_thread(publish_all, [(f"z{unique}/kok vatten", wet) for _ in range(4)])
        assert await asyncio.to_thread(until, lambda: len(watcher.of("water_leak")) >= 1)
        await asyncio.to_thread(publish_all, [(f"z{unique}/kok vatten", dry)])
        assert await asyncio.to_thread(until, lambda: watcher.of("water_leak")[-1]["condition_ended_at"] is not None)

        # a social alarm unit relayed over MQTT: the resident cancels at the unit (it stays); the next press rings
        # again and the unit gives up on Vaka for it (RE: it stays); the third press rings again, and the carer's
        # check-out at the unit (status code 0111) closes it
        unit = f"sc{unique}/10149471"

        def scaip(name: str, n: int) -> tuple[str, bytes]:
            """The fixture under the n-th alarm's own ref (a new message session, a new ref)."""
            return (unit, fixture("scaip", name).replace(b"1193308443", f"{ref}{n}".encode()))

        await asyncio.to_thread(publish_all, [scaip("alarm.xml", 1)])
        assert await asyncio.to_thread(until, lambda: len(watcher.of("alarm_button")) >= 1)
        await asyncio.to_thread(publish_all, [scaip("cancel.xml", 1), scaip("alarm.xml", 2)])
        assert await asyncio.to_thread(until, lambda: watcher.of("alarm_button")[-1]["incidents"] == 2)
        await asyncio.to_thread(publish_all, [scaip("abort.xml", 2), scaip("alarm.xml", 3)])
        assert await asyncio.to_thread(until, lambda: watcher.of("alarm_button")[-1]["incidents"] == 3)
        await asyncio.to_thread(publish_all, [scaip("check_out.xml", 3)])
        assert await asyncio.to_thread(until, lambda: watcher.of("alarm_button")[-1]["state"] == "cancelled")

        # a fall the radar then withdraws (the person got up): it stays with staff; a missed dose: nothing ends it
        await asyncio.to_thread(publish_all, [(f"r{unique}/VYR-0A1B2C/events", radar_now("fall_fall_detected.json"))])
        await asyncio.to_thread(publish_all, [(f"m{unique}/EVD-55213/events", dose_missed_now())])
        assert await asyncio.to_thread(
            until, lambda: bool(watcher.of("fall")) and bool(watcher.of("medication_missed"))
        )
        await asyncio.to_thread(publish_all, [(f"r{unique}/VYR-0A1B2C/events", radar_now("fall_canceled.json"))])
        assert await asyncio.to_thread(until, lambda: watcher.of("fall")[-1]["condition_ended_at"] is not None)

        # the camera works again while nobody has taken its alarm: it closes itself
        await asyncio.to_thread(publish_all, [(f"f{unique}/stats", stats(5.0))])
        assert await asyncio.to_thread(until, lambda: watcher.of("camera_offline")[-1]["state"] == "cancelled")

        camera = watcher.of("camera_offline")
        assert [a["state"] for a in camera] == ["raised", "cancelled"], "eleven stats with the camera stopped: one ring"
        assert camera[0]["incidents"] == 1
        leak = watcher.of("water_leak")
        assert (leak[0]["state"], leak[0]["incidents"]) == ("raised", 1)
        assert {a["id"] for a in leak} == {leak[0]["id"]}, "a leak repeated four times is one alarm"

        log = await alarm_log(db_settings.db_schema)
        rings = [(rule, action) for rule, _, action, _ in log if action in ("raised", "repeated")]
        # (nobody is on duty in this test: the care alarms also raise the site's nobody_reached, not counted here)
        assert sorted(r for r in rings if r[0] != "nobody_reached") == [
            ("alarm_button", "raised"),
            ("alarm_button", "repeated"),  # the second and third press: a care repeat rings
            ("alarm_button", "repeated"),
            ("camera_offline", "raised"),
            ("fall", "raised"),
            ("medication_missed", "raised"),
            ("water_leak", "raised"),
        ]
        endings = [(rule, actor, action, detail) for rule, actor, action, detail in log if rule != "nobody_reached"]
        assert ("water_leak", "rule", "condition_ended", "the leak sensor is dry again") in endings
        assert ("alarm_button", "device", "condition_ended", "cancelled at the alarm button") in endings
        assert ("alarm_button", "device", "sender_gave_up", ABORT_REASON) in endings
        assert ("alarm_button", "device", "reset", RESET_REASON) in endings
        assert ("camera_offline", "rule", "cancelled", "camera back online") in endings
        assert ("fall", "device", "condition_ended", "the fall radar withdrew the fall (person got up)") in endings
        assert [a["state"] for a in watcher.of("fall")][-1] == "raised", "the fall stays with staff"
        assert [a["state"] for a in watcher.of("medication_missed")] == ["raised"]

        # the hub dies: the broker says so on its behalf (the Last Will), retained for whoever looks next
        await asyncio.to_thread(hub_process.kill)
        assert await asyncio.to_thread(until, lambda: watcher.last_status() == "offline", 3 * KEEPALIVE_S)
    finally:
        watcher.clear_retained(site)
        watcher.close()
