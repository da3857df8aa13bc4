"""Rule profiles end to end with the real hub, Mosquitto and PostgreSQL: a nurse gives a resident a profile on the
hub's admin page and the running hub applies it to that resident's events within seconds, no restart; the command
in another process takes it away again the same way. And `vaka resident profile` as a user meets it."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import paho.mqtt.client as paho
import pytest

from alarms.rules import default_pack_path
from hub.app import Hub
from hub.metrics import Metrics
from hub.model import Device, Inventory, Outcome
from hub.settings import Settings
from hub.store.inventory import load_inventory
from tests.conftest import PG_DSN
from tests.hub.desk_support import add_inventory_and_staff, migrated_database, sites_for
from tests.hub.web.conftest import free_port
from tests.hub.web.test_staff_http import csrf_of, login

PROFILES = """\
version: 1
profiles:
  camera_always:
    description: Consented to camera analytics around the clock.
    rules:
      camera_person: {enabled: true}
"""


def vaka(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VAKA_")}
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=60, env={**clean, **env}
    )


@pytest.fixture
async def hub_settings(settings: Settings, metrics: Metrics, unique: str, tmp_path: Path) -> Settings:
    """The test site with a camera in r1's and r2's homes, and a pack file of one profile beside the default pack."""
    port = free_port()
    settings.http.port = port
    settings.http.public_url = f"http://127.0.0.1:{port}"
    packs = tmp_path / "profiles.yaml"
    packs.write_text(PROFILES, encoding="utf-8")
    settings.rules.packs = [default_pack_path(), packs]
    async with migrated_database(settings, metrics) as db:
        await add_inventory_and_staff(db, unique)
        base = sites_for(unique)[0]
        cameras = [Device(id=f"{unique}-cam{n}", kind="camera", resident=f"{unique}-r{n}") for n in (1, 2)]
        async with db.acquire() as conn:
            await load_inventory(
                conn, Inventory(sites=[base.model_copy(update={"devices": [*base.devices, *cameras]})])
            )
    return settings


def publish(settings: Settings, site: str, events: list[tuple[str, dict[str, object]]]) -> None:
    """Publish (device, payload) events in order over one connection, QoS 1."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"pub-{site}", protocol=paho.MQTTv5)
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    try:
        for device, payload in events:
            body = json.dumps({"ts": datetime.now(UTC).isoformat(), **payload})
            client.publish(f"vaka/v1/{site}/{device}/event", body, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


async def until(condition: object, timeout_s: float = 10.0) -> float:
    """Wait until `condition()` holds; the seconds it took."""
    assert callable(condition)
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"not within {timeout_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_a_nurses_profile_applies_to_the_residents_events_at_once_and_the_command_takes_it_away(
    hub_settings: Settings, unique: str
) -> None:
    site = unique
    r1 = f"{site}-r1"
    async with Hub(hub_settings, Metrics()) as hub:
        await hub.wait_connected()

        def camera_on() -> bool:
            return hub.engine.compiled["camera_person"].params(r1).enabled

        def open_keys() -> set[str]:
            return {a.rule_id + ":" + (a.resident_id or "") for a in hub.desk.machine.open_alarms()}

        assert not camera_on()  # off in the default pack
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as nurse:
            await login(nurse, hub_settings.http.public_url, f"nils-{site}")
            async with nurse.get(f"{hub_settings.http.public_url}/staff/admin") as page:
                token = csrf_of(await page.text())
            async with nurse.post(f"{hub_settings.http.public_url}/staff/admin/resident-profile",
                                  data={"csrf": token, "id": r1, "profile": "camera_always"}) as done:  # fmt: skip
                assert done.status == 200
        await until(camera_on)  # the hub follows resident_rule_profiles: no restart

        # both cameras see someone: only r1's profile makes that an alarm; the fall after them is the sentinel
        # that both were evaluated (one connection, in order)
        await asyncio.to_thread(publish, hub_settings, site, [
            (f"{site}-cam1", {"kind": "camera_person_detected", "ref": "d1", "seq": 1}),
            (f"{site}-cam2", {"kind": "camera_person_detected", "ref": "d2", "seq": 1}),
            (f"{site}-radar1", {"kind": "fall_detected", "seq": 1}),
        ])  # fmt: skip
        await until(lambda: f"fall:{r1}" in open_keys())
        assert {k for k in open_keys() if k.startswith("camera_person")} == {f"camera_person:{r1}"}
        camera_alarm = next(a for a in hub.desk.machine.open_alarms() if a.rule_id == "camera_person")
        nils = next(m for m in hub.desk.directory.staff if m.username == f"nils-{site}")
        hub.desk.actions.accept(camera_alarm.id, nils)
        hub.desk.actions.resolve(camera_alarm.id, nils, Outcome.ASSISTED)

        env = {
            "VAKA_DB__DSN": PG_DSN,
            "VAKA_DB__DB_SCHEMA": hub_settings.db.db_schema,
            "VAKA_RULES__PACKS": json.dumps([str(p) for p in hub_settings.rules.packs]),
        }
        cleared = await asyncio.to_thread(vaka, "resident", "profile", r1, "--clear", env=env)
        assert cleared.returncode == 0, cleared.stdout + cleared.stderr
        await until(lambda: not camera_on())
        await asyncio.to_thread(publish, hub_settings, site, [
            (f"{site}-cam1", {"kind": "camera_person_detected", "ref": "d3", "seq": 2}),
            (f"{site}-button3", {"kind": "alarm_button", "seq": 2}),
        ])  # fmt: skip
        await until(lambda: f"alarm_button:{site}-r3" in open_keys())
        assert not {k for k in open_keys() if k.startswith("camera_person")}

    async with migrated_database(hub_settings, Metrics()) as db, db.acquire() as conn:
        audit = await conn.fetch("SELECT actor, action, target, detail FROM admin_audit_log ORDER BY seq")
    assert [(r["actor"], r["action"], r["target"], r["detail"]) for r in audit] == [
        ("", "resident_profile", r1, "profile=camera_always was=none"),  # the page: its staff_id says who
        (f"cli:{getpass.getuser()}", "resident_profile", r1, "profile=none was=camera_always"),
    ]


async def test_the_command_sets_shows_and_clears_a_profile_and_explains_mistakes(
    settings: Settings, metrics: Metrics, unique: str
) -> None:
    async with migrated_database(settings, metrics) as db:
        await add_inventory_and_staff(db, unique)
    r1 = f"{unique}-r1"
    env = {"VAKA_DB__DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": settings.db.db_schema}
    shown = vaka("resident", "profile", r1, env=env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.splitlines() == [
        f"resident {r1}: no profile (the pack values)",
        "profiles in the loaded rule packs: camera_watch, feels_the_cold, sleeps_late, wanders_at_night",
    ]
    given = vaka("resident", "profile", r1, "wanders_at_night", env=env)
    assert given.returncode == 0
    assert given.stdout.startswith(f"resident {r1}: profile wanders_at_night (was none)")
    assert vaka("resident", "profile", r1, env=env).stdout.startswith(f"resident {r1}: profile wanders_at_night")
    unknown = vaka("resident", "profile", r1, "night_owl", env=env)
    assert unknown.returncode == 1
    assert unknown.stdout.strip() == (
        "vaka resident profile: no profile 'night_owl' in the loaded rule packs "
        "(known: camera_watch, feels_the_cold, sleeps_late, wanders_at_night)"
    )
    nobody = vaka("resident", "profile", f"{unique}-r9", "sleeps_late", env=env)
    assert nobody.returncode == 1
    assert f"no resident '{unique}-r9'" in nobody.stdout
    both = vaka("resident", "profile", r1, "sleeps_late", "--clear", env=env)
    assert both.returncode == 2
    cleared = vaka("resident", "profile", r1, "--clear", env=env)
    assert cleared.returncode == 0
    assert "no profile: the pack values (was wanders_at_night)" in cleared.stdout
    async with migrated_database(settings, metrics) as db, db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM resident_rule_profiles") == 0
