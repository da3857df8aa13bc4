"""Services for bench/e2e.py: a private Mosquitto, throwaway schemas, the hub as a process, MQTT clients, load."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.checkins.plan import Plan
from hub.checkins.service import save_plans
from hub.model import Inventory
from hub.settings import DbSettings, MqttSettings
from hub.simulation import IncidentRates, Publisher, SimConfig, Simulation
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from tests.services import free_port

REPO = Path(__file__).resolve().parents[1]
DSN = os.environ.get("VAKA_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RECEIVE_MAXIMUM = MqttSettings().receive_maximum
NO_INCIDENTS = IncidentRates(**dict.fromkeys(IncidentRates.model_fields, 0.0))
LOAD_WINDOW_H = 0.9  # the hub refuses events more than 1 h ahead of its clock


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


async def load_checkin_plans(schema: str, plans: list[Plan]) -> None:
    """Store check-in plans in `schema`, as `vaka checkin plan` does."""
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f"SET search_path TO {schema}")
        await save_plans(conn, plans)
    finally:
        await conn.close()


async def fetch_checkins(schema: str) -> list[dict[str, Any]]:
    """Every check-in task the hub created in `schema` (for bench/checkin_score.py)."""
    conn = await asyncpg.connect(DSN)
    try:
        rows = await conn.fetch(f"SELECT id, mode, reason, parent_id, created_at FROM {schema}.checkins")
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def drop_schema(schema: str) -> None:
    """Drop a schema made by this run."""
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


class HubProcess:
    """`vaka serve` in its own process, configured through VAKA_* variables."""

    def __init__(
        self,
        *,
        schema: str,
        broker_port: int,
        client_id: str,
        workdir: Path,
        clock_mode: str,
        extra_env: dict[str, str] | None = None,
    ) -> None:
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
        if clock_mode != "simulated":
            # the load traffic is dated an hour or so ahead of the wall clock on purpose (bench/e2e.py: past events
            # would fire sequence timers at once); the hub must take it rather than reject it as clock skew
            env["VAKA_RELIABILITY__MAX_FUTURE_SKEW_S"] = "14400"
        if clock_mode == "simulated":
            # one connection: the clock then arrives in order with every event. With telemetry on a second
            # connection, a few ms of lag there become minutes at high speed and supervision times out spuriously
            env["VAKA_MQTT__TELEMETRY_CONNECTION"] = "false"
        env.update(extra_env or {})
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

    async def durable_events(self) -> float:
        """Events in PostgreSQL so far: rows committed, plus re-sent ones found already there (a batch that timed out
        on our side, went to the spool, and had committed after all)."""
        text = await asyncio.to_thread(self._get, "/metrics") or ""
        total = 0.0
        for line in text.splitlines():
            if line.startswith(("vaka_events_written_total ", "vaka_events_duplicate_total ")):
                total += float(line.split()[1])
        return total

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


def load_config(site: str, residents: int, seed: int) -> SimConfig:
    """Ordinary days of the load residents from 2 min ahead of the wall clock on, for every load phase in turn.

    A wall-clock hub fed events from the past fires their sequence timers at once (a bathroom visit "lasts" 45 min
    before its end arrives), and it refuses events more than an hour ahead, so the load lies just ahead of the wall
    clock: the engine then sees a consistent time in the events, as a real site's would be. Each phase continues
    where the one before stopped, so no device falls silent between phases and time never runs backwards.
    """
    return SimConfig(
        site=site,
        residents=residents,
        robot_share=0.0,
        seed=seed,
        start=datetime.now(SimConfig().zone) + timedelta(minutes=2),
        hours=LOAD_WINDOW_H,
        rates=NO_INCIDENTS,
    )


def load_messages(
    config: SimConfig, count: int, *, after: float | None = None, shard: tuple[int, int] = (0, 1)
) -> tuple[list[tuple[str, bytes]], list[float]]:
    """Up to `count` device event and telemetry messages of a load simulation from just `after` (POSIX seconds,
    default the start) on, in time order, and the simulated time of each."""
    # no clock, and no status: every device announces itself at the start, a burst a running site does not send
    sim = Simulation(config)
    start = datetime.fromtimestamp(after + 0.001, UTC) if after is not None else None
    steady = (
        m
        for m in sim.iter_messages(start=start, shard=shard)
        if "/_sim/" not in m.topic and not m.topic.endswith("/status")
    )
    messages: list[tuple[str, bytes]] = []
    times: list[float] = []
    for m in itertools.islice(steady, count):
        messages.append((m.topic, m.payload))
        times.append(m.time.timestamp())
    if len(messages) < count:
        print(
            f"[bench/e2e] only {len(messages):,} of {count:,} load messages fit in {LOAD_WINDOW_H} h: "
            "use more --load-residents",
            file=sys.stderr,
        )
    return messages, times


def background_worker(port: int, client_id: str, config_json: str, after: float, shard: tuple[int, int], count: int,
                      speedup: float, duration_s: float, ready: Any, go: Any, sent: Any, last: Any) -> None:  # fmt: skip
    """Child process: generate its shard of the load after `after`, then play it at `speedup` simulated seconds per
    wall second for `duration_s` once `go` is set; report how many it sent and the simulated time of the last one.

    Pacing by simulated time keeps the shards in step: the hub's rule engine takes time from the events, so a shard
    running ahead would make the other shard's devices look silent.
    """
    messages, times = load_messages(SimConfig.model_validate_json(config_json), count, after=after, shard=shard)

    async def main() -> None:
        async with Publisher("127.0.0.1", port, client_id=client_id, mqtt_v311=True) as pub:
            ready.set()
            while not go.is_set():  # noqa: ASYNC110 (a multiprocessing event)
                await asyncio.sleep(0.002)
            loop = asyncio.get_running_loop()
            t0, n = loop.time(), 0
            for (topic, payload), t in zip(messages, times, strict=True):
                now = loop.time()
                if now - t0 >= duration_s:
                    break
                ahead_s = t0 + (t - after) / speedup - now
                if ahead_s > 0.001:
                    await asyncio.sleep(ahead_s)
                pub.publish(topic, payload)
                n += 1
                if n % 256 == 0 and pub.pending > pub.max_pending:
                    await pub.wait_capacity()
            sent.value = n
            last.value = times[n - 1] if n else after
            await pub.drain(30)
            if n == len(messages):
                print(f"[bench/e2e] {client_id} ran out of load messages after {n:,}", file=sys.stderr)

    asyncio.run(main())
