"""The hub that owns a site and its broker node killed together, on the 3-node RabbitMQ cluster (issue 30, case d).

Slice 1's cluster (tests/broker_cluster.py, MQTT 3.1.1, quorum queues) under slice 2's two hubs (tests/hub/
test_ha_takeover.py): hub a owns site 1 and is connected to node 0, hub b to node 1, the devices to node 2. Under a
steady load with a ledger of every PUBACK, hub a and node 0 are killed with SIGKILL at once, and an alarm button is
pressed. Afterwards: every acknowledged event stored once, each press one alarm under one id, the alarm open before
the kill escalating on hub b. The figures are printed (run with -s) and recorded in docs/ha.md.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from tests.broker_cluster import PrivateRabbitCluster, rabbit_available
from tests.hub.test_durability import Ledger, assert_ledger_stored_once
from tests.hub.test_ha_cluster import Node, hub_node
from tests.hub.test_ha_takeover import (
    BEFORE,
    RATE_PER_S,
    TAKEOVER_BOUND_S,
    TOTAL,
    Buttons,
    button_alarms,
    escalations,
    ha_hub,
    owner,
    prepare,
    wait_for,
    wait_logged,
)
from tests.services import PrivatePostgres

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not rabbit_available(), reason="Debian's rabbitmq-server with its MQTT plugin is not installed"),
]


def test_the_hub_owning_a_site_and_its_broker_node_killed_together_lose_nothing(tmp_path: Path, unique: str) -> None:
    s1, s2 = f"one{unique}", f"two{unique}"
    with PrivateRabbitCluster(3) as cluster, PrivatePostgres() as pg:
        ports = cluster.mqtt_ports
        asyncio.run(prepare(pg.dsn, [s1, s2]))
        a = ha_hub(pg, Node("127.0.0.1", ports[0]), tmp_path, "a", s1)
        b = ha_hub(pg, Node("127.0.0.1", ports[1]), tmp_path, "b", s2)
        for hub, order in ((a, [0, 1, 2]), (b, [1, 2, 0])):
            hub.env.update(
                {
                    "VAKA_MQTT__PROTOCOL": "3.1.1",
                    "VAKA_MQTT__HOSTS": json.dumps([f"127.0.0.1:{ports[i]}" for i in order]),
                    "VAKA_MQTT__RECONNECT_MAX_S": "2.0",
                }
            )
        devices = Node("127.0.0.1", ports[2])
        buttons: Buttons | None = None
        ledger: Ledger | None = None
        try:
            starting = threading.Thread(target=b.start, name="start-b")
            starting.start()
            a.start()
            starting.join()
            wait_for("hub a holds site 1", lambda: owner(pg, s1) == ("a", 1), 60)
            wait_for("hub b holds site 2", lambda: owner(pg, s2) == ("b", 1), 60)
            a.wait_status("ready", timeout_s=60)
            b.wait_status("ready", timeout_s=60)
            buttons = Buttons(devices, s1, protocol=paho.MQTTv311)
            ledger = Ledger(devices, s1, protocol=paho.MQTTv311, failover_ports=[ports[1], ports[0]])
            buttons.press(0)
            wait_for("the first press is an alarm", lambda: len(button_alarms(pg, s1)) == 1, 60)
            first_id = next(iter(button_alarms(pg, s1).values()))[0]
            wait_for("hub a escalates it", lambda: len(escalations(pg, first_id)) >= 2, 30)

            load_started = time.monotonic()
            load = threading.Thread(target=ledger.publish, args=(0, TOTAL, RATE_PER_S), name="ledger", daemon=True)
            load.start()
            wait_for("load acknowledged before the fault", lambda: len(ledger.acked) >= BEFORE, 60)  # type: ignore[union-attr]
            node = hub_node(a, cluster)
            assert node != 2, "hub a is on the devices' node"
            killed_at = datetime.now(UTC)
            a.kill()
            cluster.kill(node)
            during = buttons.press(1)
            wait_for("hub b holds site 1", lambda: owner(pg, s1) == ("b", 2), 60)
            taken = wait_logged(b, rf"ha: site taken site={s1} ", killed_at)
            raised_during = wait_logged(b, rf"ALARM id=\S+ state=raised .* site={s1} rule=alarm_button", during)
            after = buttons.press(2)
            wait_for("the press after the takeover is an alarm", lambda: len(button_alarms(pg, s1)) == 3, 60)
            wait_for(
                "the first alarm escalates on hub b",
                lambda: sum(1 for at, fence in escalations(pg, first_id) if at > killed_at and fence == 2) >= 2,
                60,
            )
            load.join(timeout=180)
            assert not load.is_alive(), "the publisher never finished its load"
            ledger.settle(timeout_s=60)
            assert len(ledger.acked) == TOTAL, f"{len(ledger.acked)} of {TOTAL}; connections {ledger.connections}"
            assert_ledger_stored_once(pg, ledger, timeout_s=120)  # 0 acknowledged events lost, none stored twice
            alarms = button_alarms(pg, s1)
            assert sorted(len(ids) for ids in alarms.values()) == [1, 1, 1], f"each press one alarm: {alarms}"
            reconnects = b.metric("vaka_mqtt_reconnects_total", 'connection="events"')
            print(
                f"\nHA cluster figures (hub a and node {node} killed together): kill -> site taken"
                f" {(taken - killed_at).total_seconds():.2f} s; press during the gap -> alarm"
                f" {(raised_during - during).total_seconds():.2f} s; acknowledged {len(ledger.acked)}/{TOTAL}, lost 0;"
                f" devices' longest wait for a PUBACK {ledger.longest_stall_s(load_started):.2f} s;"
                f" hub b's events connection reconnects {reconnects}"
                f" (after {after:%H:%M:%S})"
            )
            assert (taken - killed_at).total_seconds() < TAKEOVER_BOUND_S
        finally:
            for device in (ledger, buttons):
                if device is not None:
                    device.close()
            for hub in (a, b):
                hub.stop()
