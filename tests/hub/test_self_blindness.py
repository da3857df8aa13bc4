"""The hub knows when it is the one that is blind (issue 22, point 4): `vaka serve` as a process, frozen.

Devices heartbeat every few seconds, on the event and on the telemetry topics, with a supervision interval far
shorter than the freeze. On main, SIGSTOP 50 s then SIGCONT raised a device_silent for every living device (and
cancelled it a moment later as the queued heartbeats were read), and no supervision-lost alarm: the hub judged the
devices silent for a gap that was its own. Here the gap suspends silence judgement, counts as one supervision-lost
alarm per site, and after its grace the devices are judged on what they said: the living raise nothing, the one
dead device keeps the one alarm it had before the freeze.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.metrics import Metrics
from hub.model import Device, Inventory, Resident, Site
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings
from hub.store.db import Database
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from tests.hub.test_durability import HubProcess
from tests.services import PrivateMosquitto, PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LIVING = 24  # half on the event topic, half on telemetry
SUPERVISION_S = 15
HEARTBEAT_S = 3.0
FREEZE_S = 50.0
GRACE_S = 5.0


class Heartbeats:
    """Living devices in a thread: each says it is alive every HEARTBEAT_S, QoS 1."""

    def __init__(self, broker: PrivateMosquitto, site: str) -> None:
        self.site = site
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, reconnect_on_failure=True)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            seq += 1
            ts = datetime.now(UTC).isoformat()
            for i in range(LIVING):
                channel = "event" if i % 2 else "telemetry"
                body = json.dumps({"ts": ts, "kind": "heartbeat", "seq": seq}).encode()
                self.client.publish(f"vaka/v1/{self.site}/{self.site}-d{i}/{channel}", body, qos=1)
                self.sent += 1
            self._stop.wait(HEARTBEAT_S)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()


async def prepare(dsn: str, site: str) -> None:
    settings = DbSettings(dsn=dsn, db_schema=site)  # type: ignore[arg-type]
    metrics = Metrics()
    devices = [
        Device(id=f"{site}-d{i}", kind="motion_hall", resident=f"{site}-r1", supervision_interval_s=SUPERVISION_S)
        for i in range(LIVING)
    ]
    devices.append(Device(id=f"{site}-dead", kind="motion_hall", supervision_interval_s=SUPERVISION_S))
    inventory = Inventory(sites=[Site(id=site, residents=[Resident(id=f"{site}-r1", room="1")], devices=devices)])
    async with Spawner(metrics) as spawner:
        db = Database(settings, metrics, spawner=spawner)
        await db.open()
        try:
            async with db.acquire() as conn:
                await migrate(conn, settings)
                await load_inventory(conn, inventory)
        finally:
            await db.close()


async def raised(dsn: str, site: str, since: datetime | None = None) -> list[tuple[str, str]]:
    """(rule, device or key) of every silence and supervision-lost alarm the desk raised for the site (or, `since`
    given, of every alarm it raised since then)."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": site})
    try:
        query = "SELECT rule_id, coalesce(device_id, key) AS subject FROM desk_alarms WHERE site = $1"
        if since is None:
            rows = await conn.fetch(
                query + " AND rule_id IN ('device_silent', 'supervision_lost') ORDER BY raised_at", site
            )
        else:
            rows = await conn.fetch(query + " AND raised_at > $2 ORDER BY raised_at", site, since)
    finally:
        await conn.close()
    return [(r["rule_id"], r["subject"]) for r in rows]


def metric(hub: HubProcess, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{hub.http_port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def wait_for(what: str, condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def test_a_frozen_hub_judges_no_device_silent_and_says_once_that_it_was_blind(tmp_path: Path, unique: str) -> None:
    site = f"gap{unique}"
    with PrivatePostgres() as pg, PrivateMosquitto() as broker:
        asyncio.run(prepare(pg.dsn, site))
        hub = HubProcess(pg, broker, tmp_path, site)
        hub.env.update(
            {
                "VAKA_DB__DB_SCHEMA": site,
                "VAKA_RELIABILITY__BLIND_GRACE_S": str(GRACE_S),
                "VAKA_RELIABILITY__CANARY_INTERVAL_S": "2",
                "VAKA_RELIABILITY__CANARY_TIMEOUT_S": "3",
            }
        )
        devices = Heartbeats(broker, site)
        try:
            devices.start()
            hub.start()
            hub.wait_status("ready")
            wait_for("the hub sees", lambda: metric(hub, "vaka_supervision_blind") == 0, 30)
            dead = [("device_silent", f"{site}-dead")]
            wait_for("the dead device is found silent", lambda: asyncio.run(raised(pg.dsn, site)) == dead, 60)

            frozen_at = datetime.now(UTC)
            hub.pause()
            time.sleep(FREEZE_S)
            hub.resume()
            wait_for("the hub answers again", lambda: hub.ready() is not None, 30)
            # its grace, then a supervision interval and more: any silence it would judge has been judged
            time.sleep(GRACE_S + 2 * SUPERVISION_S)
            wait_for("the hub sees again", lambda: metric(hub, "vaka_supervision_blind") == 0, 60)
            time.sleep(2 * HEARTBEAT_S)
            alarms = asyncio.run(raised(pg.dsn, site))
            after_freeze = asyncio.run(raised(pg.dsn, site, frozen_at))
        finally:
            devices.stop()
            hub.stop()
    silent = [subject for rule, subject in alarms if rule == "device_silent"]
    lost = [subject for rule, subject in alarms if rule == "supervision_lost"]
    assert silent == [f"{site}-dead"], f"device_silent raised after the freeze for {silent[1:]}"
    assert lost == [f"supervision_lost:{site}"], f"supervision lost: {lost}"
    # one technical alarm per site for the gap: not a failing canary raised and cleared a moment later beside it
    assert after_freeze == [("supervision_lost", f"supervision_lost:{site}")]
    assert "supervision blind" in hub.log
