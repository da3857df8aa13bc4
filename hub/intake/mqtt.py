"""MQTT on paho-mqtt, driven by the asyncio loop itself (add_reader/add_writer, no network thread).

MQTT 5 by default (Mosquitto); MQTT 3.1.1 with `mqtt.protocol = "3.1.1"` for a broker that speaks no MQTT 5 (RabbitMQ
3.10's plugin, the cluster of docs/ha.md). Under 3.1.1 the session persists by `clean_session` false, and there is no
session expiry (the broker's policy keeps the session), no Receive Maximum (the broker's own prefetch limit and the
hub's `max_unacked` below hold the flow) and no noLocal (none of the hub's own publishes matches what it subscribes to).
With `mqtt.hosts` each connection attempt goes to the next node of the list, so a hub whose node died is on
another one after its first reconnect delay; the session (a replicated queue in the cluster) is found there.

What is acked when: messages are received with `manual_ack`; `MqttConnection.ack` sends the PUBACK, and ingest calls
it only once the message's events are durable (committed or spooled). A message whose connection dropped before
its ack is not acked on the new connection (its packet id belongs to the old one): the broker re-delivers it, and
the store's unique key makes the second copy harmless.

The session persists: fixed client id, clean_start false, a session expiry. A connection is up, and acks flow, from
the CONNACK on: with a session present the broker sends what it queued for us before it answers the SUBSCRIBE, and a
connection that waited for the SUBACK before acking stopped at its own limit of unacknowledged messages, never read the
SUBACK, reconnected and was sent the same backlog again, forever (issue 22.1; tests/hub/test_backlog.py). When the broker answers CONNACK without
a session, anything queued for us while we were away is gone: that is counted and logged as a possible loss window.

Flow control is also the hub's own, not only the broker's. The hub asks for a Receive Maximum, but Mosquitto 2.0.11
was seen to exceed it when acks come back out of order (they do: batches commit concurrently): under
`bench/e2e.py` the telemetry connection held 65,535 unacknowledged messages, some 470,000 objects in memory, and each
full garbage collection of them stopped the event loop, alarms included, for 100–330 ms. A connection given
`max_unacked` (the telemetry one) therefore stops reading its socket once it holds that many unacknowledged messages
and reads again when acks bring it down to half: the backlog waits in the broker, which is made to keep it. A pause
longer than the keepalive (the store takes nothing, not even into the spool) ends in a reconnect, and the broker
delivers again what was not acknowledged. The events connection has no such limit: an alarm is decided as it is
read and never waits for the store.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from hub.intake import paho_speed
from hub.metrics import Metrics
from hub.model import VakaError
from hub.runtime.backoff import Backoff
from hub.runtime.tasks import Spawner
from hub.settings import MqttSettings

logger = logging.getLogger(__name__)

_MISC_INTERVAL_S = 1.0
_ACK_SAMPLE_EVERY = 8
_PACKETS_PER_READ = 64  # then yield to the loop, so one busy connection cannot starve the other


class MqttError(VakaError):
    """The broker could not be used."""


class _BrokerTlsContext(ssl.SSLContext):
    """A TLS context that checks the broker's certificate against the configured host name.

    The hub resolves the broker's name itself (off the loop) and hands paho the address; paho would then check the
    certificate against that address. This context always names `server_name` instead (for SNI and verification).
    """

    server_name: str = ""

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def broker_tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """TLS 1.2+ to the broker: its certificate verified against `ca_file` (or the system's CAs) and, unless told
    otherwise, against `host`; the client certificate if one is set."""
    context = _BrokerTlsContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = settings.host
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=str(settings.ca_file))
    else:
        context.load_default_certs()
    if settings.cert_file is not None:
        context.load_cert_chain(str(settings.cert_file), str(settings.key_file) if settings.key_file else None)
    context.check_hostname = settings.tls_verify_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass(slots=True)
class Message:
    """One received PUBLISH, with what is needed to ack it later on the connection it came on."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    received_at: datetime
    received_mono: float
    connection: MqttConnection
    generation: int

    def ack(self) -> None:
        """Send the PUBACK now (call only once the message's events are durable)."""
        self.connection.ack(self)


TOOL_LOGINS = ("tools", "tools-snapshot")  # `vaka mqtt credentials` makes one read-only account for each


def configure_tool_client(client: paho.Client, settings: MqttSettings, login: str = "tools") -> None:
    """Log a command-line tool's paho client in like the hub, but as `<hub user>-<login>` (read-only in the shipped
    ACL, and a client id of its own there, so the hub's session is never taken), with the hub's password and TLS."""
    password = settings.broker_password()
    if password is not None or settings.username is not None:
        client.username_pw_set(settings.login_for(f"{settings.client_id}-{login}"), password)
    if settings.tls:
        client.tls_set_context(broker_tls_context(settings))


class MqttConnection:
    """One paho client (MQTT 5, or 3.1.1) with a persistent session, re-subscribing and reconnecting with jittered backoff."""

    def __init__(
        self,
        settings: MqttSettings,
        metrics: Metrics,
        *,
        name: str,
        client_id: str,
        subscriptions: Sequence[str],
        on_message: Callable[[Message], None],
        spawner: Spawner,
        will: tuple[str, bytes] | None = None,
        session_marker: Path | None = None,
        max_unacked: int | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._spawner = spawner
        self._settings = settings
        self._metrics = metrics
        # present at 0 from the start: a dashboard or an alert on increase() needs the series before the first loss
        metrics.mqtt_session_lost.labels(name)
        self._pauses = metrics.mqtt_read_paused.labels(name)
        self._unacked_gauge = metrics.mqtt_unacked.labels(name)
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._session_marker = session_marker
        self._will = will  # also published on a clean shutdown: a DISCONNECT without error makes the broker drop it
        self._on_connected = on_connected  # called at every CONNACK (the hub's status says online again)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()  # CONNACK received: the session is ours, acks may flow
        self._ready = asyncio.Event()  # and subscribed (at the SUBACK, or at once when the session kept them)
        self._disconnected = asyncio.Event()
        self._misc_task: asyncio.Task[None] | None = None
        self._buffered: paho_speed.BufferedSocket | None = None
        self.generation = 0
        self._max_unacked = max_unacked
        self._resume_at = 0 if max_unacked is None else max_unacked // 2
        self._unacked = 0  # QoS 1 messages handed on, on the current connection, not yet acked
        self._paused = False
        self._stopping = False
        self.session_present: bool | None = None
        self._mqtt5 = settings.protocol == "5"
        self._addresses = settings.broker_addresses()
        self._next_address = 0
        self.address: tuple[str, int] = self._addresses[0]  # the node this connection is on, or tries next
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if self._mqtt5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if self._mqtt5 else False,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        self._client.connect_timeout = 5.0
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(100_000)
        password = settings.broker_password()
        if password is not None or settings.username is not None:
            self._client.username_pw_set(settings.login_for(client_id), password)
        self._tls_context: ssl.SSLContext | None = None
        if settings.tls:
            self._tls_context = broker_tls_context(settings)
            self._client.tls_set_context(self._tls_context)
        if will is not None:
            self._client.will_set(will[0], will[1], qos=1, retain=True)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_subscribe = self._handle_subscribe
        self._client.on_socket_open = self._socket_open
        self._client.on_socket_close = self._socket_close
        self._client.on_socket_register_write = self._socket_register_write
        self._client.on_socket_unregister_write = self._socket_unregister_write

    @property
    def unacked(self) -> int:
        """QoS 1 messages received on the current connection and not yet acknowledged."""
        return self._unacked

    @property
    def reading(self) -> bool:
        """False while reading is paused because `max_unacked` messages wait for their acks."""
        return not self._paused

    @property
    def connected(self) -> bool:
        """True while connected and subscribed."""
        return self._ready.is_set()

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until connected and subscribed, or raise TimeoutError."""
        async with asyncio.timeout(timeout_s):
            await self._ready.wait()

    def ack(self, msg: Message) -> None:
        """PUBACK `msg` if it arrived on the current connection; otherwise the broker will re-deliver it."""
        if msg.qos == 0 or msg.generation != self.generation or not self._connected.is_set():
            return
        self._client.ack(msg.mid, msg.qos)
        self._unacked -= 1
        if self._paused and self._unacked <= self._resume_at:
            self._resume_reading()
        if msg.mid % _ACK_SAMPLE_EVERY == 0:  # a histogram observation costs microseconds: one ack in eight
            self._metrics.ack_latency.observe(time.monotonic() - msg.received_mono)

    def reconnect(self) -> None:
        """Drop the connection now (the run loop makes a new one): the broker then sends again whatever this one
        left unacknowledged, instead of waiting for the keepalive of a connection that stopped reading."""
        if self._client.socket() is not None:
            logger.info("mqtt %s reconnecting to be sent again what it left unacknowledged", self.name)
            self._force_close()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a publish; never blocks. paho keeps it and sends it once connected."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            logger.warning("mqtt %s publish failed rc=%s topic=%s", self.name, info.rc, topic)

    async def run_loop(self) -> None:
        """Forever: connect, serve until the connection drops, wait a jittered backoff, reconnect."""
        self._loop = asyncio.get_running_loop()
        backoff = Backoff(self._settings.reconnect_min_s, self._settings.reconnect_max_s)
        try:
            while True:
                try:
                    await self._connect_once()
                    backoff.reset()
                    await self._disconnected.wait()
                    delay_s = backoff.next_s()
                except (OSError, MqttError, TimeoutError) as exc:
                    delay_s = backoff.next_s()
                    logger.warning(
                        "mqtt %s cannot connect to %s:%s: %s; retrying in %.1f s",
                        self.name,
                        *self.address,
                        exc,
                        delay_s,
                    )
                    self._force_close()
                await asyncio.sleep(delay_s)
        finally:
            self._shutdown()

    async def _connect_once(self) -> None:
        self._disconnected.clear()
        # every attempt, after a failure or a dropped connection, goes to the next node (with one, the same again)
        self.address = name, port = self._addresses[self._next_address % len(self._addresses)]
        self._next_address += 1
        if isinstance(self._tls_context, _BrokerTlsContext) and self._settings.hosts:
            self._tls_context.server_name = name
        # DNS happens off the loop; the TCP connect to a resolved address is bounded by connect_timeout
        infos = await asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM)
        host = str(infos[0][4][0])
        if self._mqtt5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self._settings.session_expiry_s
            props.ReceiveMaximum = self._settings.receive_maximum
            rc = self._client.connect(
                host, port, keepalive=self._settings.keepalive_s, clean_start=False, properties=props
            )
        else:  # the session persists by the clean_session flag the client was made with
            rc = self._client.connect(host, port, keepalive=self._settings.keepalive_s)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            msg = f"connect returned {rc}"
            raise MqttError(msg)
        # up at the CONNACK, not the SUBACK: with a session present the broker sends its backlog first, and the SUBACK
        # comes only once the store has acked enough of it for this connection to read on (issue 22.1)
        async with asyncio.timeout(10.0):
            await self._connected.wait()

    def _force_close(self) -> None:
        sock = self._client.socket()
        if sock is not None:
            self._client.disconnect()
            self._socket_close(self._client, None, sock)

    def _shutdown(self) -> None:
        self._stopping = True
        if self._client.socket() is not None:
            if self._will is not None and self._connected.is_set():
                self._client.publish(self._will[0], self._will[1], qos=1, retain=True)
            self._client.disconnect()
            # give the DISCONNECT a chance to go out; then drop the socket
            self._client.loop_write()
        self._force_close()
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None

    # --- paho callbacks (all run inside the asyncio loop) ------------------------------------------------------------

    def _handle_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            hint = (
                " (check mqtt.username, mqtt.password and the broker's ACL)" if reason_code.value in (134, 135) else ""
            )
            logger.error("mqtt %s connection refused: %s%s", self.name, reason_code, hint)
            self._disconnected.set()
            return
        self.generation += 1
        self._unacked = 0  # what the old connection held comes again from the broker; its acks are not sent
        self.session_present = flags.session_present
        self._connected.set()
        self._metrics.mqtt_reconnects.labels(self.name).inc()
        self._metrics.mqtt_connected.labels(self.name).set(1)
        # a new session is expected only the first time this client id ever connects (the marker file says whether
        # it has); any other time, whatever the broker held for us while we were away is gone. A connection that
        # subscribes to nothing (the canary) has nothing queued to lose, and RabbitMQ keeps no session for it at all
        had_session = self.generation > 1 or (self._session_marker is not None and self._session_marker.exists())
        if not flags.session_present and had_session and self._subscriptions:
            self._metrics.mqtt_session_lost.labels(self.name).inc()
            logger.warning(
                "mqtt %s broker had no session for us: messages queued while we were away may be lost",
                self.name,
            )
        if self._session_marker is not None and not self._session_marker.exists():
            try:
                self._session_marker.touch()
            except OSError as exc:  # a full disk: the marker is written on a later connection
                self._metrics.local_write_failures.labels("session_marker").inc()
                logger.warning("mqtt %s cannot write its session marker: %s", self.name, exc)
        logger.info(
            "mqtt %s connected to %s:%s session_present=%s",
            self.name,
            *self.address,
            flags.session_present,
        )
        if self._subscriptions:
            # again even when the session kept them, so a changed configuration applies; but a kept session is
            # subscribed already, and its backlog may arrive long before the SUBACK
            if self._mqtt5:
                opts = SubscribeOptions(qos=1, noLocal=True)
                client.subscribe([(topic, opts) for topic in self._subscriptions])
            else:
                client.subscribe([(topic, 1) for topic in self._subscriptions])
        if flags.session_present or not self._subscriptions:
            self._ready.set()
        if self._on_connected is not None:
            try:
                self._on_connected()
            except Exception:  # one bad hook never stops the connection
                logger.exception("mqtt %s: its on-connect hook failed", self.name)

    def _handle_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            logger.error("mqtt %s broker refused subscriptions: %s", self.name, ", ".join(refused))
        self._ready.set()

    def _handle_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connected.is_set() and not self._stopping:
            logger.warning("mqtt %s disconnected: %s", self.name, reason_code)
        self._mark_down()

    def _mark_down(self) -> None:
        self._connected.clear()
        self._ready.clear()
        self._metrics.mqtt_connected.labels(self.name).set(0)
        self._disconnected.set()

    def _handle_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = paho_speed.raw_topic(message)
        msg = Message(
            topic=topic,
            payload=bytes(message.payload),
            qos=message.qos,
            mid=message.mid,
            retain=message.retain,
            received_at=datetime.now(UTC),
            received_mono=time.monotonic(),
            connection=self,
            generation=self.generation,
        )
        if message.qos:
            self._unacked += 1
        try:
            self._on_message(msg)
        except Exception:
            # one bad handler never stops dispatch; the message stays unacked and comes back
            logger.exception("mqtt %s message handler failed for topic %s", self.name, topic[:128])

    def _socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._buffered = paho_speed.buffer_reads(client, sock)
        self._paused = False
        self._loop.add_reader(sock, self._read)
        if self._misc_task is None:
            self._misc_task = self._spawner.spawn(self._misc_loop(), name=f"vaka.mqtt.{self.name}.misc")

    def _socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._loop is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        self._mark_down()

    def _socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.add_writer(sock, self._write)

    def _socket_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.remove_writer(sock)

    def _read(self) -> None:
        if self._paused:
            return  # a read scheduled before the pause
        limit = self._max_unacked
        for _ in range(_PACKETS_PER_READ):
            rc = self._client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._connection_lost(rc)
                return
            if limit is not None and self._unacked >= limit:
                self._pause_reading()
                return
            buffered = self._buffered
            if buffered is None or not buffered.buffered:
                return
        assert self._loop is not None
        self._loop.call_soon(self._read)  # more packets wait in the buffer: continue after the other callbacks

    def _pause_reading(self) -> None:
        """Leave the rest in the socket (and the broker) until acks make room; see the module docstring."""
        sock = self._client.socket()
        if sock is None or self._loop is None:
            return
        self._paused = True
        self._pauses.inc()
        self._loop.remove_reader(sock)

    def _resume_reading(self) -> None:
        sock = self._client.socket()
        self._paused = False
        if sock is None or self._loop is None:
            return
        self._loop.add_reader(sock, self._read)
        if self._buffered is not None and self._buffered.buffered:
            self._loop.call_soon(self._read)  # whole packets already read from the socket wait in the buffer

    def _write(self) -> None:
        rc = self._client.loop_write()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._connection_lost(rc)

    def _connection_lost(self, rc: MQTTErrorCode) -> None:
        sock = self._client.socket()
        if sock is not None:
            self._socket_close(self._client, None, sock)
        self._mark_down()
        logger.debug("mqtt %s socket closed rc=%s", self.name, rc)

    async def _misc_loop(self) -> None:
        while True:
            await asyncio.sleep(_MISC_INTERVAL_S)
            self._unacked_gauge.set(self._unacked)
            if self._client.socket() is not None:
                rc = self._client.loop_misc()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self._connection_lost(rc)
