"""No single broker machine silences the alarms (issue 30, first slice; docs/ha.md).

`vaka serve` runs as a process against a 3-node RabbitMQ cluster on loopback (Debian's 3.10.8, MQTT 3.1.1, durable
subscriptions on quorum queues) and a private PostgreSQL. Devices publish a steady QoS 1 load over MQTT 3.1.1 with a
ledger of every PUBACK; then one node is killed with SIGKILL: the one the hub is connected to (which is also where
its subscription queue's leader is), or, separately, another one (the devices' node). During the fault an alarm
button is pressed. Afterwards: every acknowledged event is in the database exactly once, the hub is on another node
within the bound below, and the press was raised as an alarm. The figures are printed (run with -s) and recorded in
docs/ha.md.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.broker_cluster import PrivateRabbitCluster, rabbit_available
from tests.hub.test_durability import HubProcess, Ledger, assert_ledger_stored_once
from tests.services import PrivatePostgres

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not rabbit_available(), reason="Debian's rabbitmq-server with its MQTT plugin is not installed"),
]

RATE_PER_S = 300.0
BEFORE = 1500  # events acknowledged before the kill (5 s of load)
TOTAL = 6000  # 20 s of load in all
# measured on a 2-core machine shared with other work (docs/ha.md): the hub on another node 0.2–0.6 s after the kill,
# a press an alarm 1.0–1.3 s after it was pressed (0.003–0.2 s when the hub's node lived). The bounds are not speed
# goals (those belong in bench/): they fail a design that waits for a keepalive (30 s) or for a person
RECONNECT_BOUND_S = 5.0
PRESS_TO_ALARM_BOUND_S = 10.0


@dataclass(frozen=True)
class Node:
    """One node's MQTT address."""

    host: str
    port: int


@dataclass(frozen=True)
class Figures:
    """What one fault cost."""

    victim: str
    published: int
    acked: int
    redelivered: int  # already stored, delivered again after the fault; the store's key kept them out
    longest_stall_s: float
    reconnect_s: float
    press_to_alarm_s: float


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateRabbitCluster]:
    with PrivateRabbitCluster(3) as nodes:
        yield nodes


@pytest.fixture
def whole_cluster(cluster: PrivateRabbitCluster) -> Iterator[PrivateRabbitCluster]:
    """The cluster with every node up; a node a test killed is started again (it rejoins) afterwards."""
    yield cluster
    for i in range(len(cluster.nodes)):
        if not cluster.running(i):
            cluster.start(i)


def hub_node(hub: HubProcess, cluster: PrivateRabbitCluster) -> int:
    """The node the hub's events connection is on now, from its log line."""
    ports = re.findall(r"mqtt events connected to 127\.0\.0\.1:(\d+)", hub.log)
    assert ports, hub.log[-2000:]
    return cluster.node_of_port(int(ports[-1]))


class Button:
    """An alarm button connected (MQTT 3.1.1) to the node at `port` before the fault, as devices are."""

    def __init__(self, port: int, site: str) -> None:
        self.site = site
        self._connected = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"button-{site}", protocol=paho.MQTTv311)
        self._client.on_connect = lambda *_: self._connected.set()
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._connected.wait(30), "the alarm button could not connect"

    def press(self) -> datetime:
        """Press (QoS 1) and wait for the cluster's PUBACK; when it was pressed."""
        pressed = datetime.now(UTC)
        body = {"ts": pressed.isoformat(), "kind": "alarm_button", "seq": 1}
        info = self._client.publish(f"vaka/v1/{self.site}/button/event", json.dumps(body).encode(), qos=1)
        info.wait_for_publish(timeout=30)
        assert info.is_published(), "the cluster did not acknowledge the press"
        return pressed

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def logged_at(log: str, pattern: str, after: datetime) -> datetime:
    """The time of the first line of the hub's log matching `pattern` that was written after `after`."""
    for line in log.splitlines():
        if re.search(pattern, line):
            # the log's times are local and cut to the millisecond
            at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)
            if at >= after - timedelta(milliseconds=1):
                return at
    msg = f"no line {pattern!r} after {after}"
    raise AssertionError(msg)


async def _blind_alarms(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT rule_id FROM desk_alarms WHERE rule_id IN ('canary_failed', 'supervision_lost') ORDER BY raised_at"
        )
    finally:
        await conn.close()
    return [r["rule_id"] for r in rows]


async def _button_alarms(dsn: str, site: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM desk_alarms WHERE site = $1 AND rule_id = 'alarm_button' AND device_id = 'button'",
            site,
        )
    finally:
        await conn.close()
    return count


def wait_for_alarm(pg: PrivatePostgres, site: str, timeout_s: float = 60.0) -> None:
    """Wait until the press is an alarm at the desk (its row written)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if asyncio.run(_button_alarms(pg.dsn, site)) == 1:
                return
        except (OSError, asyncpg.PostgresError):
            pass  # the schema is the hub's to create; it is there once the hub is up
        assert time.monotonic() < deadline, "the alarm button pressed during the fault raised no alarm"
        time.sleep(0.1)


def wait_for_reconnect(hub: HubProcess, before: float, timeout_s: float = 60.0) -> None:
    """Wait until the hub's events connection is up on a new connection, as operations see it (/metrics)."""
    deadline = time.monotonic() + timeout_s
    while True:
        reconnects = hub.metric("vaka_mqtt_reconnects_total", 'connection="events"') or 0.0
        if reconnects > before and hub.metric("vaka_mqtt_connected", 'connection="events"') == 1.0:
            return
        assert time.monotonic() < deadline, f"the hub did not reconnect: {hub.log[-2000:]}"
        time.sleep(0.05)


def ride_out(cluster: PrivateRabbitCluster, tmp: Path, site: str, victim: str) -> Figures:
    """Steady load, one node killed (`hub`: the hub's; `devices`: the devices' node), a press during the fault."""
    ports = cluster.mqtt_ports
    with PrivatePostgres() as pg:
        hub = HubProcess(pg, Node("127.0.0.1", ports[0]), tmp, site)
        hub.env.update(
            {
                "VAKA_MQTT__PROTOCOL": "3.1.1",
                "VAKA_MQTT__HOSTS": json.dumps([f"127.0.0.1:{port}" for port in ports]),
                "VAKA_MQTT__RECONNECT_MAX_S": "2.0",
            }
        )
        ledger: Ledger | None = None
        button: Button | None = None
        try:
            hub.start()
            hub.wait_status("ready")
            on = hub_node(hub, cluster)
            others = [i for i in range(len(ports)) if i != on]
            devices_on = others[0]
            ledger = Ledger(
                Node("127.0.0.1", ports[devices_on]),
                site,
                protocol=paho.MQTTv311,
                failover_ports=[ports[i] for i in others[1:]] + [ports[on]],
            )
            killed = on if victim == "hub" else devices_on
            button = Button(ports[next(i for i in others if i != killed)], site)  # on a node that survives
            load_started = time.monotonic()
            load = threading.Thread(target=ledger.publish, args=(0, TOTAL, RATE_PER_S), name="ledger", daemon=True)
            load.start()
            deadline = time.monotonic() + 60
            while len(ledger.acked) < BEFORE:
                assert time.monotonic() < deadline, "the cluster did not take the load before the fault"
                time.sleep(0.05)

            reconnects = hub.metric("vaka_mqtt_reconnects_total", 'connection="events"') or 0.0
            killed_at = datetime.now(UTC)
            cluster.kill(killed)
            pressed = button.press()
            reconnect_s = 0.0  # the hub's node lives: it has no reason to move
            if victim == "hub":
                wait_for_reconnect(hub, reconnects)
                assert hub_node(hub, cluster) != killed
                reconnected = logged_at(hub.log, "mqtt events connected to", killed_at)
                reconnect_s = (reconnected - killed_at).total_seconds()
            wait_for_alarm(pg, site)
            raised = logged_at(hub.log, r"ALARM id=\S+ state=raised .* rule=alarm_button", pressed)

            load.join(timeout=120)
            assert not load.is_alive(), "the publisher never finished its load"
            ledger.settle(timeout_s=60)
            # the devices went on through another node: the cluster acknowledged their whole load
            assert len(ledger.acked) == TOTAL, f"{len(ledger.acked)} of {TOTAL}; connections {ledger.connections}"
            hub.wait_status("ready", timeout_s=60)
            assert_ledger_stored_once(pg, ledger, timeout_s=120)  # 0 acknowledged events lost, none stored twice
            assert asyncio.run(_button_alarms(pg.dsn, site)) == 1, "the press, delivered again, raised a second alarm"
            # a node's failover is no "go to physical rounds": the staff would learn to ignore it
            assert asyncio.run(_blind_alarms(pg.dsn)) == []
            for connection in ("events", "telemetry", "canary"):  # a false loss alarm is an alarm nobody trusts
                assert hub.metric("vaka_mqtt_session_lost_total", f'connection="{connection}"') == 0.0, connection
            figures = Figures(
                victim=victim,
                published=TOTAL,
                acked=len(ledger.acked),
                redelivered=int(hub.metric("vaka_events_duplicate_total") or 0),
                longest_stall_s=ledger.longest_stall_s(load_started),
                reconnect_s=reconnect_s,
                press_to_alarm_s=(raised - pressed).total_seconds(),
            )
            print(f"\nHA figures: {figures}")  # the numbers docs/ha.md records
            return figures
        finally:
            for device in (ledger, button):
                if device is not None:
                    device.close()
            hub.stop()
            cluster.forget_client(f"hub-{site}")  # its sessions would take a copy of the next test's load


def test_the_hubs_broker_node_killed_under_load_loses_nothing_and_the_hub_moves_on(
    whole_cluster: PrivateRabbitCluster, tmp_path: Path, unique: str
) -> None:
    figures = ride_out(whole_cluster, tmp_path, f"ha{unique}", victim="hub")
    assert figures.reconnect_s < RECONNECT_BOUND_S
    assert figures.press_to_alarm_s < PRESS_TO_ALARM_BOUND_S


def test_the_devices_broker_node_killed_under_load_loses_nothing(
    whole_cluster: PrivateRabbitCluster, tmp_path: Path, unique: str
) -> None:
    figures = ride_out(whole_cluster, tmp_path, f"ha{unique}", victim="devices")
    assert figures.press_to_alarm_s < PRESS_TO_ALARM_BOUND_S
