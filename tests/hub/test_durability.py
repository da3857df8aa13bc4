"""Nothing acknowledged is lost: whatever happens to the database, the broker or the hub itself.

Each test runs `vaka serve` as a real process against a private PostgreSQL and a private Mosquitto, publishes a
burst of QoS 1 events while breaking something, and keeps a ledger of every publish the broker acknowledged (the
oracle). Afterwards every ledger entry must be in the database exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.app import Hub
from hub.metrics import Metrics
from hub.settings import Settings
from tests.services import PrivateMosquitto, PrivatePostgres, free_port

DEVICES = 20
BASE_TS = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


class Broker(Protocol):
    """Where a broker (or one node of a cluster) listens."""

    host: str
    port: int


class Postgres(Protocol):
    """Where the database is: one PostgreSQL, or a replicated cluster's multi-host DSN."""

    @property
    def dsn(self) -> str: ...


def event_key(i: int) -> tuple[str, datetime, int]:
    """The stored identity (device_id, ts, seq) of burst event i."""
    return f"d{i % DEVICES:02d}", BASE_TS + timedelta(milliseconds=i), i


class Ledger:
    """Publishes a burst of QoS 1 events and records which ones the broker acknowledged, and when.

    With `failover_ports` (a cluster's other nodes) a publisher whose node went away reconnects to the next one, as
    a device behind the cluster's one address (a load balancer, several DNS records) would.
    """

    def __init__(
        self,
        broker: Broker,
        site: str,
        channel: str = "event",
        *,
        protocol: int = paho.MQTTv5,
        failover_ports: Sequence[int] = (),
        client_id: str | None = None,
    ) -> None:
        self.site = site
        self.channel = channel
        # event index by packet id, and the packet ids the broker acknowledged (fewer than 65,536 per test, so
        # paho's ids do not wrap); no lock is held around paho's own calls, which take paho's locks
        self._index_by_mid: dict[int, int] = {}
        self._acked_mids: set[int] = set()
        self.ack_times: list[float] = []  # monotonic time of every PUBACK, in order
        self.connections: list[tuple[float, int, str]] = []  # monotonic time, port and CONNACK of every connection
        self._ports = [broker.port, *failover_ports]
        self._closing = False
        self._lock = threading.Lock()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"ledger-{site}",
            protocol=protocol,
            reconnect_on_failure=True,
        )
        self._client.max_inflight_messages_set(100)
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(0.1, 1)
        self._client.on_publish = self._on_publish
        self._client.on_connect = self._on_connect
        if failover_ports:  # a lost connection and a failed attempt (paho reports them apart) both move on
            self._client.on_disconnect = self._next_node
            self._client.on_connect_fail = self._next_node_after_failure
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, rc: object, props: object) -> None:
        with self._lock:
            self._acked_mids.add(mid)
            self.ack_times.append(time.monotonic())

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        with self._lock:
            self.connections.append((time.monotonic(), client.port, str(rc)))

    def _next_node(self, client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        if self._closing:
            return
        # paho's own reconnect loop connects there; its `port` setter refuses while this callback runs (the state
        # still says connected), hence the attribute behind it
        client._port = self._ports[(self._ports.index(client.port) + 1) % len(self._ports)]

    def _next_node_after_failure(self, client: paho.Client, userdata: object) -> None:
        self._next_node(client, userdata, None, None, None)

    @property
    def port(self) -> int:
        """The port of the node the publisher is on (or tries next)."""
        return self._client.port

    def longest_stall_s(self, since: float) -> float:
        """The longest time without a PUBACK after monotonic time `since` (up to the last one)."""
        with self._lock:
            times = [since, *(t for t in self.ack_times if t >= since)]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    @property
    def acked(self) -> set[int]:
        """Indexes of the events whose publish the broker acknowledged."""
        with self._lock:
            return {self._index_by_mid[m] for m in self._acked_mids if m in self._index_by_mid}

    def publish(self, start: int, stop: int, rate_per_s: float) -> None:
        """Publish events start..stop-1 at about `rate_per_s`."""
        t0 = time.monotonic()
        for i in range(start, stop):
            device, ts, seq = event_key(i)
            kind = "motion" if self.channel == "event" else "heartbeat"
            payload = json.dumps({"ts": ts.isoformat(), "kind": kind, "seq": seq}).encode()
            info = self._client.publish(f"vaka/v1/{self.site}/{device}/{self.channel}", payload, qos=1)
            self._index_by_mid[info.mid] = i
            ahead_s = (i - start + 1) / rate_per_s - (time.monotonic() - t0)
            if ahead_s > 0:
                time.sleep(ahead_s)

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait until every publish is acknowledged or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self._acked_mids) >= len(self._index_by_mid):
                    return
            time.sleep(0.1)

    def close(self) -> None:
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()


class HubProcess:
    """`vaka serve` as its own process, so it can be killed like a real crash."""

    def __init__(self, pg: Postgres, broker: Broker, tmp: Path, site: str) -> None:
        self.http_port = free_port()
        self.log_path = tmp / "hub.log"
        self.env = {
            **os.environ,
            "VAKA_DB__DSN": pg.dsn,
            "VAKA_DB__OWNER_DSN": pg.dsn,
            "VAKA_DB__WRITE_DEADLINE_S": "1.0",
            "VAKA_DB__COMMAND_TIMEOUT_S": "2.0",
            "VAKA_MQTT__PORT": str(broker.port),
            "VAKA_MQTT__CLIENT_ID": f"hub-{site}",
            "VAKA_SPOOL__DIRECTORY": str(tmp / "spool"),
            "VAKA_HTTP__PORT": str(self.http_port),
            "VAKA_HTTP__COOKIE_SECURE": "false",
        }
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self._proc.poll() is None, f"hub exited: {self.log_path.read_text()[-2000:]}"
            if self.ready() is not None:
                return
            time.sleep(0.1)
        raise AssertionError(f"hub did not come up: {self.log_path.read_text()[-2000:]}")

    def ready(self) -> dict[str, str] | None:
        """The /readyz body, or None while the web server does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2) as resp:
                body: dict[str, str] = json.loads(resp.read())
                return body
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
            return body
        except OSError:
            return None

    def wait_status(self, status: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            body = self.ready()
            if body is not None and body["status"] == status:
                return
            time.sleep(0.1)
        raise AssertionError(f"hub never became {status}: last {self.ready()}")

    def kill(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        self._proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the process is frozen, its sockets stay open (a hung hub, a VM paused)."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def metric(self, name: str, labels: str = "") -> float | None:
        """One sample from /metrics (`labels` as written there, e.g. `connection="events"`), or None."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        wanted = f"{name}{{{labels}}} " if labels else f"{name} "
        for line in text.splitlines():
            if line.startswith(wanted):
                return float(line.rsplit(" ", 1)[1])
        return None

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log(self) -> str:
        """What the hub logged so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


async def _stored(dsn: str, site: str, schema: str = "public") -> list[tuple[str, datetime, int]]:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch("SELECT device_id, ts, seq FROM events WHERE site = $1", site)
    finally:
        await conn.close()
    return [(r["device_id"], r["ts"], r["seq"]) for r in rows]


def assert_ledger_stored_once(pg: Postgres, ledger: Ledger, timeout_s: float = 60.0, schema: str = "public") -> None:
    """Every acknowledged publish is in the database, and no event is stored twice."""
    expected = {event_key(i) for i in ledger.acked}
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            rows = asyncio.run(_stored(pg.dsn, ledger.site, schema))
        except (OSError, asyncpg.PostgresError):
            rows = []
        missing = expected - set(rows)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(rows) == len(set(rows)), "an event was stored twice"
    assert not missing, f"{len(missing)} of {len(expected)} acknowledged events never reached the database"
    assert len(expected) > 0


@pytest.fixture
def rig(tmp_path: Path, unique: str) -> Iterator[tuple[PrivatePostgres, PrivateMosquitto, HubProcess, Ledger]]:
    with PrivatePostgres() as pg, PrivateMosquitto() as broker:
        hub = HubProcess(pg, broker, tmp_path, f"s{unique}")
        ledger: Ledger | None = None
        try:
            hub.start()
            hub.wait_status("ready")  # subscribed: a publish before that reaches no one, though the broker acks it
            ledger = Ledger(broker, f"s{unique}")
            yield pg, broker, hub, ledger
        finally:
            if ledger is not None:
                ledger.close()
            hub.stop()


pytestmark = pytest.mark.timeout(240)

BURST = 3000
RATE_PER_S = 1500.0


def test_database_outage_during_a_burst_loses_nothing(
    rig: tuple[PrivatePostgres, PrivateMosquitto, HubProcess, Ledger],
) -> None:
    pg, _broker, hub, ledger = rig
    hub.wait_status("ready")
    ledger.publish(0, BURST // 3, RATE_PER_S)
    pg.stop()
    ledger.publish(BURST // 3, 2 * BURST // 3, RATE_PER_S)
    hub.wait_status("degraded")  # spooling, still acking
    pg.start()
    ledger.publish(2 * BURST // 3, BURST, RATE_PER_S)
    ledger.settle()
    assert len(ledger.acked) == BURST  # the broker acked every publish: the hub kept taking them while the DB was away
    assert_ledger_stored_once(pg, ledger)
    hub.wait_status("ready")


def test_hub_killed_during_a_burst_loses_nothing(
    rig: tuple[PrivatePostgres, PrivateMosquitto, HubProcess, Ledger],
) -> None:
    pg, _broker, hub, ledger = rig
    ledger.publish(0, BURST // 2, RATE_PER_S)
    hub.kill()
    ledger.publish(BURST // 2, 3 * BURST // 4, RATE_PER_S)  # the broker queues these in the hub's session
    hub.start()
    ledger.publish(3 * BURST // 4, BURST, RATE_PER_S)
    ledger.settle()
    assert_ledger_stored_once(pg, ledger)


def test_broker_restart_during_a_burst_loses_nothing(
    rig: tuple[PrivatePostgres, PrivateMosquitto, HubProcess, Ledger],
) -> None:
    pg, broker, hub, ledger = rig
    ledger.publish(0, BURST // 2, RATE_PER_S)
    broker.restart()
    ledger.publish(BURST // 2, BURST, RATE_PER_S)
    ledger.settle()
    hub.wait_status("ready")
    assert_ledger_stored_once(pg, ledger)


def test_hub_started_with_the_database_down_acks_into_the_spool(tmp_path: Path, unique: str) -> None:
    site = f"s{unique}"
    with PrivatePostgres() as pg, PrivateMosquitto() as broker:
        pg.stop()
        hub = HubProcess(pg, broker, tmp_path, site)
        ledger: Ledger | None = None
        try:
            hub.start()  # must come up, not crash-loop
            hub.wait_status("degraded")
            ledger = Ledger(broker, site)
            ledger.publish(0, BURST // 2, RATE_PER_S)
            ledger.settle()
            assert len(ledger.acked) == BURST // 2
            pg.start()
            ledger.publish(BURST // 2, BURST, RATE_PER_S)
            ledger.settle()
            assert_ledger_stored_once(pg, ledger)
            hub.wait_status("ready")
        finally:
            if ledger is not None:
                ledger.close()
            hub.stop()


async def reconnected(hub: Hub, before: int, timeout_s: float = 15.0) -> None:
    """Wait until the hub's events connection is up on a connection newer than `before`."""
    deadline = time.monotonic() + timeout_s
    while not (hub.events_conn.generation > before and hub.events_conn.connected):
        assert time.monotonic() < deadline, "the hub did not reconnect"
        await asyncio.sleep(0.05)


async def test_a_broker_that_lost_our_session_is_counted_as_a_possible_loss_window(
    settings: Settings, tmp_path: Path
) -> None:
    with PrivateMosquitto() as broker:
        hub_settings = settings.model_copy(
            update={"mqtt": settings.mqtt.model_copy(update={"port": broker.port, "reconnect_max_s": 0.5})}
        )
        metrics = Metrics()
        lost = metrics.mqtt_session_lost.labels("events")
        async with Hub(hub_settings, metrics) as hub:
            await hub.wait_connected()
            assert lost._value.get() == 0  # the first connection of a client id has no session to lose
            generation = hub.events_conn.generation
            broker.stop()  # saves the sessions: a restart keeps them
            broker.start()
            await reconnected(hub, generation)
            assert lost._value.get() == 0
            generation = hub.events_conn.generation
            broker.stop()
            broker.forget_sessions()  # as a broker without persistence would after a restart
            broker.start()
            await reconnected(hub, generation)
            assert lost._value.get() == 1
        # a new hub process with the same client id knows it has been connected before (marker in the spool dir)
        broker.stop()
        broker.forget_sessions()
        broker.start()
        async with Hub(hub_settings, Metrics()) as again:
            await again.wait_connected()
            assert again.metrics.mqtt_session_lost.labels("events")._value.get() == 1
