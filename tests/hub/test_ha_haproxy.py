"""Devices keep one MQTT address while a broker node dies (issue 30; docs/ha.md).

Debian's HAProxy runs deploy/ha/haproxy.cfg (TCP, MQTT CONNECT/CONNACK health checks) in front of a 3-node
RabbitMQ cluster on loopback (tests/broker_cluster.py). A device publishing a steady QoS 1 load with a ledger of
every PUBACK, and a subscriber with a persistent session, both know only HAProxy's address. The device's node is
killed with SIGKILL: the device reconnects to the same address, lands on a live node and finishes its load; every
acknowledged message reaches the subscriber; HAProxy marks the dead node down. Figures printed with -s.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.broker_cluster import PrivateHAProxy, PrivateRabbitCluster, haproxy_available, rabbit_available
from tests.hub.test_durability import Ledger

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not rabbit_available(), reason="Debian's rabbitmq-server with its MQTT plugin is not installed"),
    pytest.mark.skipif(not haproxy_available(), reason="Debian's haproxy is not installed"),
]

RATE_PER_S = 200.0
BEFORE = 1000
TOTAL = 4000
# the dead node is refused at once (its sockets close) and HAProxy redispatches the reconnect to a live node; the
# bound fails a device that waits for its keepalive or for the health checks' `fall` count, not a speed goal
DEVICE_BACK_BOUND_S = 10.0


class Subscriber:
    """A persistent-session subscriber (MQTT 3.1.1, clean_session false) through the one address."""

    def __init__(self, host: str, port: int, site: str) -> None:
        self.seqs: set[int] = set()
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._topic = f"vaka/v1/{site}/#"
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sub-{site}", protocol=paho.MQTTv311, clean_session=False
        )
        self._client.reconnect_delay_set(0.1, 1)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        assert self._subscribed.wait(30), "the subscriber could not subscribe through HAProxy"

    def _on_connect(self, client: paho.Client, *_: object) -> None:
        client.subscribe(self._topic, qos=1)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.seqs.add(int(json.loads(msg.payload)["seq"]))

    def received(self) -> set[int]:
        with self._lock:
            return set(self.seqs)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateRabbitCluster]:
    with PrivateRabbitCluster(3) as nodes:
        yield nodes


def wait_servers(proxy: PrivateHAProxy, want: dict[str, str], timeout_s: float = 30.0) -> None:
    """Wait until HAProxy sees each named server in the wanted state (UP, DOWN)."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = {name: state for name, (state, _) in proxy.servers().items()}
        if all(states.get(name, "").startswith(state) for name, state in want.items()):
            return
        assert time.monotonic() < deadline, f"HAProxy sees {states}, not {want}"
        time.sleep(0.1)


def node_with_one_session(proxy: PrivateHAProxy, timeout_s: float = 10.0) -> str:
    """The server that carries the one connection there is (the device's)."""
    deadline = time.monotonic() + timeout_s
    while True:
        busy = [name for name, (_, sessions) in proxy.servers().items() if sessions > 0]
        if len(busy) == 1:
            return busy[0]
        assert time.monotonic() < deadline, f"sessions per node: {proxy.servers()}"
        time.sleep(0.05)


def test_a_device_behind_haproxy_outlives_its_broker_node_at_the_same_address(
    cluster: PrivateRabbitCluster, unique: str
) -> None:
    site = f"lb{unique}"
    with PrivateHAProxy(cluster.mqtt_ports) as proxy:
        wait_servers(proxy, dict.fromkeys(("rabbit1", "rabbit2", "rabbit3"), "UP"))
        device = Ledger(proxy, site, protocol=paho.MQTTv311)
        subscriber: Subscriber | None = None
        try:
            victim = node_with_one_session(proxy)
            subscriber = Subscriber(proxy.host, proxy.port, site)  # leastconn: on another node
            started = time.monotonic()
            load = threading.Thread(target=device.publish, args=(0, TOTAL, RATE_PER_S), name="device", daemon=True)
            load.start()
            deadline = time.monotonic() + 60
            while len(device.acked) < BEFORE:
                assert time.monotonic() < deadline, "the cluster did not take the load before the fault"
                time.sleep(0.05)

            killed_at = time.monotonic()
            cluster.kill(int(victim.removeprefix("rabbit")) - 1)
            deadline = killed_at + DEVICE_BACK_BOUND_S
            while not any(t > killed_at for t, _, _ in device.connections):
                assert time.monotonic() < deadline, f"the device did not reconnect: {device.connections}"
                time.sleep(0.02)
            back_s = next(t for t, _, _ in device.connections if t > killed_at) - killed_at
            wait_servers(proxy, {victim: "DOWN"})
            marked_down_s = time.monotonic() - killed_at

            load.join(timeout=120)
            assert not load.is_alive(), "the device never finished its load"
            device.settle(timeout_s=60)
            acked = device.acked
            assert len(acked) == TOTAL, f"{len(acked)} of {TOTAL} acknowledged; connections {device.connections}"
            assert {port for _, port, _ in device.connections} == {proxy.port}, "the device left the one address"
            deadline = time.monotonic() + 60
            while acked - subscriber.received() and time.monotonic() < deadline:
                time.sleep(0.1)
            missing = acked - subscriber.received()
            assert not missing, f"{len(missing)} acknowledged messages never reached the subscriber"
            figures = {
                "acked": len(acked),
                "device_reconnected_after_s": round(back_s, 3),
                "longest_puback_stall_s": round(device.longest_stall_s(started), 3),
                "haproxy_marked_node_down_after_s": round(marked_down_s, 2),
                "device_connections": len(device.connections),
                "servers_after": proxy.servers(),
            }
            print(f"\nHA HAProxy figures: {figures}")  # the numbers docs/ha.md records
        finally:
            device.close()
            if subscriber is not None:
                subscriber.close()
