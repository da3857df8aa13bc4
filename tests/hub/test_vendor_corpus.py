"""Real product payloads (tests/adapters/fixtures, each folder's README cites the vendor's documentation) through the
running hub on the real broker and database: one alarm per fault, one ring per technical fault, the right ending."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg

from hub.app import Hub
from hub.desk.alarm import Alarm
from hub.model import AlarmState, Device, Inventory, Site
from hub.settings import AdapterRoute, Settings
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from tests.adapters.support import fixture
from tests.conftest import PG_DSN
from tests.hub.test_ingest import publish_all
from tests.hub.test_vendor_routes import wait_until

ALARM = b"<mrq><ref>{ref}</ref><cid>{cid}</cid><dty>3</dty><mty>ME</mty><stc>10</stc><crd>gsm:</crd></mrq>"


def stats(camera_fps: float) -> bytes:
    """Frigate's `frigate/stats` (published every 60 s by default) with the entrance camera at `camera_fps`."""
    msg = json.loads(fixture("frigate", "stats.json"))
    msg["cameras"]["entre"]["camera_fps"] = camera_fps
    return json.dumps(msg).encode()


def routed(settings: Settings, unique: str) -> Settings:
    site = f"s{unique}"
    routes = [
        AdapterRoute(topic_filter=f"z{unique}/#", adapter="zigbee2mqtt", site=site),
        AdapterRoute(topic_filter=f"f{unique}/#", adapter="frigate", site=site),
        AdapterRoute(topic_filter=f"sc{unique}/#", adapter="scaip", site=site),
    ]
    return settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"routes": routes})})


async def load_site(settings: Settings, unique: str) -> None:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": settings.db.db_schema})
    try:
        await migrate(conn, settings.db)
        devices = [
            Device(id="entre", kind="camera", vendor="frigate"),
            Device(id="kok_vatten", kind="water_sensor", vendor="zigbee2mqtt"),
        ]
        await load_inventory(conn, Inventory(sites=[Site(id=f"s{unique}", devices=devices)]))
    finally:
        await conn.close()


def open_alarm(hub: Hub, rule_id: str) -> Alarm | None:
    return next((a for a in hub.desk.machine.open_alarms() if a.rule_id == rule_id), None)


async def test_real_payloads_give_one_alarm_per_fault_one_ring_per_technical_fault_and_the_right_ending(
    settings: Settings, unique: str, tmp_path: Path
) -> None:
    settings = routed(settings, unique)
    await load_site(settings, unique)
    cid, ref = f"u{unique}", f"r{unique}"
    async with Hub(settings) as hub:
        await hub.wait_connected()
        # a camera that stopped: Frigate says so in every stats message
        await asyncio.to_thread(publish_all, [(f"f{unique}/stats", stats(0.0)) for _ in range(11)])
        assert await wait_until(lambda: (a := open_alarm(hub, "camera_offline")) is not None and a.count == 11)
        camera = open_alarm(hub, "camera_offline")
        assert camera is not None
        assert (camera.incidents, camera.state) == (1, AlarmState.RAISED)

        # a leak, repeated with every battery report (Zigbee2MQTT's cache_state), then dry
        wet, dry = fixture("zigbee2mqtt", "water_leak.json"), fixture("zigbee2mqtt", "water_dry.json")
        await asyncio.to_thread(publish_all, [(f"z{unique}/kok vatten", wet) for _ in range(4)])
        assert await wait_until(lambda: open_alarm(hub, "water_leak") is not None)
        await asyncio.to_thread(publish_all, [(f"z{unique}/kok vatten", dry)])
        assert await wait_until(
            lambda: (a := open_alarm(hub, "water_leak")) is not None and a.condition_note is not None
        )
        leak = open_alarm(hub, "water_leak")
        assert leak is not None
        assert (leak.incidents, leak.condition_note) == (1, "the leak sensor is dry again")

        # a social alarm unit relayed over MQTT: an alarm the resident cancels at the unit stays with staff; the
        # next alarm rings again, and a person resetting it at the unit closes it
        body = ALARM.replace(b"{ref}", ref.encode()).replace(b"{cid}", cid.encode())
        await asyncio.to_thread(publish_all, [(f"sc{unique}/{cid}", body)])
        assert await wait_until(lambda: open_alarm(hub, "alarm_button") is not None)
        button = open_alarm(hub, "alarm_button")
        assert button is not None
        cancelled = body.replace(b"<stc>10</stc>", b"<stc>19</stc>")
        await asyncio.to_thread(publish_all, [(f"sc{unique}/{cid}", cancelled)])
        assert await wait_until(lambda: button.condition_note is not None)
        assert (button.condition_note, button.state) == ("cancelled at the alarm button", AlarmState.RAISED)
        again = body.replace(ref.encode(), f"{ref}b".encode())
        await asyncio.to_thread(publish_all, [(f"sc{unique}/{cid}", again)])
        assert await wait_until(lambda: button.incidents == 2)
        await asyncio.to_thread(publish_all, [(f"sc{unique}/{cid}", again.replace(b"<mty>ME", b"<mty>RE"))])
        assert await wait_until(lambda: open_alarm(hub, "alarm_button") is None)
        assert (button.state, button.condition_note) == (AlarmState.CANCELLED, "reset at the alarm unit")

        # the camera works again while nobody has taken its alarm: it closes itself
        await asyncio.to_thread(publish_all, [(f"f{unique}/stats", stats(5.0))])
        assert await wait_until(lambda: open_alarm(hub, "camera_offline") is None)

    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": settings.db.db_schema})
    try:
        log = await conn.fetch(
            "SELECT d.rule_id, l.action FROM desk_alarm_log l JOIN desk_alarms d ON d.id = l.alarm_id ORDER BY l.at"
        )
    finally:
        await conn.close()
    # (nobody is on duty in this test: the care alarms also raise the site's nobody_reached, which is not counted)
    rings = [
        (r["rule_id"], r["action"])
        for r in log
        if r["action"] in ("raised", "repeated") and r["rule_id"] != "nobody_reached"
    ]
    assert sorted(rings) == [
        ("alarm_button", "raised"),
        ("alarm_button", "repeated"),  # the second alarm: a care repeat rings
        ("camera_offline", "raised"),
        ("water_leak", "raised"),
    ]
    closed = [(r["rule_id"], r["action"]) for r in log]
    assert ("camera_offline", "cancelled") in closed
    assert ("alarm_button", "reset") in closed  # the log says a person reset it at the unit
