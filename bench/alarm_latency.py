"""Alarm latency: an MQTT publish of a fall event to its arrival on a logged-in staff WebSocket.

Prints one JSON object: {"idle": {"p50_ms", "p99_ms", "max_ms", "n"}, "loaded": {…}, "background_events_per_s": …},
"loaded" meaning while a second process publishes `--background-rate` telemetry messages per second (measured, not
assumed: the figure reported is what the hub received). Every probe is a fall from a different resident's radar, so
each raises a new alarm. Runs the hub in-process against a private Mosquitto and the local PostgreSQL (own schema).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import background, pct
from hub.app import Hub
from hub.metrics import Metrics
from hub.model import Device, Inventory, Resident, Site
from hub.people.staff import Role
from hub.settings import Settings
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from hub.store.staff import create_staff
from tests.services import PrivateMosquitto, free_port

PG_DSN = os.environ.get("VAKA_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "bench-password-1"


def log(msg: str) -> None:
    print(f"[bench/alarm_latency] {msg}", file=sys.stderr, flush=True)


def inventory(site: str, residents: int) -> Inventory:
    return Inventory(
        sites=[
            Site(
                id=site,
                residents=[Resident(id=f"r-{i:04d}", room=f"A{i:03d}", unit="night") for i in range(residents)],
                devices=[
                    Device(id=f"radar-{i:04d}", kind="fall_radar", resident=f"r-{i:04d}", supervision_interval_s=3600)
                    for i in range(residents)
                ],
            )
        ]
    )


async def login(http: aiohttp.ClientSession, username: str) -> None:
    async with http.get("/staff/login") as resp:
        page = await resp.text()
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token on the login page"
    form = {"username": username, "password": PASSWORD, "csrf": match.group(1), "lang": "en"}
    async with http.post("/staff/login", data=form, allow_redirects=False) as resp:
        assert resp.status in (302, 303), f"login failed: {resp.status}"


def summary(latencies_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in latencies_s]
    return {
        "p50_ms": round(pct(ms, 0.5), 2),
        "p99_ms": round(pct(ms, 0.99), 2),
        "max_ms": round(max(ms, default=float("nan")), 2),
        "n": len(ms),
    }


async def probe(
    ws: aiohttp.ClientWebSocketResponse, pub: paho.Client, site: str, first: int, count: int, interval_s: float
) -> list[float]:
    """Publish falls from residents first..first+count-1 and time each until its alarm reaches the WebSocket."""
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    all_arrived = asyncio.Event()

    async def reader() -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            data = json.loads(msg.data)
            if data.get("type") != "alarm":
                continue
            await ws.send_str(json.dumps({"type": "receipt", "nid": data["nid"]}))
            device = data["alarm"].get("device_id")
            if device in sent and device not in arrived:
                arrived[device] = now
                if len(arrived) == count:
                    all_arrived.set()

    task = asyncio.create_task(reader(), name="bench.ws.reader")
    for i in range(first, first + count):
        device = f"radar-{i:04d}"
        body = json.dumps({"ts": datetime.now(UTC).isoformat(), "kind": "fall_detected", "ref": f"f{i}"}).encode()
        sent[device] = time.perf_counter()
        pub.publish(f"vaka/v1/{site}/{device}/event", body, qos=1)
        await asyncio.sleep(interval_s)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_arrived.wait(), timeout=5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if len(arrived) < len(sent):
        log(f"{len(sent) - len(arrived)} of {len(sent)} alarms never reached the page within 5 s")
    return [arrived[d] - sent[d] for d in arrived]


def received_total(metrics: Metrics) -> float:
    return sum(s.value for m in metrics.events_ingested.collect() for s in m.samples if s.name.endswith("_total"))


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=200, help="fall events per phase")
    parser.add_argument("--interval-s", type=float, default=0.05)
    parser.add_argument("--background-rate", type=float, default=5000.0)
    parser.add_argument("--quick", action="store_true", help="50 probes per phase")
    args = parser.parse_args()
    if args.quick:
        args.probes = 50

    token = uuid.uuid4().hex[:8]
    schema, site = f"bench_{token}", f"a{token}"
    http_port = free_port()
    conn = await asyncpg.connect(PG_DSN)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    broker = PrivateMosquitto()
    broker.start()
    tmp = Path(tempfile.mkdtemp(prefix="vaka-bench-"))
    settings = Settings(
        db={"dsn": PG_DSN, "db_schema": schema},
        mqtt={"port": broker.port, "client_id": f"bench-hub-{token}"},
        spool={"directory": str(tmp / "spool")},
        http={"port": http_port, "cookie_secure": False, "public_url": f"http://127.0.0.1:{http_port}"},
    )
    try:
        conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
        await migrate(conn, settings.db)
        await load_inventory(conn, inventory(site, 2 * args.probes))
        await create_staff(conn, username="natt1", password=PASSWORD, role=Role.STAFF, units=[(site, "night")])
        await conn.close()

        metrics = Metrics()
        pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        async with (
            Hub(settings, metrics) as hub,
            aiohttp.ClientSession(f"http://127.0.0.1:{http_port}", cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
        ):
            await hub.wait_connected()
            await login(http, "natt1")
            ws = await http.ws_connect("/staff/ws", headers={"Origin": f"http://127.0.0.1:{http_port}"})
            log(f"idle: {args.probes} falls")
            idle = await probe(ws, pub, site, 0, args.probes, args.interval_s)

            log(f"loaded: {args.probes} falls under {args.background_rate:.0f} telemetry msgs/s")
            seconds = args.probes * args.interval_s + 3
            ctx = multiprocessing.get_context("spawn")
            started = ctx.Event()
            bg = ctx.Process(target=background, args=(broker.port, site, args.background_rate, seconds, started))
            bg.start()
            await asyncio.to_thread(started.wait, 60)
            await asyncio.sleep(0.5)
            before, t0 = received_total(metrics), time.perf_counter()
            loaded = await probe(ws, pub, site, args.probes, args.probes, args.interval_s)
            background_rate = (received_total(metrics) - before) / (time.perf_counter() - t0)
            await asyncio.to_thread(bg.join, 60)
            await ws.close()
        pub.disconnect()
        pub.loop_stop()
    finally:
        broker.cleanup()
        conn = await asyncpg.connect(PG_DSN)
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
    return {
        "idle": summary(idle),
        "loaded": summary(loaded),
        "background_events_per_s": round(background_rate),
        "cores": os.cpu_count(),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
