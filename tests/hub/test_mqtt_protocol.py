"""A hub for a broker cluster (issue 30, docs/ha.md): MQTT 3.1.1 with a persistent session, and a list of nodes.

RabbitMQ 3.10, the replicated broker of the high-availability profile, speaks MQTT 3.1.1 only; the hub's MQTT 5
CONNECT is refused there. With `mqtt.protocol = "3.1.1"` the hub keeps its session by `clean_session` false, so
what devices publish while it is away waits for it. With `mqtt.hosts` a hub whose node died goes on with the next.
These run against real Mosquittos (which speak both); tests/hub/test_ha_cluster.py runs the RabbitMQ cluster.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from hub.intake.mqtt import Message, MqttConnection
from hub.metrics import Metrics
from hub.runtime.tasks import Spawner
from hub.settings import MqttSettings, Settings
from tests.mqtt_probe import V311, Probe
from tests.services import PrivateMosquitto

pytestmark = pytest.mark.timeout(60)

SENT = 50


class Stored:
    """What the connection handed on, acked at once as the store acks once it is durable; a way to wait for it."""

    def __init__(self) -> None:
        self.payloads: list[int] = []
        self._changed = asyncio.Event()

    def __call__(self, msg: Message) -> None:
        self.payloads.append(int(msg.payload))
        msg.ack()
        self._changed.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.payloads) < count:
                self._changed.clear()
                await self._changed.wait()


async def moved(conn: MqttConnection, generation: int, timeout_s: float = 10.0) -> None:
    """Wait until `conn` is up on a connection newer than `generation`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (conn.connected and conn.generation > generation):
        assert asyncio.get_running_loop().time() < deadline, "the connection did not come back"
        await asyncio.sleep(0.02)


def subscriber(settings: MqttSettings, metrics: Metrics, spawner: Spawner, topic: str) -> tuple[MqttConnection, Stored]:
    """The hub's events connection on `topic/#`, running under `spawner`, and what it stored."""
    store = Stored()
    conn = MqttConnection(
        settings,
        metrics,
        name="events",
        client_id=settings.client_id,
        subscriptions=[f"{topic}/#"],
        on_message=store,
        spawner=spawner,
    )
    spawner.spawn(conn.run_loop(), name="test.mqtt")
    return conn, store


async def test_with_mqtt_3_1_1_what_came_while_the_hub_was_away_waits_in_its_session(
    mqtt_settings: MqttSettings, metrics: Metrics, unique: str
) -> None:
    topic = f"vaka-test/{unique}/v311"
    with PrivateMosquitto() as broker:
        settings = mqtt_settings.model_copy(update={"port": broker.port, "protocol": "3.1.1", "reconnect_max_s": 0.5})
        async with Spawner(metrics) as first:
            conn, _ = subscriber(settings, metrics, first, topic)
            await conn.wait_connected(10)
        device = Probe(broker.port, client_id=f"dev-{unique}", protocol=V311)
        await asyncio.to_thread(device.connect)
        try:
            for i in range(SENT):  # each acknowledged by the broker: queued in the absent hub's session
                await asyncio.to_thread(device.publish, f"{topic}/d{i % 3}", str(i).encode())
        finally:
            await asyncio.to_thread(device.close)

        async with Spawner(metrics) as second:
            again, received = subscriber(settings, metrics, second, topic)
            await again.wait_connected(10)
            await received.until(SENT)
            assert again.session_present is True
        assert sorted(received.payloads) == list(range(SENT))
        # the broker saw an MQTT 3.1.1 client (p2) asking for a persistent session (c0), twice
        hub_logins = re.findall(rf"as {re.escape(settings.client_id)} \(p(\d), c(\d)", broker.log)
        assert hub_logins == [("2", "0"), ("2", "0")], broker.log[-1500:]


async def test_a_hub_whose_broker_node_died_goes_on_with_the_next_in_mqtt_hosts(
    mqtt_settings: MqttSettings, metrics: Metrics, spawner: Spawner, unique: str
) -> None:
    topic = f"vaka-test/{unique}/hosts"
    with PrivateMosquitto() as first, PrivateMosquitto() as second:
        settings = mqtt_settings.model_copy(
            update={
                "hosts": [f"127.0.0.1:{first.port}", f"localhost:{second.port}"],
                "port": 1,  # replaced by hosts: never tried
                "reconnect_max_s": 0.5,
            }
        )
        conn, received = subscriber(settings, metrics, spawner, topic)
        await conn.wait_connected(10)
        assert conn.address == ("127.0.0.1", first.port)
        generation = conn.generation
        first.kill()
        await moved(conn, generation)
        assert conn.address == ("localhost", second.port)
        device = Probe(second.port, client_id=f"dev-{unique}")
        await asyncio.to_thread(device.connect)
        try:
            await asyncio.to_thread(device.publish, f"{topic}/d0", b"7")
        finally:
            await asyncio.to_thread(device.close)
        await received.until(1)
        assert received.payloads == [7]


@pytest.mark.parametrize(
    ("update", "complaint"),
    [
        ({"hosts": ["broker-a"]}, "'broker-a' is not host:port"),
        ({"hosts": ["broker-a:1883", "broker-b:88830"]}, "'broker-b:88830' is not host:port"),
        ({"protocol": "3"}, "protocol"),
        (
            {"hosts": ["127.0.0.1:1883", "broker-b.example:1883"], "password": "secret"},
            "plain text to broker-b.example",
        ),
    ],
)
def test_a_bad_cluster_setting_is_refused_naming_it(update: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        Settings(mqtt=MqttSettings(**update))  # type: ignore[arg-type]


def test_the_single_broker_default_is_mqtt_5_on_one_address() -> None:
    mqtt = MqttSettings()
    assert mqtt.protocol == "5"
    assert mqtt.broker_addresses() == [("127.0.0.1", 1883)]
