"""A canary for the telemetry path (issue 22, point 6): the hub in-process, a private PostgreSQL, the real broker.

On main the canary rode the events connection only: while the telemetry connection read nothing (stuck at its limit
of unacknowledged messages after a backlog, issue 22.1) it stayed green. Here a second canary's round trip is the
telemetry connection's read, the store and the acknowledgement: with the store taking no telemetry (database away,
the spool below its disk reserve, so telemetry is left unacknowledged in the broker) it turns red — its own
technical alarm, the staff page degraded — while the events path stays green; and green again when the store takes
rows again.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from hub.app import Hub
from hub.metrics import Metrics
from hub.model import Device, Inventory, Site
from hub.settings import DbSettings, Settings
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from tests.hub.desk_support import sites_for
from tests.services import PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


async def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)


async def test_the_telemetry_canary_turns_red_while_the_telemetry_path_takes_nothing(
    settings: Settings, unique: str, tmp_path: Path
) -> None:
    site = f"t{unique}"
    with PrivatePostgres() as pg:
        conn = await asyncpg.connect(pg.dsn)
        try:
            await migrate(conn, DbSettings(dsn=pg.dsn, db_schema="public"))  # type: ignore[arg-type]
            await load_inventory(conn, Inventory(sites=sites_for(site)))
        finally:
            await conn.close()
        free = shutil.disk_usage(tmp_path).free
        hub_settings = settings.model_copy(
            update={
                "db": settings.db.model_copy(
                    update={"dsn": SecretStr(pg.dsn), "db_schema": "public", "write_deadline_s": 1.0}
                ),
                # telemetry is refused by the spool (less free than the reserve), care events still taken (more
                # than half of it): with the database away the store takes no telemetry, and acknowledges none
                "spool": settings.spool.model_copy(update={"disk_reserve_bytes": int(free * 1.4)}),
                "reliability": settings.reliability.model_copy(
                    update={"canary_interval_s": 1.0, "canary_timeout_s": 2.0}
                ),
            }
        )
        metrics = Metrics()

        def canary_alarms(hub: Hub) -> list[str]:
            return sorted(
                a.key for a in hub.desk.machine.open_alarms() if a.rule_id == "canary_failed" and a.site == site
            )

        def gauge(name: str, path: str) -> float:
            value: float = getattr(metrics, name).labels(path)._value.get()
            return value

        async with Hub(hub_settings, metrics) as hub:
            await hub.wait_connected()
            assert hub.settings.mqtt.telemetry_connection
            await wait_until("the events canary came round", lambda: hub.canary.last_round_trip_s is not None)
            await asyncio.sleep(3 * hub_settings.reliability.canary_interval_s)
            assert canary_alarms(hub) == []

            await asyncio.to_thread(pg.stop)
            await wait_until("the telemetry path's canary fails", lambda: canary_alarms(hub) != [])
            assert canary_alarms(hub) == [f"canary_failed:telemetry:{site}"]  # alarms still flow on the events path
            assert gauge("canary_failing", "telemetry") == 1
            assert gauge("canary_failing", "events") == 0
            assert gauge("canary_last_success", "telemetry") > 0  # it had come round before
            assert hub._degraded()  # the staff page says "go to physical rounds"

            await asyncio.to_thread(pg.start)
            await wait_until("the telemetry canary recovers", lambda: gauge("canary_failing", "telemetry") == 0, 60)
            await wait_until("its alarm closes itself", lambda: canary_alarms(hub) == [])


LIVING = 8
SUPERVISION_S = 10


async def test_heartbeats_held_in_the_broker_by_a_stuck_telemetry_path_are_no_silence(
    settings: Settings, unique: str, tmp_path: Path
) -> None:
    """The store takes no telemetry (issue 22.4, "the hub is behind while the broker is fine"): the telemetry
    connection reaches its limit of unacknowledged messages and stops reading; every heartbeat is acknowledged by the
    broker on time and waits there. On main each telemetry device was judged silent a supervision interval later,
    and no supervision_lost said why. Here the read pause (and the canary's lag) blind the hub: no device_silent, one
    supervision_lost; when the store takes rows again the held heartbeats are read and nothing is raised."""
    site = f"h{unique}"
    with PrivatePostgres() as pg:
        conn = await asyncpg.connect(pg.dsn)
        try:
            await migrate(conn, DbSettings(dsn=pg.dsn, db_schema="public"))  # type: ignore[arg-type]
            devices = [
                Device(id=f"{site}-d{i}", kind="motion_hall", supervision_interval_s=SUPERVISION_S)
                for i in range(LIVING)
            ]
            await load_inventory(conn, Inventory(sites=[Site(id=site, devices=devices)]))
        finally:
            await conn.close()
        free = shutil.disk_usage(tmp_path).free
        hub_settings = settings.model_copy(
            update={
                "db": settings.db.model_copy(
                    update={"dsn": SecretStr(pg.dsn), "db_schema": "public", "write_deadline_s": 1.0}
                ),
                "mqtt": settings.mqtt.model_copy(update={"receive_maximum": 16}),
                "spool": settings.spool.model_copy(update={"disk_reserve_bytes": int(free * 1.4)}),
                "reliability": settings.reliability.model_copy(
                    update={"canary_interval_s": 1.0, "canary_timeout_s": 2.0, "blind_grace_s": 2.0}
                ),
            }
        )
        client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        client.connect(settings.mqtt.host, settings.mqtt.port)
        client.loop_start()
        stop = asyncio.Event()

        async def heartbeats() -> None:
            seq = 0
            while not stop.is_set():
                seq += 1
                body = json.dumps({"ts": datetime.now(UTC).isoformat(), "kind": "heartbeat", "seq": seq}).encode()
                for i in range(LIVING):
                    client.publish(f"vaka/v1/{site}/{site}-d{i}/telemetry", body, qos=1)
                await asyncio.sleep(2.0)

        def alarms(hub: Hub, rule: str) -> list[str]:
            return [
                a.device_id or a.key for a in hub.desk.machine.open_alarms() if a.site == site and a.rule_id == rule
            ]

        sender = asyncio.create_task(heartbeats())
        try:
            async with Hub(hub_settings) as hub:
                await hub.wait_connected()
                await wait_until("the hub sees", lambda: not hub.sight.blind)
                await asyncio.to_thread(pg.stop)
                await wait_until("the telemetry connection stops reading", lambda: not hub.telemetry_conn.reading)
                await wait_until("supervision lost", lambda: alarms(hub, "supervision_lost") != [], 60)
                assert hub.sight.blind
                assert alarms(hub, "device_silent") == []  # longer than supervision without a heartbeat read
                await asyncio.to_thread(pg.start)
                await wait_until("sight returns", lambda: alarms(hub, "supervision_lost") == [], 60)
                await asyncio.sleep(SUPERVISION_S)
                assert alarms(hub, "device_silent") == []
                await hub.desk.lane.store.flushed()
                async with hub.db.acquire() as conn:
                    silent = await conn.fetchval(
                        "SELECT count(*) FROM desk_alarms WHERE site = $1 AND rule_id = 'device_silent'", site
                    )
                assert silent == 0, f"{silent} device_silent raised for heartbeats the broker held"
        finally:
            stop.set()
            await sender
            client.disconnect()
            client.loop_stop()
