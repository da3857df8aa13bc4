"""A small synchronous MQTT client for broker tests: connect, subscribe, publish, and the broker's answer to each.

paho runs its network thread here (this is a test's client, not the hub); every wait is on an event with a timeout.
"""

from __future__ import annotations

import queue
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

WAIT_S = 5.0

V5 = MQTTProtocolVersion.MQTTv5
V311 = MQTTProtocolVersion.MQTTv311


@dataclass(frozen=True)
class Received:
    """One message a probe received."""

    topic: str
    payload: bytes


class Probe:
    """One MQTT client as a device, a gateway, an integration, an intruder or the hub would connect."""

    def __init__(
        self,
        port: int,
        *,
        user: str | None = None,
        password: str | None = None,
        client_id: str = "",
        protocol: MQTTProtocolVersion = V5,
        ca_file: Path | None = None,
        check_hostname: bool = True,
        host: str = "127.0.0.1",
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        self.protocol = protocol
        if user is not None:
            self.client.username_pw_set(user, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file), cert_reqs=ssl.CERT_REQUIRED)
            self.client.tls_insecure_set(not check_hostname)
        if tls_context is not None:
            self.client.tls_set_context(tls_context)
        self.messages: queue.Queue[Received] = queue.Queue()
        self._connack: queue.Queue[ReasonCode | None] = queue.Queue()
        self._subacks: dict[int, queue.Queue[list[ReasonCode]]] = {}
        self._pubacks: dict[int, queue.Queue[ReasonCode]] = {}
        self._lock = threading.Lock()
        self.disconnected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    # --- what the broker answers ------------------------------------------------------------------------------------

    def connect(self) -> ReasonCode:
        """Connect and return the CONNACK's reason code (raises on a TLS or socket failure, or if none comes)."""
        rc = self.connect_or_closed()
        if rc is None:
            msg = "the broker closed the connection without a CONNACK"
            raise ConnectionError(msg)
        return rc

    def connect_or_closed(self) -> ReasonCode | None:
        """Connect; the CONNACK's reason code, or None when the broker closed the connection without one."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self._connack.get(timeout=WAIT_S)

    def subscribe(self, topic_filter: str, qos: int = 1) -> ReasonCode:
        """Subscribe and return the SUBACK's reason code for the filter (granted QoS, or a failure)."""
        with self._lock:
            _, mid = self.client.subscribe(topic_filter, qos)
            answer = self._subacks.setdefault(mid, queue.Queue())
        return answer.get(timeout=WAIT_S)[0]

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code (MQTT 3.1.1 has none: always success)."""
        with self._lock:
            info = self.client.publish(topic, payload, qos=qos, retain=retain)
            answer = self._pubacks.setdefault(info.mid, queue.Queue())
        return answer.get(timeout=WAIT_S)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    # --- paho callbacks (its network thread) ------------------------------------------------------------------------

    def _on_connect(self, c: paho.Client, u: Any, flags: Any, rc: ReasonCode, props: Properties | None) -> None:
        self._connack.put(rc)

    def _on_subscribe(self, c: paho.Client, u: Any, mid: int, rcs: list[ReasonCode], props: Properties | None) -> None:
        with self._lock:
            answer = self._subacks.setdefault(mid, queue.Queue())
        answer.put(rcs)

    def _on_publish(self, c: paho.Client, u: Any, mid: int, rc: ReasonCode, props: Properties | None) -> None:
        with self._lock:
            answer = self._pubacks.setdefault(mid, queue.Queue())
        answer.put(rc)

    def _on_message(self, c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
        self.messages.put(Received(msg.topic, bytes(msg.payload)))

    def _on_disconnect(self, c: paho.Client, u: Any, flags: Any, rc: ReasonCode, props: Properties | None) -> None:
        self.disconnected.set()
        self._connack.put(None)  # read only by a connect still waiting for its CONNACK

    def drain_until(self, topic: str, timeout_s: float = WAIT_S) -> list[Received]:
        """Everything received up to and including the first message on `topic` (raises if it never comes)."""
        seen: list[Received] = []
        while True:
            msg = self.messages.get(timeout=timeout_s)
            seen.append(msg)
            if msg.topic == topic:
                return seen
