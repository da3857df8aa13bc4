"""End-to-end benchmark: broker ceiling, durable ingest, alarm latency under load, and recall against ground truth.

Prints exactly one JSON object on stdout; progress goes to stderr. All figures come from one run on this machine:
a private Mosquitto (deploy/mosquitto.conf's queue settings, so nothing is dropped) on a free port, the local
PostgreSQL (`VAKA_BENCH_DSN`, default the `test` database) in throwaway schemas dropped at the end, and the hub as
its own process (`python -m hub.cli serve`), as in production.

1. `raw_receive_per_s`: simulated traffic queued in the broker for a bare paho 2.x subscriber (MQTT 5, QoS 1,
   auto-ack, no processing, the hub's Receive Maximum), then drained; the rate between 5 % and 95 % received.
2. `sustained_events_per_s`: the same traffic queued for the hub's persistent session (the hub is paused with
   SIGSTOP while it is published), then drained with acks only after commit; the rate of `vaka_events_written`
   between 5 % and 95 %. `ratio` = 2 / 1. Neither figure is limited by the publisher's speed.
3. `alarm_latency_ms`: background traffic at 50 % and 90 % of (2) from two publisher processes, alarm-button probes from
   residents not yet alarmed at known wall times; publish → the alarm's `raised` message on `vaka/v1/{site}/alarms/#`.
4. `recall` / `false_alarms_per_resident_night`: a second hub in simulated-clock mode follows an accelerated
   simulated run; each ground-truth incident with an expected rule must have that alarm raised (for the same
   resident, or the same device for technical rules) by its `must_raise_by`, in simulated time.

    .venv/bin/python bench/e2e.py            # full run, about 3 minutes
    .venv/bin/python bench/e2e.py --quick    # about 40 s, smaller everything
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hub.model import Inventory  # noqa: E402
from hub.settings import DbSettings, MqttSettings  # noqa: E402
from hub.simulation import IncidentRates, Publisher, SimConfig, Simulation  # noqa: E402
from hub.simulation import run as run_simulation  # noqa: E402
from hub.store.inventory import load_inventory  # noqa: E402
from hub.store.migrate import migrate  # noqa: E402

DSN = os.environ.get("VAKA_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")
MOSQUITTO = os.environ.get("VAKA_BENCH_MOSQUITTO", "/usr/sbin/mosquitto")
RECEIVE_MAXIMUM = MqttSettings().receive_maximum
NO_INCIDENTS = IncidentRates(**dict.fromkeys(IncidentRates.model_fields, 0.0))
PROBE_SEQ_BASE = 1_000_000_000
BACKGROUND_WORKERS = 2  # one Python publisher tops out near 7k msg/s here, below 90 % of the hub's rate
MATCH_SLACK_S = 5.0  # an alarm may carry a time a few simulated seconds before its incident (clock interpolation)


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run does."""

    backlog: int  # messages queued for the ceiling and for the hub
    load_residents: int  # residents whose traffic is the load (and whose alarm buttons are the probes)
    level_s: float  # seconds of background load per latency level
    probe_interval_s: float
    residents: int  # recall run
    nights: int
    hours: float | None
    speed: float
    seed: int
    incident_scale: float


FULL = Plan(60_000, 1000, 15.0, 0.1, 40, 1, None, 1200.0, 1, 1.0)
QUICK = Plan(10_000, 300, 3.0, 0.05, 20, 1, 6.0, 1800.0, 1, 3.0)


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[bench/e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 15.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    msg = f"nothing listens on 127.0.0.1:{port}"
    raise TimeoutError(msg)


# --- services ------------------------------------------------------------------------------------------------------


class Broker:
    """A private Mosquitto 2: deploy/mosquitto.conf's queue limits (nothing dropped), no persistence, nodelay."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self._base = base
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until it listens."""
        self._base.chmod(0o777)  # mosquitto drops root privileges
        conf = self._base / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 10000000\nmax_queued_bytes 0\nmax_inflight_messages 1000\nset_tcp_nodelay true\n"
            f"log_dest file {self._base}/mosquitto.log\n"
        )
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        """Stop the broker."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)


async def prepare_schema(schema: str, inventory: Inventory) -> None:
    """Create `schema`, run the migrations and register the simulated site's residents and devices."""
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(f"SET search_path TO {schema}")
        await migrate(conn, DbSettings(dsn=DSN, db_schema=schema))
        await load_inventory(conn, inventory)
    finally:
        await conn.close()


async def drop_schema(schema: str) -> None:
    """Drop a schema made by this run."""
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


class HubProcess:
    """`vaka serve` in its own process, configured through VAKA_* variables."""

    def __init__(self, *, schema: str, broker_port: int, client_id: str, workdir: Path, clock_mode: str) -> None:
        self.http_port = free_port()
        self.log_path = workdir / f"{client_id}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAKA_")}
        env.update(
            VAKA_DB__DSN=DSN,
            VAKA_DB__DB_SCHEMA=schema,
            VAKA_MQTT__HOST="127.0.0.1",
            VAKA_MQTT__PORT=str(broker_port),
            VAKA_MQTT__CLIENT_ID=client_id,
            VAKA_SPOOL__DIRECTORY=str(workdir / f"{client_id}-spool"),
            VAKA_HTTP__PORT=str(self.http_port),
            VAKA_HTTP__COOKIE_SECURE="false",
            VAKA_CLOCK__MODE=clock_mode,
            PYTHONPATH=str(REPO),
        )
        if clock_mode == "simulated":
            # one connection: the clock then arrives in order with every event. With telemetry on a second
            # connection, a few ms of lag there become minutes at high speed and supervision times out spuriously
            env["VAKA_MQTT__TELEMETRY_CONNECTION"] = "false"
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout_s: float = 30.0) -> None:
        """Start and wait until /readyz says database and broker are up."""
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(  # noqa: ASYNC220 (Popen does not wait)
                [sys.executable, "-m", "hub.cli", "serve"], cwd=REPO, env=self._env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                msg = f"hub exited at start: {self.log_tail()}"
                raise RuntimeError(msg)
            if await asyncio.to_thread(self._get, "/readyz") is not None:
                await asyncio.sleep(0.5)  # subscriptions settle
                return
            await asyncio.sleep(0.2)
        msg = f"hub not ready after {timeout_s} s: {self.log_tail()}"
        raise RuntimeError(msg)

    def _get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as resp:
                return str(resp.read().decode())
        except (urllib.error.URLError, OSError):
            return None

    async def metric(self, name: str) -> float:
        """The current value of an unlabelled counter or gauge from /metrics (0 when absent)."""
        text = await asyncio.to_thread(self._get, "/metrics") or ""
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): the broker queues for its session meanwhile."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused process run on."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop within 20 s."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)

    def log_tail(self, chars: int = 1500) -> str:
        """The end of the hub's log."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


# --- MQTT clients --------------------------------------------------------------------------------------------------


class Receiver:
    """A paho 2.x subscriber on its own thread: MQTT 5, QoS 1, auto-ack; counts or keeps what arrives."""

    def __init__(self, port: int, client_id: str, topic_filter: str, *, keep: bool = False) -> None:
        self.port, self.topic_filter, self.keep = port, topic_filter, keep
        self.count = 0
        self.marks: dict[int, float] = {}  # message number -> perf_counter when it arrived
        self.watch: set[int] = set()
        self.kept: list[tuple[float, bytes]] = []
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda *_a: self._ready.set()
        self.client.on_subscribe = lambda *_a: self._ready.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.count += 1
        if self.keep:
            self.kept.append((time.perf_counter(), bytes(msg.payload)))
        elif self.count in self.watch:
            self.marks[self.count] = time.perf_counter()

    def connect(self) -> None:
        """Connect (resuming the session if there is one) and subscribe."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 600
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self._ready.clear()
        self.client.connect("127.0.0.1", self.port, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise TimeoutError("receiver did not connect")
        self._ready.clear()
        self.client.subscribe(self.topic_filter, qos=1)
        if not self._ready.wait(10):
            raise TimeoutError("receiver did not subscribe")

    def disconnect(self, *, forget: bool = False) -> None:
        """Disconnect; the broker keeps the session (and queues for it) unless `forget`."""
        props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0 if forget else 600
        self.client.disconnect(properties=props)
        self.client.loop_stop()


async def publish_all(port: int, client_id: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish every message as fast as the broker takes them (QoS 1) and wait for the acks."""
    async with Publisher("127.0.0.1", port, client_id=client_id, mqtt_v311=True) as pub:
        for n, (topic, payload) in enumerate(messages, 1):
            pub.publish(topic, payload)
            if n % 512 == 0:
                await (pub.wait_capacity() if pub.pending > pub.max_pending else asyncio.sleep(0))
        if not await pub.drain(120):
            raise RuntimeError("the broker did not acknowledge the backlog")


def background_worker(port: int, client_id: str, messages: list[tuple[str, bytes]], rate_per_s: float,
                      duration_s: float, ready: Any, go: Any, sent: Any) -> None:  # fmt: skip
    """Child process: publish `messages` at `rate_per_s` for `duration_s` once `go` is set; report the count."""

    async def main() -> None:
        async with Publisher("127.0.0.1", port, client_id=client_id, mqtt_v311=True) as pub:
            ready.set()
            while not go.is_set():  # noqa: ASYNC110 (a multiprocessing event)
                await asyncio.sleep(0.002)
            loop = asyncio.get_running_loop()
            t0, n = loop.time(), 0
            for topic, payload in messages:
                now = loop.time()
                if now - t0 >= duration_s:
                    break
                ahead_s = t0 + n / rate_per_s - now
                if ahead_s > 0.001:
                    await asyncio.sleep(ahead_s)
                pub.publish(topic, payload)
                n += 1
                if n % 256 == 0 and pub.pending > pub.max_pending:
                    await pub.wait_capacity()
            sent.value = n
            await pub.drain(30)

    asyncio.run(main())


# --- traffic -------------------------------------------------------------------------------------------------------


def load_stream(sim: Simulation) -> Iterator[tuple[str, bytes]]:
    """Device messages of an incident-free simulation (no clock, nothing retained), in time order."""
    for msg in sim.iter_messages():
        if "/_sim/" not in msg.topic:
            yield msg.topic, msg.payload


def next_evening(zone_now: datetime) -> datetime:
    """The first 20:00 local at least an hour ahead: a simulated clock must start later than the wall clock."""
    start = datetime.combine(zone_now.date(), dtime(20, 0), tzinfo=zone_now.tzinfo)
    return start if start - zone_now >= timedelta(hours=1) else start + timedelta(days=1)


def percentiles_ms(values_s: list[float]) -> dict[str, float | None]:
    """p50, p99 and max in milliseconds."""
    if not values_s:
        return {"p50": None, "p99": None, "max": None}
    arr = np.array(values_s) * 1000
    return {
        "p50": round(float(np.percentile(arr, 50)), 2),
        "p99": round(float(np.percentile(arr, 99)), 2),
        "max": round(float(arr.max()), 2),
    }


def rate_between(samples: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Events per second between the moments the count passed `lo` and `hi` (interpolated samples)."""

    def when(level: float) -> float:
        for (t0, c0), (t1, c1) in itertools.pairwise(samples):
            if c0 < level <= c1:
                return t0 + (t1 - t0) * (level - c0) / (c1 - c0)
        msg = f"count never reached {level}"
        raise RuntimeError(msg)

    return (hi - lo) / (when(hi) - when(lo))


# --- phases --------------------------------------------------------------------------------------------------------


async def measure_raw(broker: Broker, token: str, site: str, backlog: list[tuple[str, bytes]]) -> float:
    """The ceiling: a bare subscriber drains the backlog the broker queued for its session."""
    n = len(backlog)
    lo, hi = max(1, n * 5 // 100), n * 95 // 100
    rx = Receiver(broker.port, f"e2e-raw-{token}", f"vaka/v1/{site}/#")
    rx.watch = {lo, hi}
    rx.connect()
    rx.disconnect()
    log(f"raw: queueing {n:,} messages for a bare paho subscriber")
    await publish_all(broker.port, f"e2e-pub-raw-{token}", backlog)
    rx.connect()
    deadline = time.monotonic() + 120
    while rx.count < n and time.monotonic() < deadline:  # noqa: ASYNC110 (paho's thread counts)
        await asyncio.sleep(0.05)
    rx.disconnect(forget=True)
    if hi not in rx.marks or lo not in rx.marks:
        msg = f"raw subscriber received {rx.count} of {n}"
        raise RuntimeError(msg)
    rate = (hi - lo) / (rx.marks[hi] - rx.marks[lo])
    log(f"raw: {rate:,.0f} msg/s")
    return rate


async def measure_sustained(hub: HubProcess, broker: Broker, token: str, backlog: list[tuple[str, bytes]]) -> float:
    """The hub drains the same backlog from its persistent session; rows committed per second."""
    n = len(backlog)
    base = await hub.metric("vaka_events_written_total")
    hub.pause()
    try:
        log(f"sustained: queueing {n:,} messages for the paused hub")
        await publish_all(broker.port, f"e2e-pub-hub-{token}", backlog)
    finally:
        hub.resume()
    samples = [(time.perf_counter(), 0.0)]
    stalled_since = time.monotonic()
    while samples[-1][1] < n:
        await asyncio.sleep(0.25)
        written = await hub.metric("vaka_events_written_total") - base
        if written > samples[-1][1]:
            stalled_since = time.monotonic()
        elif time.monotonic() - stalled_since > 20:
            msg = f"hub stalled at {written:,.0f} of {n:,} events: {hub.log_tail()}"
            raise RuntimeError(msg)
        samples.append((time.perf_counter(), written))
    rate = rate_between(samples, n * 0.05, n * 0.95)
    log(f"sustained: {rate:,.0f} events/s committed")
    return rate


async def measure_level(
    hub: HubProcess,
    broker: Broker,
    token: str,
    site: str,
    pct: int,
    rate_per_s: float,
    background: list[tuple[str, bytes]],
    probes: list[tuple[str, str]],
    probe_pub: Publisher,
    watcher: Receiver,
    plan: Plan,
) -> dict[str, Any]:
    """Background traffic at `rate_per_s` from child processes; alarm-button probes; publish → alarm message."""
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    shards: list[list[tuple[str, bytes]]] = [[] for _ in range(BACKGROUND_WORKERS)]
    for topic, payload in background:  # by device: each device's messages stay in order on one connection
        shards[zlib.crc32(topic.split("/")[3].encode()) % BACKGROUND_WORKERS].append((topic, payload))
    workers = []
    for k, shard in enumerate(shards):
        ready, sent = ctx.Event(), ctx.Value("q", 0)
        rate_k = rate_per_s * len(shard) / max(1, len(background))
        args = (broker.port, f"e2e-bg-{token}-{pct}-{k}", shard, rate_k, plan.level_s, ready, go, sent)
        proc = ctx.Process(target=background_worker, args=args, name=f"e2e-background-{pct}-{k}", daemon=True)
        proc.start()
        workers.append((proc, ready, sent))
    try:
        for _proc, ready, _sent in workers:
            if not await asyncio.to_thread(ready.wait, 60):
                raise RuntimeError("background publisher did not start")
        written0 = await hub.metric("vaka_events_written_total")
        interval_s = max(plan.probe_interval_s, plan.level_s / max(1, len(probes)))  # each probe alarms a new resident
        log(f"latency at {pct} %: {rate_per_s:,.0f} msg/s background for {plan.level_s:.0f} s, probes every "
            f"{interval_s * 1000:.0f} ms")  # fmt: skip
        go.set()
        started = time.perf_counter()
        published: dict[str, float] = {}
        while time.perf_counter() - started < plan.level_s and probes:
            resident_id, device_id = probes.pop(0)
            body = {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "kind": "alarm_button",
                "value": 1,
                "seq": PROBE_SEQ_BASE + len(published),
            }
            published[resident_id] = time.perf_counter()
            probe_pub.publish(f"vaka/v1/{site}/{device_id}/event", json.dumps(body).encode())
            await asyncio.sleep(interval_s)
        for proc, _ready, _sent in workers:
            await asyncio.to_thread(proc.join, 60)
        load_s = time.perf_counter() - started
    finally:
        for proc, _ready, _sent in workers:
            if proc.is_alive():
                proc.kill()
    background_sent = sum(sent.value for _proc, _ready, sent in workers)
    expected = background_sent + len(published)
    caught_up_s: float | None = None
    arrived: dict[str, float] = {}
    deadline = time.perf_counter() + max(5.0, plan.level_s / 2)
    while time.perf_counter() < deadline:
        for t, payload in list(watcher.kept):
            alarm = json.loads(payload)
            rid = alarm.get("resident_id")
            if alarm.get("rule_id") == "alarm_button" and alarm.get("state") == "raised" and rid in published:
                arrived.setdefault(rid, t)
        if caught_up_s is None and await hub.metric("vaka_events_written_total") - written0 >= expected:
            caught_up_s = max(0.0, time.perf_counter() - started - load_s)
        if caught_up_s is not None and len(arrived) == len(published):
            break
        await asyncio.sleep(0.1)
    committed = await hub.metric("vaka_events_written_total") - written0
    latencies = [arrived[rid] - t for rid, t in published.items() if rid in arrived]
    result: dict[str, Any] = percentiles_ms(latencies)
    result.update(
        probes=len(published),
        unanswered=len(published) - len(latencies),
        target_per_s=round(rate_per_s),
        offered_per_s=round(background_sent / plan.level_s),
        hub_caught_up_s=None if caught_up_s is None else round(caught_up_s, 2),
        messages_published=expected,
        events_committed=round(committed),
    )
    log(f"latency at {pct} %: {result}")
    return result


@dataclass(slots=True)
class SeenAlarm:
    """One alarm as seen on `vaka/v1/{site}/alarms/#`."""

    id: str
    rule_id: str
    category: str
    resident_id: str | None
    device_id: str | None
    raised_at: float
    closed_at: float | None = None


def _ts(value: str | None) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def collect_alarms(kept: list[tuple[float, bytes]]) -> list[SeenAlarm]:
    """Every alarm seen, with its raise time and, if it closed, its close time (simulated)."""
    alarms: dict[str, SeenAlarm] = {}
    for _t, payload in kept:
        msg = json.loads(payload)
        alarm = alarms.get(msg["id"])
        if alarm is None:
            alarm = alarms[msg["id"]] = SeenAlarm(
                msg["id"], msg["rule_id"], msg["category"], msg["resident_id"], msg["device_id"], _ts(msg["raised_at"])
            )
        if msg["state"] in ("cancelled", "resolved"):
            alarm.closed_at = _ts(msg["updated_at"])
    return list(alarms.values())


def _same_subject(alarm: SeenAlarm, incident: dict[str, str | None]) -> bool:
    if alarm.device_id is not None and alarm.device_id == incident["device_id"]:
        return True
    return alarm.category == "care" and alarm.resident_id == incident["resident_id"]


def score(
    truth: list[dict[str, str | None]], alarms: list[SeenAlarm], resident_nights: float, start: float
) -> dict[str, Any]:
    """Recall against the ground truth, missed incidents with what was seen instead, and unexplained care alarms."""
    expected = [i for i in truth if i["expected"] is not None]
    explained: set[str] = set()
    missed: list[dict[str, Any]] = []
    covered = 0
    for inc in expected:
        at, by = _ts(inc["at"]), _ts(inc["must_raise_by"])
        same = [a for a in alarms if a.rule_id == inc["expected"] and _same_subject(a, inc)]
        in_time = [a for a in same if at - MATCH_SLACK_S <= a.raised_at <= by]
        # an alarm of the same rule still open (nobody resolves alarms here) takes the incident as an update
        still_open = [a for a in same if a.raised_at < at and (a.closed_at is None or a.closed_at > at)]
        explained.update(a.id for a in in_time + still_open)
        if in_time:
            continue
        if still_open:
            covered += 1
            continue
        late = [a for a in same if a.raised_at > by]
        explained.update(a.id for a in late)
        if late:
            seen = f"raised {min(a.raised_at for a in late) - by:.0f} s (simulated) after must_raise_by"
        else:
            nearby = sorted({a.rule_id for a in alarms if _same_subject(a, inc) and at - 600 <= a.raised_at <= by})
            seen = "no alarm" + (f"; for the same subject: {', '.join(nearby)}" if nearby else "")
        missed.append(
            {k: inc[k] for k in ("incident", "expected", "resident_id", "device_id", "at", "must_raise_by")}
            | {"seen": seen}
        )
    no_alarm_expected = [i for i in truth if i["expected"] is None]
    unexplained = [a for a in alarms if a.id not in explained]
    device_false_positives = [
        a
        for a in unexplained
        if any(
            _same_subject(a, i) and _ts(i["at"]) - MATCH_SLACK_S <= a.raised_at <= _ts(i["must_raise_by"]) + 60
            for i in no_alarm_expected
        )
    ]
    false_alarms = [a for a in unexplained if a.category == "care" and a not in device_false_positives]
    # the simulator's reference checker takes a rule firing again for the same resident within 30 min as one alarm
    repeats = [
        a
        for a in false_alarms
        if any(
            a.rule_id == i["expected"] and _same_subject(a, i) and 0 < a.raised_at - _ts(i["must_raise_by"]) <= 1800
            for i in expected
        )
    ]
    technical = [a for a in unexplained if a.category != "care" and a not in device_false_positives]
    by_rule = Counter(a.rule_id for a in false_alarms)
    return {
        "recall": round((len(expected) - len(missed)) / len(expected), 4) if expected else None,
        "incidents": len(expected),
        "incidents_no_alarm_expected": len(no_alarm_expected),
        "covered_by_open_alarm": covered,
        "missed": missed,
        "false_alarms_per_resident_night": round(len(false_alarms) / resident_nights, 4),
        "false_alarms_by_rule": dict(by_rule),
        "false_alarms_repeating_an_incident_within_30_min": len(repeats),
        "device_false_positive_alarms_per_resident_night": round(
            sum(a.category == "care" for a in device_false_positives) / resident_nights, 4
        ),
        "unexplained_technical_alarms": len(technical),
        "unexplained_technical_by_rule": dict(Counter(a.rule_id for a in technical)),
        # the hub's engine arms supervision on the wall clock before the first simulated clock message arrives
        "unexplained_technical_alarms_in_first_2_min": sum(a.raised_at < start + 120 for a in technical),
        "alarms_seen": len(alarms),
    }


async def wait_settled(hub: HubProcess, quiet_s: float = 1.5, timeout_s: float = 60.0) -> None:
    """Wait until the hub's committed-event count stops moving for `quiet_s`."""
    last, since = -1.0, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        written = await hub.metric("vaka_events_written_total")
        if written != last:
            last, since = written, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        await asyncio.sleep(0.25)


async def measure_recall(broker: Broker, token: str, plan: Plan, workdir: Path, schemas: list[str]) -> dict[str, Any]:
    """An accelerated simulated run against a hub on the simulation's clock, scored against the ground truth."""
    site = f"e2er{token}"
    zone_now = datetime.now(SimConfig().zone)
    rates = IncidentRates(**{k: v * plan.incident_scale for k, v in IncidentRates().model_dump().items()})
    config = SimConfig(
        site=site,
        residents=plan.residents,
        nights=plan.nights,
        hours=plan.hours,
        seed=plan.seed,
        speed=plan.speed,
        start=next_evening(zone_now),
        rates=rates,
    )
    sim = Simulation(config)
    schema = f"e2e_r_{token}"
    schemas.append(schema)
    await prepare_schema(schema, sim.inventory())
    hub = HubProcess(
        schema=schema, broker_port=broker.port, client_id=f"e2e-hub-r-{token}", workdir=workdir, clock_mode="simulated"
    )
    watcher = Receiver(broker.port, f"e2e-alarms-r-{token}", f"vaka/v1/{site}/alarms/#", keep=True)
    try:
        await hub.start()
        watcher.connect()
        sim_hours = (sim.end - sim.start).total_seconds() / 3600
        log(f"recall: {plan.residents} residents, {sim_hours:.1f} simulated hours at {plan.speed:g}x, seed {plan.seed}")
        stats = await run_simulation(sim, port=broker.port, client_id=f"e2e-sim-{token}", progress=sys.stderr)
        await wait_settled(hub)
        await asyncio.sleep(1.0)  # timers due at the simulation's end fire on the next engine ticks
    finally:
        await hub.stop()
        watcher.disconnect(forget=True)
    resident_nights = plan.residents * (plan.nights if plan.hours is None else plan.hours / 24)
    result = score(sim.truth(), collect_alarms(watcher.kept), resident_nights, sim.start.timestamp())
    result["run"] = {
        "residents": plan.residents,
        "nights": plan.nights if plan.hours is None else None,
        "hours": round(sim_hours, 2),
        "speed": plan.speed,
        "seed": plan.seed,
        "incident_rate_scale": plan.incident_scale,
        "start": sim.start.isoformat(),
        "messages": stats.messages,
        "wall_s": round(stats.elapsed_s, 1),
    }
    return result


# --- the run -------------------------------------------------------------------------------------------------------


async def bench(plan: Plan) -> dict[str, Any]:
    """All phases, one after the other; everything made here is removed at the end."""
    token = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="vaka-e2e-"))
    (workdir / "broker").mkdir()
    broker = Broker(workdir / "broker")
    schemas: list[str] = []
    hub: HubProcess | None = None
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        broker.start()
        zone = SimConfig().zone
        site = f"e2el{token}"
        load_sim = Simulation(
            SimConfig(
                site=site,
                residents=plan.load_residents,
                seed=plan.seed,
                start=datetime.now(zone) - timedelta(hours=2),
                hours=48,
                rates=NO_INCIDENTS,
            )
        )
        stream = load_stream(load_sim)
        log(f"generating {plan.backlog:,} messages of {plan.load_residents} simulated residents")
        backlog = list(itertools.islice(stream, plan.backlog))
        raw = await measure_raw(broker, token, site, backlog)

        schema = f"e2e_l_{token}"
        schemas.append(schema)
        await prepare_schema(schema, load_sim.inventory())
        hub = HubProcess(
            schema=schema, broker_port=broker.port, client_id=f"e2e-hub-{token}", workdir=workdir, clock_mode="wall"
        )
        await hub.start()
        sustained = await measure_sustained(hub, broker, token, backlog)
        del backlog

        probes = [(r.id, r.devices["alarm_button"].id) for r in load_sim.residents]
        watcher = Receiver(broker.port, f"e2e-alarms-{token}", f"vaka/v1/{site}/alarms/#", keep=True)
        watcher.connect()
        latency: dict[str, Any] = {}
        try:
            async with Publisher("127.0.0.1", broker.port, client_id=f"e2e-probe-{token}") as probe_pub:
                for level, pct in enumerate((50, 90)):
                    level_probes = probes[level::2]
                    rate = sustained * pct / 100
                    background = list(itertools.islice(stream, int(rate * plan.level_s * 1.1) + 100))
                    latency[f"at_{pct}pct"] = await measure_level(
                        hub, broker, token, site, pct, rate, background, level_probes, probe_pub, watcher, plan
                    )
        finally:
            watcher.disconnect(forget=True)
        await hub.stop()

        recall = await measure_recall(broker, token, plan, workdir, schemas)
    except BaseException:
        if hub is not None:
            log(f"hub log tail: {hub.log_tail()}")
        raise
    finally:
        if hub is not None:
            await hub.stop()
        broker.stop()
        for schema in schemas:
            await drop_schema(schema)
        shutil.rmtree(workdir, ignore_errors=True)
    for m in recall["missed"]:
        log(f"MISSED {m['incident']} (expected {m['expected']}) {m['resident_id']} {m['device_id']} at {m['at']}: "
            f"{m['seen']}")  # fmt: skip
    return {
        "raw_receive_per_s": round(raw),
        "sustained_events_per_s": round(sustained),
        "ratio": round(sustained / raw, 3),
        "alarm_latency_ms": latency,
        "recall": recall.pop("recall"),
        "false_alarms_per_resident_night": recall.pop("false_alarms_per_resident_night"),
        "missed": recall.pop("missed"),
        "run": recall.pop("run") | {"backlog_messages": plan.backlog, "load_residents": plan.load_residents},
        "recall_detail": recall,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        },
        "duration_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a ~40 s run with smaller figures")
    parser.add_argument("--residents", type=int, help="residents in the recall run")
    parser.add_argument("--nights", type=int, help="nights in the recall run")
    parser.add_argument("--hours", type=float, help="simulated hours in the recall run (instead of nights)")
    parser.add_argument("--speed", type=float, help="simulated seconds per wall second in the recall run")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--incident-scale", type=float, help="multiply the simulator's default incident rates")
    parser.add_argument("--backlog", type=int, help="messages queued for the ceiling and the sustained rate")
    parser.add_argument("--load-residents", type=int, help="simulated residents whose traffic is the load")
    parser.add_argument("--level-s", type=float, help="seconds of background load per latency level")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides = {
        "residents": args.residents,
        "nights": args.nights,
        "hours": args.hours,
        "speed": args.speed,
        "seed": args.seed,
        "incident_scale": args.incident_scale,
        "backlog": args.backlog,
        "load_residents": args.load_residents,
        "level_s": args.level_s,
    }
    plan = dataclasses.replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    if args.nights is not None and args.hours is None:
        plan = dataclasses.replace(plan, hours=None)
    result = asyncio.run(bench(plan))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
