"""Vendor formats routed by topic filter raise the same alarms as native devices, also from unknown devices."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from alarms.rules import default_pack_path
from hub.app import Hub
from hub.desk.alarm import Alarm
from hub.settings import AdapterRoute, Settings
from tests.adapters.support import FIXTURES
from tests.conftest import PG_DSN
from tests.hub.test_ingest import publish_all


async def wait_until(condition: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    """Poll a condition on the running hub until it holds (or the timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


CAMERA_PACK = """
version: 1
rules:
  - id: camera_person_site
    type: instant
    category: care
    severity: high
    match: {kinds: [camera_person_detected]}
    cancel: {kinds: [camera_detection_ended]}
    reason: camera saw a person
    cancel_reason: the camera's detection ended
"""


def routed(settings: Settings, unique: str, tmp_path: Path) -> Settings:
    """Routes for every vendor format, and the default pack plus a site pack that alarms on a person seen."""
    site = f"s{unique}"
    (tmp_path / "camera.yaml").write_text(CAMERA_PACK)
    rules = settings.rules.model_copy(update={"packs": [default_pack_path(), tmp_path / "camera.yaml"]})
    routes = [
        AdapterRoute(topic_filter=f"z{unique}/#", adapter="zigbee2mqtt", site=site),
        AdapterRoute(topic_filter=f"f{unique}/#", adapter="frigate", site=site),
        AdapterRoute(topic_filter=f"r{unique}/+/+", adapter="fall_radar", site=site),
        AdapterRoute(topic_filter=f"m{unique}/+/events", adapter="medication_robot", site=site),
    ]
    return settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"routes": routes}), "rules": rules})


def dose_missed_now() -> bytes:
    """The fixture's missed dose, moved to the present (the hub refuses events from the future)."""
    msg = json.loads((FIXTURES / "medication_robot/dose_missed.json").read_bytes())
    now = datetime.now(UTC)
    msg["time"], msg["scheduledTime"] = now.isoformat(), (now - timedelta(minutes=90)).isoformat()
    return json.dumps(msg).encode()


def frigate_now(name: str, start: float) -> bytes:
    """A Frigate fixture moved to the present: care rules ignore news older than their freshness window."""
    msg = json.loads((FIXTURES / "frigate" / name).read_bytes())
    for part in (msg["before"], msg["after"]):
        for key, value in list(part.items()):
            if key in ("frame_time", "start_time", "end_time") and value is not None:
                part[key] = start + (value - 1795917600.475377)
    return json.dumps(msg).encode()


def radar_now(name: str) -> bytes:
    msg = json.loads((FIXTURES / "fall_radar" / name).read_bytes())
    msg["timestamp"] = int(datetime.now(UTC).timestamp() * 1000)
    return json.dumps(msg).encode()


def by_rule(hub: Hub) -> dict[str, Alarm]:
    return {a.rule_id: a for a in hub.desk.machine.open_alarms()}


async def test_every_vendor_format_raises_its_alarm_to_the_routes_site(
    settings: Settings, unique: str, tmp_path: Path
) -> None:
    settings = routed(settings, unique, tmp_path)
    fx = FIXTURES
    start = datetime.now(UTC).timestamp() - 30
    messages = [
        (f"z{unique}/lgh 12/trygghetsknapp", (fx / "zigbee2mqtt/sos_button.json").read_bytes()),
        (f"f{unique}/events", frigate_now("event_new.json", start)),
        (f"f{unique}/korridor_2/person/snapshot", b"\xff\xd8\xff\xe0JFIF"),
        (f"r{unique}/VYR-0A1B2C/events", radar_now("fall_fall_detected.json")),
        (f"m{unique}/EVD-55213/events", dose_missed_now()),
    ]
    async with Hub(settings) as hub:
        await hub.wait_connected()
        await asyncio.to_thread(publish_all, messages)
        expected = {"alarm_button", "camera_person_site", "fall", "medication_missed"}
        assert await wait_until(lambda: expected <= by_rule(hub).keys()), by_rule(hub).keys()
        alarms = by_rule(hub)
        assert {alarms[r].site for r in expected} == {f"s{unique}"}
        assert all(alarms[r].unregistered for r in expected), "devices unknown to the inventory still alarm"
        assert alarms["alarm_button"].device_id == "lgh_12_trygghetsknapp"

        # the detection ends: its care alarm is marked "condition ended" for the staff, who still close it
        await asyncio.to_thread(publish_all, [(f"f{unique}/events", frigate_now("event_end.json", start))])
        assert await wait_until(lambda: by_rule(hub)["camera_person_site"].condition_ended_at is not None)
        assert by_rule(hub)["fall"].condition_ended_at is None
        assert {"alarm_button", "fall", "medication_missed"} <= by_rule(hub).keys()

    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": settings.db.db_schema})
    try:
        rows = await conn.fetch("SELECT kind, attrs::text AS attrs FROM events WHERE site = $1", f"s{unique}")
        rejected = await conn.fetchval("SELECT count(*) FROM rejected_messages WHERE topic LIKE $1", f"%{unique}%")
    finally:
        await conn.close()
    kinds = sorted(r["kind"] for r in rows)
    assert kinds.count("camera_person_detected") == 1
    assert kinds.count("camera_detection_ended") == 1
    assert {"alarm_button", "fall_detected", "medication_missed"} <= set(kinds)
    assert rejected == 0, "image topics are dropped, not rejected and kept"
    assert not any("JFIF" in r["attrs"] or "snapshot" in r["attrs"] for r in rows)
