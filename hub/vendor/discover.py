"""`vaka site discover --zigbee2mqtt`: read Zigbee2MQTT's retained `bridge/devices` and print inventory YAML."""

from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from adapters.zigbee2mqtt import inventory_suggestions
from hub.intake.mqtt import configure_tool_client
from hub.model import PayloadError, VakaError
from hub.settings import MqttSettings


class DiscoverError(VakaError):
    """Discovery could not read the bridge's device list; the message says what to check."""


def fetch_retained(settings: MqttSettings, topic: str, timeout_s: float) -> bytes:
    """The retained message on `topic`, or raise DiscoverError when none arrives within `timeout_s`."""
    got: list[bytes] = []
    done = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"vaka-discover-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5
    )
    configure_tool_client(client, settings)

    def on_connect(c: paho.Client, userdata: object, flags: object, rc: object, props: object = None) -> None:
        c.subscribe(topic, qos=1)

    def on_message(c: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        got.append(bytes(msg.payload))
        done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(settings.host, settings.port)
    except OSError as exc:
        msg = f"cannot reach the broker at {settings.host}:{settings.port}: {exc}; check mqtt.host and mqtt.port"
        raise DiscoverError(msg) from None
    client.loop_start()
    try:
        if not done.wait(timeout_s):
            msg = (
                f"no retained message on {topic} within {timeout_s:.0f} s: is Zigbee2MQTT running with this base "
                "topic, and may this account read it?"
            )
            raise DiscoverError(msg)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def zigbee2mqtt_inventory_yaml(payload: bytes, site: str) -> str:
    """Inventory YAML for review: one site with a device entry per Zigbee device, each with a comment naming it."""
    try:
        suggestions = inventory_suggestions(payload)
    except PayloadError as exc:
        msg = f"bridge/devices is not Zigbee2MQTT's device list ({exc})"
        raise DiscoverError(msg) from None
    lines = [
        "# Suggested by `vaka site discover --zigbee2mqtt`: review every kind, set `resident:` for personal devices,",
        "# then load with `vaka site load FILE`. Kinds are guessed from what each device exposes.",
        "sites:",
        f"  - id: {site}",
        "    devices:",
    ]
    for entry, comment in suggestions:
        lines.append(f"      # {comment}")
        body = yaml.safe_dump([entry], allow_unicode=True, sort_keys=False).rstrip().splitlines()
        lines.extend(f"      {line}" for line in body)
    if not suggestions:
        lines[-1] = "    devices: []  # the bridge knows no devices yet"
    return "\n".join(lines) + "\n"


def discover_zigbee2mqtt(settings: MqttSettings, base_topic: str, site: str, timeout_s: float) -> str:
    """Fetch `{base_topic}/bridge/devices` and return the inventory YAML."""
    return zigbee2mqtt_inventory_yaml(fetch_retained(settings, f"{base_topic}/bridge/devices", timeout_s), site)
