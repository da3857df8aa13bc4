"""The shipped broker configuration with generated credentials, on Debian's real Mosquitto: who may do what.

One private broker per module runs deploy/mosquitto/mosquitto.conf verbatim (ports and file paths aside) with the
password file and ACL `vaka mqtt credentials` wrote for an inventory, and certificates made here. Every case is
tried over MQTT 5 and 3.1.1. A forbidden publish is refused (MQTT 5: PUBACK 0x87; 3.1.1 has no way to say so and
drops it), and the proof is what the hub receives: a message the device is allowed to send goes right after the
forbidden one, and the hub sees only that one. Mosquitto 2.0's ACL file checks reads per message rather than at
SUBSCRIBE, so a subscription to `#` is granted and then delivers nothing the account may not read: the tests assert
what is delivered, and accept a SUBACK refusal should a later broker give one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from hub.app import Hub
from hub.devices.broker_accounts import read_secrets, write_credentials
from hub.intake.mqtt import MqttConnection, broker_tls_context
from hub.metrics import Metrics
from hub.model import Inventory
from hub.runtime.tasks import Spawner
from hub.settings import MqttSettings, Settings
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from hub.vendor.discover import fetch_retained
from tests.conftest import PG_DSN
from tests.mqtt_probe import V5, V311, Probe
from tests.services import PrivateMosquitto, free_port
from tests.tls_certs import TestPki

NOT_AUTHORIZED = 0x87
PROTOCOLS = [pytest.param(V5, id="mqtt5"), pytest.param(V311, id="mqtt311")]

INVENTORY = {
    "sites": [
        {
            "id": "s1",
            "devices": [
                {"id": "s1-radar", "kind": "fall_radar", "safety": True},
                {"id": "s1-bed", "kind": "bed_sensor"},
                {"id": "s1-zigbee-door", "kind": "door", "vendor": "zigbee2mqtt"},
            ],
            "gateways": [{"id": "s1-z2m", "topics": ["zigbee2mqtt/#"]}],
        },
        {
            "id": "s2",
            "devices": [{"id": "s2-radar", "kind": "fall_radar"}],
            "gateways": [{"id": "s2-frigate", "topics": ["frigate/#"]}],
        },
    ],
    "integrations": [{"id": "dect-s1", "sites": ["s1"]}],
}


@dataclass
class SecuredBroker:
    """The running broker, its accounts' passwords and the certificates."""

    broker: PrivateMosquitto
    secrets: dict[str, str]
    pki: TestPki
    expired_port: int
    wrong_host_port: int
    client_cert_port: int

    def probe(
        self, user: str | None, protocol: MQTTProtocolVersion = V5, client_id: str = "", password: str | None = None
    ) -> Probe:
        """A plain-TCP client logged in as `user` with its real password (unless `password` is given)."""
        if password is None and user is not None:
            password = self.secrets.get(user, "no-such-account")
        return Probe(self.broker.port, user=user, password=password, client_id=client_id, protocol=protocol)

    def connected(self, user: str, protocol: MQTTProtocolVersion = V5, client_id: str = "") -> Probe:
        """A client of `user`, connected (the test fails if the broker refuses it)."""
        probe = self.probe(user, protocol, client_id)
        rc = probe.connect()
        assert not rc.is_failure, f"{user} refused: {rc}"
        return probe


@pytest.fixture(scope="module")
def secured() -> Iterator[SecuredBroker]:
    # not under pytest's tmp_path: the broker drops root and must reach these files as its own user
    auth_dir = Path(tempfile.mkdtemp(prefix="vaka-broker-auth-"))
    auth_dir.chmod(0o755)
    write_credentials(Inventory.model_validate(INVENTORY), auth_dir)
    pki = TestPki(auth_dir / "tls")
    pki.server("server", ["127.0.0.1", "localhost"])
    expired_cert, expired_key = pki.server("expired", ["127.0.0.1", "localhost"], expired=True)
    wrong_cert, wrong_key = pki.server("wrong-host", ["broker.example.org"])
    good_cert, good_key = auth_dir / "tls" / "server.crt", auth_dir / "tls" / "server.key"
    expired_port, wrong_host_port, client_cert_port = free_port(), free_port(), free_port()
    extra = "\n".join(
        f"listener {port} 127.0.0.1\nuse_username_as_clientid true\ncafile {pki.ca_file}\ncertfile {cert}\n"
        f"keyfile {key}\n" + ("require_certificate true\n" if port == client_cert_port else "")
        for port, cert, key in (
            (expired_port, expired_cert, expired_key),
            (wrong_host_port, wrong_cert, wrong_key),
            (client_cert_port, good_cert, good_key),
        )
    )
    with PrivateMosquitto(auth_dir=auth_dir, extra_conf=extra) as broker:
        secrets = read_secrets(auth_dir / "credentials.secret")
        yield SecuredBroker(broker, secrets, pki, expired_port, wrong_host_port, client_cert_port)
    shutil.rmtree(auth_dir, ignore_errors=True)


_sentinels = itertools.count()


def assert_hub_gets_only_the_allowed(hub: Probe, allowed: Probe, allowed_topic: str) -> None:
    """Publish a message `allowed` may send; the hub must see it and nothing before it (all forbidden ones)."""
    marker = f"sentinel-{next(_sentinels)}".encode()
    assert not allowed.publish(allowed_topic, marker).is_failure
    seen = hub.drain_until(allowed_topic)
    assert [(m.topic, m.payload) for m in seen] == [(allowed_topic, marker)]


# --- connecting ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("user", "password", "client_id"),
    [
        pytest.param(None, None, "intruder", id="anonymous"),
        pytest.param(None, None, "vaka-hub", id="anonymous-with-hub-client-id"),
        pytest.param("vaka-hub", "guessed", "vaka-hub", id="hub-with-wrong-password"),
        pytest.param("s1-radar", "guessed", "", id="device-with-wrong-password"),
        pytest.param("nobody", "guessed", "", id="unknown-user"),
        pytest.param("#", "guessed", "", id="user-named-hash"),
        pytest.param("+", "guessed", "", id="user-named-plus"),
        pytest.param("vaka/v1/#", "guessed", "", id="user-named-topic-wildcard"),
        pytest.param("%u", "guessed", "", id="user-named-acl-pattern"),
    ],
)
def test_the_broker_refuses_clients_without_a_valid_account(
    secured: SecuredBroker, protocol: MQTTProtocolVersion, user: str | None, password: str | None, client_id: str
) -> None:
    probe = secured.probe(user, protocol, client_id, password=password or "")
    if user is None:
        probe = Probe(secured.broker.port, client_id=client_id, protocol=protocol)
    try:
        rc = probe.connect()
    finally:
        probe.close()
    assert rc.is_failure
    # MQTT 5: 0x87 Not authorized; 3.1.1: return code 5 (paho reports it with the same name)
    assert str(rc) == "Not authorized"
    if protocol == V5:
        assert rc.value == NOT_AUTHORIZED


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_anonymous_client_cannot_cancel_a_fall_forge_an_alarm_state_or_read_everything(
    secured: SecuredBroker, protocol: MQTTProtocolVersion
) -> None:
    """The finding as reproduced on main: anonymous `fall_cancelled`, forged `resolved`, `#`: none gets in."""
    hub = secured.connected("vaka-hub", protocol, client_id="vaka-hub")
    device = secured.connected("s1-radar", protocol)
    try:
        assert hub.subscribe("vaka/v1/#").value == 1
        intruder = Probe(secured.broker.port, client_id="anon", protocol=protocol)
        assert intruder.connect().is_failure
        intruder.close()
        assert_hub_gets_only_the_allowed(hub, device, "vaka/v1/s1/s1-radar/event")
    finally:
        hub.close()
        device.close()


# --- what a device may publish ---------------------------------------------------------------------------------------


FALL_CANCELLED = json.dumps({"kind": "fall_cancelled", "ts": "2026-11-29T02:14:00Z"}).encode()
RESOLVED = json.dumps({"state": "resolved", "outcome": "false_alarm"}).encode()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        pytest.param("vaka/v1/s1/s1-radar/event", FALL_CANCELLED, id="another-device-cancels-a-fall"),
        pytest.param("vaka/v1/s2/s2-radar/event", FALL_CANCELLED, id="device-of-another-site"),
        pytest.param("vaka/v1/s2/s1-bed/event", FALL_CANCELLED, id="own-id-under-another-site"),
        pytest.param("vaka/v1/s1/alarms/a-1", RESOLVED, id="forged-alarm-state"),
        pytest.param("vaka/v1/s1/hub/status", b'{"state":"offline"}', id="forged-hub-status"),
        pytest.param("vaka/v1/s1/checkins/c-1", b"{}", id="forged-check-in"),
        pytest.param("vaka/v1/_sim/clock", b"{}", id="simulation-clock"),
        pytest.param("zigbee2mqtt/door", b'{"contact":false}', id="vendor-topic"),
    ],
)
def test_a_device_publishes_only_under_its_own_topics(
    secured: SecuredBroker, protocol: MQTTProtocolVersion, topic: str, payload: bytes
) -> None:
    hub = secured.connected("vaka-hub", V5, client_id="vaka-hub")
    device = secured.connected("s1-bed", protocol)
    try:
        for hub_filter in ("vaka/v1/#", "zigbee2mqtt/#"):
            assert hub.subscribe(hub_filter).value == 1
        rc = device.publish(topic, payload)
        if protocol == V5:
            assert rc.value == NOT_AUTHORIZED
        assert_hub_gets_only_the_allowed(hub, device, "vaka/v1/s1/s1-bed/event")
    finally:
        hub.close()
        device.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_gateways_publish_only_their_own_vendor_topics(secured: SecuredBroker, protocol: MQTTProtocolVersion) -> None:
    hub = secured.connected("vaka-hub", V5, client_id="vaka-hub")
    gateway = secured.connected("s1-z2m", protocol)
    try:
        for hub_filter in ("vaka/v1/#", "zigbee2mqtt/#", "frigate/#"):
            assert hub.subscribe(hub_filter).value == 1
        for topic in ("frigate/events", "vaka/v1/s1/s1-radar/event", "vaka/v1/s1/alarms/a-1"):
            rc = gateway.publish(topic, FALL_CANCELLED)
            if protocol == V5:
                assert rc.value == NOT_AUTHORIZED, topic
        assert_hub_gets_only_the_allowed(hub, gateway, "zigbee2mqtt/hall-door")
    finally:
        hub.close()
        gateway.close()


# --- what each may read ----------------------------------------------------------------------------------------------


def _subscribe_or_refused(probe: Probe, topic_filter: str) -> None:
    rc = probe.subscribe(topic_filter)
    # Mosquitto 2.0's ACL file grants the SUBSCRIBE and checks each message; a refusal would be as good
    assert rc.value in (1, NOT_AUTHORIZED, 0x80), rc


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_device_reads_nothing_but_its_own_topics(secured: SecuredBroker, protocol: MQTTProtocolVersion) -> None:
    hub = secured.connected("vaka-hub", V5, client_id="vaka-hub")
    other = secured.connected("s2-radar", V5)
    snoop = secured.connected("s1-bed", protocol)
    try:
        for topic_filter in ("#", "$SYS/#", "vaka/v1/#", "vaka/v1/+/alarms/#", "vaka/v1/s2/#", "zigbee2mqtt/#"):
            _subscribe_or_refused(snoop, topic_filter)
        # what others send while it listens: another device's event, an alarm state, hub status (retained too)
        assert not other.publish("vaka/v1/s2/s2-radar/event", b'{"kind":"fall_detected"}').is_failure
        assert not hub.publish("vaka/v1/s1/alarms/a-9", b'{"state":"raised"}').is_failure
        assert not hub.publish("vaka/v1/s1/hub/status", b'{"state":"online"}', retain=True).is_failure
        # then something of its own, which it may read: it must be the first thing it gets ($SYS retained included)
        assert_hub_gets_only_the_allowed(snoop, snoop, "vaka/v1/s1/s1-bed/status")
    finally:
        hub.publish("vaka/v1/s1/hub/status", b"", retain=True)
        for probe in (hub, other, snoop):
            probe.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_integration_reads_only_the_alarm_states_of_its_sites(
    secured: SecuredBroker, protocol: MQTTProtocolVersion
) -> None:
    hub = secured.connected("vaka-hub", V5, client_id="vaka-hub")
    device = secured.connected("s1-radar", V5)
    integration = secured.connected("dect-s1", protocol)
    try:
        for topic_filter in ("#", "$SYS/#", "vaka/v1/+/alarms/#"):
            _subscribe_or_refused(integration, topic_filter)
        assert not device.publish("vaka/v1/s1/s1-radar/event", b'{"kind":"fall_detected"}').is_failure
        assert not hub.publish("vaka/v1/s2/alarms/b-1", b'{"state":"raised"}').is_failure
        # and it cannot forge a state for others to believe
        rc = integration.publish("vaka/v1/s1/alarms/a-1", RESOLVED)
        if protocol == V5:
            assert rc.value == NOT_AUTHORIZED
        assert not hub.publish("vaka/v1/s1/alarms/a-1", b'{"state":"raised"}').is_failure
        seen = integration.drain_until("vaka/v1/s1/alarms/a-1")
        assert [(m.topic, m.payload) for m in seen] == [("vaka/v1/s1/alarms/a-1", b'{"state":"raised"}')]
    finally:
        for probe in (hub, device, integration):
            probe.close()


# --- the hub's client ids --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("stolen_id", ["vaka-hub", "vaka-hub-telemetry"])
def test_nobody_else_can_take_the_hubs_client_id(
    secured: SecuredBroker, protocol: MQTTProtocolVersion, stolen_id: str
) -> None:
    """On main an anonymous client with the hub's id kicked the hub off and took its queued events."""
    hub = secured.connected(stolen_id, V5, client_id=stolen_id)
    device = secured.connected("s1-radar", V5)
    impostor = secured.connected("s1-bed", protocol, client_id=stolen_id)  # its id becomes its user name
    try:
        assert hub.subscribe("vaka/v1/#").value == 1
        _subscribe_or_refused(impostor, "vaka/v1/#")
        assert_hub_gets_only_the_allowed(hub, device, "vaka/v1/s1/s1-radar/event")
        assert not hub.disconnected.is_set()
        assert impostor.messages.empty()
    finally:
        for probe in (hub, device, impostor):
            probe.close()


# --- TLS -------------------------------------------------------------------------------------------------------------


def _tls_probe(secured: SecuredBroker, port: int, ca: Path, host: str = "127.0.0.1") -> Probe:
    return Probe(port, user="s1-radar", password=secured.secrets["s1-radar"], ca_file=ca, host=host, protocol=V5)


def test_a_device_connects_over_tls_with_the_right_ca(secured: SecuredBroker) -> None:
    probe = _tls_probe(secured, secured.broker.tls_port, secured.pki.ca_file)
    try:
        assert not probe.connect().is_failure
        assert not probe.publish("vaka/v1/s1/s1-radar/event", b"{}").is_failure
    finally:
        probe.close()


@pytest.mark.parametrize(
    "case",
    ["wrong-ca", "expired", "wrong-host"],
)
def test_tls_refuses_a_broker_it_cannot_trust(secured: SecuredBroker, case: str) -> None:
    port, ca = {
        "wrong-ca": (secured.broker.tls_port, secured.pki.other_ca_file),
        "expired": (secured.expired_port, secured.pki.ca_file),
        "wrong-host": (secured.wrong_host_port, secured.pki.ca_file),
    }[case]
    probe = _tls_probe(secured, port, ca)
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        probe.connect()
    # the broker sends its CA along with its certificate: to a client that trusts another CA it is a stranger
    expected = {
        "wrong-ca": "self-signed certificate in certificate chain",
        "expired": "expired",
        "wrong-host": "mismatch",
    }
    assert expected[case] in refused.value.verify_message


@pytest.mark.parametrize("with_certificate", [True, False])
def test_a_broker_that_demands_a_client_certificate_gets_the_hubs(
    secured: SecuredBroker, with_certificate: bool
) -> None:
    """`mqtt.cert_file` / `mqtt.key_file` reach the TLS handshake; without them such a broker lets nobody in."""
    auth_dir = secured.broker.auth_dir
    assert auth_dir is not None
    cert, key = secured.pki.client("vaka-hub")
    settings = MqttSettings(
        host="localhost",
        port=secured.client_cert_port,
        client_id="vaka-hub",
        tls=True,
        ca_file=secured.pki.ca_file,
        cert_file=cert if with_certificate else None,
        key_file=key if with_certificate else None,
        password_file=auth_dir / "vaka-hub.password",
    )
    password = settings.broker_password()
    probe = Probe(
        settings.port, user="vaka-hub", password=password, host="localhost", tls_context=broker_tls_context(settings)
    )
    try:
        if with_certificate:
            assert not probe.connect().is_failure
        else:
            # TLS 1.3: the broker's refusal may arrive as an alert during the handshake or as a closed connection
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                probe.connect()
    finally:
        probe.close()


async def test_each_node_of_mqtt_hosts_is_checked_against_its_own_name(secured: SecuredBroker) -> None:
    """A cluster's nodes each have their own name: the certificate of the node being tried must name that node (not
    `mqtt.host`, which `hosts` replaces); a node whose certificate does not is refused, and the next one is tried."""
    auth_dir = secured.broker.auth_dir
    assert auth_dir is not None
    settings = MqttSettings(
        host="broker.example.org",  # what the wrong node's certificate names: used, it would let that node in
        hosts=[f"localhost:{secured.wrong_host_port}", f"127.0.0.1:{secured.broker.tls_port}"],
        client_id="vaka-hub",
        tls=True,
        ca_file=secured.pki.ca_file,
        password_file=auth_dir / "vaka-hub.password",
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
    )
    metrics = Metrics()
    async with Spawner(metrics) as spawner:
        conn = MqttConnection(
            settings, metrics, name="events", client_id="vaka-hub", subscriptions=[], on_message=print, spawner=spawner
        )
        spawner.spawn(conn.run_loop(), name="test.mqtt")
        await conn.wait_connected(10)
        assert conn.address == ("127.0.0.1", secured.broker.tls_port)


def test_plain_mqtt_to_the_tls_port_gets_no_session(secured: SecuredBroker) -> None:
    probe = Probe(secured.broker.tls_port, user="s1-radar", password=secured.secrets["s1-radar"])
    try:
        assert probe.connect_or_closed() is None
    finally:
        probe.close()


# --- the hub itself, over TLS ----------------------------------------------------------------------------------------


async def test_the_hub_over_tls_raises_a_fall_that_integrations_see_and_no_forgery_arrives(
    secured: SecuredBroker, settings: Settings
) -> None:
    """End to end on the shipped configuration: the hub logs in over TLS (password from a file, host name checked),
    a fall raises an alarm the integration reads, and the finding's forgeries reach neither the hub nor it."""
    conn = await asyncpg.connect(PG_DSN)
    try:
        await migrate(conn, settings.db)
        await load_inventory(conn, Inventory.model_validate(INVENTORY))
    finally:
        await conn.close()
    auth_dir = secured.broker.auth_dir
    assert auth_dir is not None
    mqtt = MqttSettings(
        host="localhost",
        port=secured.broker.tls_port,
        client_id="vaka-hub",
        tls=True,
        ca_file=secured.pki.ca_file,
        password_file=auth_dir / "vaka-hub.password",
        reconnect_max_s=0.5,
    )
    metrics = Metrics()
    integration = secured.connected("dect-s1", V5)
    radar = _tls_probe(secured, secured.broker.tls_port, secured.pki.ca_file, host="localhost")
    bed = secured.connected("s1-bed", V5)
    try:
        async with Hub(settings.model_copy(update={"mqtt": mqtt}), metrics) as hub:
            await hub.wait_connected()
            assert await asyncio.to_thread(integration.subscribe, "vaka/v1/s1/alarms/#")
            assert not (await asyncio.to_thread(radar.connect)).is_failure
            ts = datetime.now(UTC).isoformat()
            # another device's credentials: cancel the fall before it happens, forge a resolved state
            cancel = json.dumps({"ts": ts, "kind": "fall_cancelled", "seq": 1}).encode()
            rc = await asyncio.to_thread(bed.publish, "vaka/v1/s1/s1-radar/event", cancel)
            assert rc.value == NOT_AUTHORIZED
            rc = await asyncio.to_thread(bed.publish, "vaka/v1/s1/alarms/forged", RESOLVED)
            assert rc.value == NOT_AUTHORIZED
            fall = json.dumps({"ts": ts, "kind": "fall_detected", "ref": "f-1", "seq": 2}).encode()
            assert not (await asyncio.to_thread(radar.publish, "vaka/v1/s1/s1-radar/event", fall)).is_failure
            first = await asyncio.to_thread(integration.messages.get, True, 10.0)
            state = json.loads(first.payload)
            assert (state["device_id"], state["category"], state["state"]) == ("s1-radar", "care", "raised")
            assert state["rule_id"].startswith("fall")
            assert first.topic == f"vaka/v1/s1/alarms/{state['id']}"
            assert hub.events_conn.connected
        # the hub flushed what it stored on the way out: the fall, and neither forgery
        conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": settings.db.db_schema})
        try:
            rows = await conn.fetch("SELECT device_id, kind FROM events")
        finally:
            await conn.close()
        assert [tuple(r) for r in rows] == [("s1-radar", "fall_detected")]
    finally:
        for probe in (integration, radar, bed):
            await asyncio.to_thread(probe.close)
        # the hub's retained status of each site (its status accounts could write it): not left to the next tests
        hub_probe = await asyncio.to_thread(secured.connected, "vaka-hub", V5, "vaka-hub")
        for site in ("s1", "s2"):
            await asyncio.to_thread(hub_probe.publish, f"vaka/v1/{site}/hub/status", b"", retain=True)
        await asyncio.to_thread(hub_probe.close)


def test_the_hubs_tools_read_over_tls_without_taking_the_hubs_session(secured: SecuredBroker) -> None:
    """`vaka site discover` logs in as the hub's read-only tools account: it reads, cannot publish, and the hub
    (same password) stays connected with its session."""
    auth_dir = secured.broker.auth_dir
    assert auth_dir is not None
    hub = secured.connected("vaka-hub", V5, client_id="vaka-hub")
    gateway = secured.connected("s1-z2m", V5)
    tools = secured.connected("vaka-hub-tools", V5)
    radar = secured.connected("s1-radar", V5)
    try:
        assert hub.subscribe("vaka/v1/#").value == 1
        devices = b'[{"ieee_address": "0x1", "type": "EndDevice"}]'
        assert not gateway.publish("zigbee2mqtt/bridge/devices", devices, retain=True).is_failure
        settings = MqttSettings(
            host="localhost",
            port=secured.broker.tls_port,
            client_id="vaka-hub",
            tls=True,
            ca_file=secured.pki.ca_file,
            password_file=auth_dir / "vaka-hub.password",
        )
        assert fetch_retained(settings, "zigbee2mqtt/bridge/devices", timeout_s=5.0) == devices
        assert tools.publish("vaka/v1/s1/alarms/a-1", RESOLVED).value == NOT_AUTHORIZED
        assert_hub_gets_only_the_allowed(hub, radar, "vaka/v1/s1/s1-radar/event")
        assert not hub.disconnected.is_set()
    finally:
        gateway.publish("zigbee2mqtt/bridge/devices", b"", retain=True)
        for probe in (hub, gateway, tools, radar):
            probe.close()


def test_the_hub_will_not_send_its_password_in_plain_text_across_the_network() -> None:
    with pytest.raises(ValueError, match=r"mqtt\.tls = true"):
        MqttSettings(host="broker.care.example", password="night")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="allow_plaintext_password"):
        MqttSettings(host="10.0.0.5", password="night")  # type: ignore[arg-type]
    MqttSettings(host="127.0.0.1", password="night")  # type: ignore[arg-type]  # loopback: never leaves the machine
    MqttSettings(host="10.0.0.5", password="night", allow_plaintext_password=True)  # type: ignore[arg-type]


def test_the_monitor_reads_the_brokers_statistics_and_nothing_else(secured: SecuredBroker) -> None:
    # as the stack's mosquitto-exporter connects: plain MQTT over the broker's loopback listener, its own client id
    hub = secured.connected("vaka-hub", V5, client_id="vaka-hub")
    device = secured.connected("s1-bed", V5)
    monitor = secured.connected("vaka-hub-monitor", V311, client_id="vaka-hub-monitor")
    try:
        assert not hub.subscribe("vaka/v1/#").is_failure
        _subscribe_or_refused(monitor, "vaka/v1/#")
        assert not monitor.subscribe("$SYS/broker/clients/connected").is_failure
        # the broker's count of clients (it publishes $SYS every sys_interval): these three at least
        deadline = time.monotonic() + 30
        connected = 0
        while connected < 3 and time.monotonic() < deadline:
            connected = int(monitor.drain_until("$SYS/broker/clients/connected", timeout_s=30)[-1].payload)
        assert connected >= 3
        # it may not publish (a forged alarm state): the hub sees only the device's message after it
        monitor.publish("vaka/v1/s1/alarms/a-2", b'{"state":"closed"}')
        assert_hub_gets_only_the_allowed(hub, device, "vaka/v1/s1/s1-bed/status")
        # and it read nothing of what devices and the hub sent meanwhile
        time.sleep(1)  # a message that should not arrive has no event to wait for
        while not monitor.messages.empty():
            topic = monitor.messages.get_nowait().topic
            assert topic.startswith("$SYS/"), f"the monitor read {topic}"
    finally:
        for probe in (hub, device, monitor):
            probe.close()
