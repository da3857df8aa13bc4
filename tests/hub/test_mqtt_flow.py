"""The hub's own flow control on a connection (hub/intake/mqtt.py): it never holds more unacknowledged messages than its
limit, whatever the broker sends, and loses none of what waits.

Mosquitto 2.0.11 was seen to send the telemetry connection far more than the Receive Maximum the hub asked for (65,535
unacknowledged under bench/e2e.py); the memory that took stopped the event loop for 100–330 ms per full garbage
collection. Here the broker's window (4,096) is far larger than the connection's limit, so only the hub's own limit
can hold the messages back, as it must when the broker's does not.
"""

from __future__ import annotations

import asyncio

from hub.intake.mqtt import Message, MqttConnection
from hub.metrics import Metrics
from hub.runtime.tasks import Spawner
from hub.settings import MqttSettings
from tests.conftest import MQTT_PORT
from tests.mqtt_probe import Probe
from tests.services import PrivateMosquitto

LIMIT = 20
SENT = 200


class Held:
    """What the connection handed on, and a way to wait for a count."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.changed = asyncio.Event()

    def __call__(self, msg: Message) -> None:
        self.messages.append(msg)
        self.changed.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()


def connection(
    settings: MqttSettings, metrics: Metrics, spawner: Spawner, topic: str, *, name: str, max_unacked: int | None = None
) -> tuple[MqttConnection, Held]:
    """A connection subscribed to `topic/#`, running under `spawner`, and what it hands on."""
    held = Held()
    conn = MqttConnection(
        settings,
        metrics,
        name=name,
        client_id=settings.client_id,
        subscriptions=[f"{topic}/#"],
        on_message=held,
        spawner=spawner,
        max_unacked=max_unacked,
    )
    spawner.spawn(conn.run_loop(), name="test.mqtt")
    return conn, held


async def publish(topic: str, count: int, devices: int) -> None:
    """`count` messages to the shared broker, the payload their number, acknowledged by the broker one by one."""
    await publish_to(MQTT_PORT, topic, count, devices)


async def test_a_connection_holds_no_more_than_its_limit_and_loses_nothing(
    mqtt_settings: MqttSettings, metrics: Metrics, spawner: Spawner, unique: str
) -> None:
    topic = f"vaka-test/{unique}/flow"
    conn, held = connection(mqtt_settings, metrics, spawner, topic, name="telemetry", max_unacked=LIMIT)
    await conn.wait_connected(10)
    await publish(topic, SENT, devices=7)  # every one acked by the broker: all 200 are there, its window is 4,096

    await held.until(LIMIT)  # the read that handed on the last one paused before the waiter woke
    assert not conn.reading
    assert len(held.messages) == LIMIT
    assert conn.unacked == LIMIT

    for msg in held.messages[: LIMIT // 2]:  # down to half: reading resumes, and stops again at the limit
        msg.ack()
    await held.until(LIMIT + LIMIT // 2)
    assert not conn.reading
    assert len(held.messages) == LIMIT + LIMIT // 2, "read past its limit of unacknowledged messages"
    assert conn.unacked == LIMIT

    acked = LIMIT // 2
    while acked < SENT:  # ack as the store would, in batches; everything that waited in the broker comes
        for msg in held.messages[acked:]:
            msg.ack()
        acked = len(held.messages)
        if acked < SENT:
            await held.until(acked + 1)
        assert conn.unacked <= LIMIT
    assert sorted(int(m.payload) for m in held.messages) == list(range(SENT))
    assert conn.unacked == 0
    assert metrics.mqtt_read_paused.labels("telemetry")._value.get() >= SENT // LIMIT


async def test_without_a_limit_a_connection_reads_whatever_the_broker_sends(
    mqtt_settings: MqttSettings, metrics: Metrics, spawner: Spawner, unique: str
) -> None:
    """The events connection: an alarm is decided as it is read, never held back for the store's acks."""
    topic = f"vaka-test/{unique}/events"
    conn, held = connection(mqtt_settings, metrics, spawner, topic, name="events")
    await conn.wait_connected(10)
    await publish(topic, LIMIT * 3, devices=1)
    await held.until(LIMIT * 3)
    assert conn.reading
    assert conn.unacked == LIMIT * 3


BACKLOG = 5000


async def test_a_session_backlog_larger_than_the_limit_is_all_delivered_after_a_gap(
    mqtt_settings: MqttSettings, metrics: Metrics, unique: str
) -> None:
    """Issue 22.1: with thousands queued for the session, the broker sends the backlog before the SUBACK.

    The connection must count as up at the CONNACK and ack what the store made durable; on the old main it waited for
    a SUBACK it never read (its own limit stopped the reading), timed out, reconnected, and got the same backlog again.
    """
    topic = f"vaka-test/{unique}/backlog"
    with PrivateMosquitto() as broker:
        settings = mqtt_settings.model_copy(update={"port": broker.port, "reconnect_max_s": 0.5})
        async with Spawner(metrics) as first:  # subscribe once: the broker keeps the session while the hub is away
            conn, _held = connection(settings, metrics, first, topic, name="telemetry", max_unacked=LIMIT * 5)
            await conn.wait_connected(10)
        await publish_to(broker.port, topic, BACKLOG, devices=11)  # all queued for the absent session

        acked: set[int] = set()
        all_acked = asyncio.Event()

        def store(msg: Message) -> None:  # acks as the store does once the rows are durable: here at once
            acked.add(int(msg.payload))
            msg.ack()
            if len(acked) == BACKLOG:
                all_acked.set()

        async with Spawner(metrics) as second:
            again = MqttConnection(
                settings,
                metrics,
                name="telemetry",
                client_id=settings.client_id,
                subscriptions=[f"{topic}/#"],
                on_message=store,
                spawner=second,
                max_unacked=LIMIT * 5,
            )
            second.spawn(again.run_loop(), name="test.mqtt")
            async with asyncio.timeout(60):
                await all_acked.wait()
            assert again.connected
            assert again.generation == 1, "the connection was dropped and made again while draining the backlog"
            assert again.session_present is True
        assert acked == set(range(BACKLOG))


async def publish_to(port: int, topic: str, count: int, devices: int) -> None:
    """`count` messages to a broker on `port`, each acknowledged by it before the next."""
    publisher = Probe(port, client_id=f"{topic.replace('/', '-')}-pub")
    await asyncio.to_thread(publisher.connect)
    try:
        for i in range(count):
            await asyncio.to_thread(publisher.publish, f"{topic}/d{i % devices}", str(i).encode())
    finally:
        await asyncio.to_thread(publisher.close)
