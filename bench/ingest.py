"""Ingest benchmark: events per second into PostgreSQL with acks after durability, against paho's bare receive rate.

Prints one JSON object:
  raw_receive_per_s     a bare paho 2.x subscriber draining N queued QoS 1 messages (auto-ack, no processing)
  events_per_s          the hub draining the same N messages: parsed, through the rule engine, COPYed and committed,
                        each PUBACK sent only once its event is durable
  ratio                 events_per_s / raw_receive_per_s
  ack_latency_p99_ms    receive → PUBACK inside the hub during that drain (from its histogram)
  probe_latency_p99_ms  a fall event's publish → its alarm on `vaka/v1/{site}/alarms/#`, while the telemetry
                        connection is busy with background traffic at `--background-rate` messages/s

Both drains read from a persistent session the broker filled while the subscriber was away, so the publisher's
speed does not limit either figure. Runs against a private Mosquitto (deploy/mosquitto/mosquitto.conf settings) and the
local PostgreSQL in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.app import Hub
from hub.metrics import Metrics
from hub.settings import Settings
from tests.services import PrivateMosquitto

PG_DSN = os.environ.get("VAKA_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BASE_TS = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def log(msg: str) -> None:
    print(f"[bench/ingest] {msg}", file=sys.stderr, flush=True)


def payload(i: int, kind: str) -> bytes:
    ts = BASE_TS + timedelta(milliseconds=i)
    if kind == "temperature":
        return json.dumps({"ts": ts.isoformat(), "kind": kind, "value": 21.5, "unit": "Cel", "seq": i}).encode()
    return json.dumps({"ts": ts.isoformat(), "kind": kind, "seq": i}).encode()


def traffic(site: str, n: int) -> list[tuple[str, bytes]]:
    """Simulated-unit-like mix: four in five messages telemetry, the rest discrete events, over 200 devices."""
    out = []
    for i in range(n):
        device = f"d{i % 200:03d}"
        if i % 5 == 0:
            out.append((f"vaka/v1/{site}/{device}/event", payload(i, "motion")))
        else:
            out.append((f"vaka/v1/{site}/{device}/telemetry", payload(i, "temperature")))
    return out


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish with QoS 1 and wait for every PUBACK."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(t, p, qos=1) for t, p in messages]
    for info in infos:
        info.wait_for_publish(timeout=120)
    client.disconnect()
    client.loop_stop()


def _session_client(client_id: str) -> tuple[paho.Client, Properties]:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 4096
    return client, props


def raw_receive_rate(port: int, site: str, n: int) -> float:
    """A bare paho subscriber drains n queued QoS 1 messages; messages per second."""
    client_id = f"raw-{site}"
    client, props = _session_client(client_id)
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe(f"vaka/v1/{site}/#", qos=1)
    client.connect("127.0.0.1", port, clean_start=True, properties=props)
    client.loop_start()
    subscribed.wait(10)
    client.disconnect()
    client.loop_stop()
    publish(port, traffic(site, n))

    received = 0
    done = threading.Event()

    def on_message(c: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received >= n:
            done.set()

    client, props = _session_client(client_id)
    client.on_message = on_message
    t0 = time.perf_counter()
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return received / elapsed


async def count_events(schema: str, site: str) -> int:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events WHERE site = $1", site))
    finally:
        await conn.close()


def histogram_quantile(metrics: Metrics, q: float) -> float:
    """Upper bound of the bucket holding quantile q of the ack latency histogram, in seconds."""
    samples = [s for m in metrics.ack_latency.collect() for s in m.samples if s.name.endswith("_bucket")]
    total = samples[-1].value
    for s in samples:
        if s.value >= q * total:
            return float(s.labels["le"])
    return float("inf")


def background(port: int, site: str, rate_per_s: float, seconds: float, started: Any = None) -> None:
    """Telemetry at a steady rate (its own process); sets `started` (a multiprocessing Event) once publishing."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    if started is not None:
        started.set()
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        for _ in range(100):
            client.publish(f"vaka/v1/{site}/bg{i % 100:02d}/telemetry", payload(10_000_000 + i, "temperature"), qos=1)
            i += 1
        ahead = i / rate_per_s - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    client.disconnect()
    client.loop_stop()


def probe_latencies(port: int, site: str, probes: int, interval_s: float) -> list[float]:
    """Publish fall events from fresh devices and time each until its alarm appears on the alarms topic."""
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    sub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    ready = threading.Event()

    def on_message(c: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        device = body.get("device_id")
        if device in sent and device not in arrived and body.get("state") == "raised":
            arrived[device] = time.perf_counter()

    sub.on_message = on_message
    sub.on_subscribe = lambda *a: ready.set()
    sub.on_connect = lambda c, *a: c.subscribe(f"vaka/v1/{site}/alarms/#", qos=0)
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    ready.wait(10)
    pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    for i in range(probes):
        device = f"probe{i:04d}"
        body = json.dumps({"ts": datetime.now(UTC).isoformat(), "kind": "fall_detected", "ref": device}).encode()
        sent[device] = time.perf_counter()
        pub.publish(f"vaka/v1/{site}/{device}/event", body, qos=1)
        time.sleep(interval_s)
    deadline = time.monotonic() + 10
    while len(arrived) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    pub.disconnect()
    pub.loop_stop()
    sub.disconnect()
    sub.loop_stop()
    missing = len(sent) - len(arrived)
    if missing:
        log(f"{missing} probe alarms never arrived")
    return [arrived[d] - sent[d] for d in arrived]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1] if len(values) > 1 else values[0]


async def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000, help="messages per drain")
    parser.add_argument("--background-rate", type=float, default=10_000.0, help="telemetry msgs/s during probes")
    parser.add_argument("--probe-seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="10,000 messages and 4 s of probes")
    parser.add_argument(
        "--single-connection", action="store_true", help="telemetry on the events connection (head-of-line check)"
    )
    args = parser.parse_args()
    if args.quick:
        args.events, args.probe_seconds = 10_000, 4.0

    token = uuid.uuid4().hex[:8]
    schema = f"bench_{token}"
    conn = await asyncpg.connect(PG_DSN)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    broker = PrivateMosquitto()
    broker.start()
    tmp = Path(tempfile.mkdtemp(prefix="vaka-bench-"))
    try:
        log(f"raw paho drain of {args.events} messages")
        raw = await asyncio.to_thread(raw_receive_rate, broker.port, f"raw{token}", args.events)
        log(f"raw_receive_per_s={raw:.0f}")

        site = f"b{token}"
        settings = Settings(
            db={"dsn": PG_DSN, "owner_dsn": PG_DSN, "db_schema": schema},
            mqtt={
                "port": broker.port,
                "client_id": f"bench-hub-{token}",
                "telemetry_connection": not args.single_connection,
            },
            spool={"directory": str(tmp / "spool")},
            http={"port": 0, "cookie_secure": False},
        )
        async with Hub(settings) as hub:  # first start: creates the persistent sessions and subscriptions
            await hub.wait_connected()
        log(f"publishing {args.events} messages into the hub's offline session")
        await asyncio.to_thread(publish, broker.port, traffic(site, args.events))
        metrics = Metrics()
        async with Hub(settings, metrics) as hub:
            t0 = time.perf_counter()
            await hub.wait_connected()
            stored = 0
            while stored < args.events and time.perf_counter() - t0 < 300:
                await asyncio.sleep(0.2)
                stored = await count_events(schema, site)
            elapsed = time.perf_counter() - t0
            events_per_s = stored / elapsed
            ack_p99_s = histogram_quantile(metrics, 0.99)
            log(f"events_per_s={events_per_s:.0f} stored={stored}")

            log(f"probes under {args.background_rate:.0f} msgs/s of background telemetry")
            ctx = multiprocessing.get_context("spawn")
            started = ctx.Event()
            bg = ctx.Process(
                target=background, args=(broker.port, site, args.background_rate, args.probe_seconds + 2, started)
            )
            bg.start()
            await asyncio.to_thread(started.wait, 60)
            await asyncio.sleep(0.5)
            probes = int(args.probe_seconds / 0.05)
            # probes from their own process: a paho thread in this one would compete with the hub for the GIL
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
                latencies = await asyncio.get_running_loop().run_in_executor(
                    pool, probe_latencies, broker.port, site, probes, 0.05
                )
            await asyncio.to_thread(bg.join, 30)
    finally:
        broker.cleanup()
        conn = await asyncpg.connect(PG_DSN)
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
    return {
        "events": args.events,
        "raw_receive_per_s": round(raw),
        "events_per_s": round(events_per_s),
        "ratio": round(events_per_s / raw, 3),
        "ack_latency_p99_ms": round(ack_p99_s * 1000, 1),
        "ack_latency_note": "upper bound of the histogram bucket holding the 99th percentile",
        "probe_latency_p50_ms": round(pct(latencies, 0.5) * 1000, 2),
        "probe_latency_p99_ms": round(pct(latencies, 0.99) * 1000, 2),
        "probe_latency_max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
        "probes": len(latencies),
        "background_rate_per_s": args.background_rate,
        "telemetry_connection": not args.single_connection,
        "cores": os.cpu_count(),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
