"""The published device contract: an AsyncAPI 3 document of every Vaka topic, its messages and JSON Schemas.

The schemas come from the msgspec structs the hub itself decodes and encodes with (hub.model.NativePayload,
NativeStatus, AlarmMessage), so the contract cannot drift from the code: `tests/contract` checks that the committed
docs/contract/asyncapi.yaml equals what `vaka schema asyncapi` writes, and validates it with the AsyncAPI parser.
The simulated clock (`vaka/v1/_sim/clock`) is a test instrument, not part of the contract.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import yaml

from hub.model import (
    EVENT_KIND_DOCS,
    MAX_MESSAGES_PER_S,
    MAX_PAYLOAD_BYTES,
    TOPIC_ROOT,
    AlarmMessage,
    EventKind,
    NativePayload,
    NativeStatus,
)
from hub.settings import MqttSettings

CONTRACT_VERSION = "1.1.0"  # 1.1: the hub's status topic, `alarm_aborted`
_MQTT_BINDING = "0.2.0"

_PARAMS = {
    "site": {"description": "site id from the inventory, `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}`"},
    "device_id": {"description": "device id from the inventory, same pattern; not `hub`, `alarms` or `_sim`"},
    "alarm_id": {"description": "the alarm's id"},
}


# what a device's connection must look like (docs/vendors.md §2): kept session, Last Will on its status topic
DEVICE_SESSION_EXPIRY_S = 3600
DEVICE_KEEPALIVE_S = 60
HUB_KEEPALIVE_S = MqttSettings.model_fields["keepalive_s"].default
OFFLINE = '{"state": "offline"}'


def _device_connection() -> dict[str, Any]:
    """MQTT server bindings for a device's connection: Will, clean start (cleanSession), session expiry."""
    return {
        "mqtt": {
            "cleanSession": False,
            "lastWill": {
                "topic": f"{TOPIC_ROOT}/{{site}}/{{device_id}}/status",
                "qos": 1,
                "message": OFFLINE,
                "retain": True,
            },
            "keepAlive": DEVICE_KEEPALIVE_S,
            "sessionExpiryInterval": DEVICE_SESSION_EXPIRY_S,
            "maximumPacketSize": MAX_PAYLOAD_BYTES + 1024,
            "bindingVersion": _MQTT_BINDING,
        }
    }


def _server(protocol: str, port: int, description: str) -> dict[str, Any]:
    return {
        "host": f"{{host}}:{port}",
        "protocol": protocol,
        "protocolVersion": "5",
        "description": description,
        "variables": {"host": {"default": "localhost"}},
        "security": [{"$ref": "#/components/securitySchemes/perDevice"}],
        "bindings": _device_connection(),
        "x-max-messages-per-second-per-device": MAX_MESSAGES_PER_S,
    }


def _kind_table() -> str:
    return "\n".join(f"- `{kind.value}`: {EVENT_KIND_DOCS[kind]}" for kind in EventKind)


def _schemas() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [NativePayload, NativeStatus, AlarmMessage], ref_template="#/components/schemas/{name}"
    )
    for schema in components.values():
        for prop in schema.get("properties", {}).values():
            if prop.get("type") == "string" and "date-time" in prop.get("description", "RFC 3339"):
                prop["format"] = "date-time"
    components["EventKind"]["description"] = "What a device says happened:\n\n" + _kind_table()
    return dict(sorted(components.items()))


def _operation(action: str, channel: str, message: str, qos: int, retain: bool, summary: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "bindings": {"mqtt": {"qos": qos, "retain": retain, "bindingVersion": _MQTT_BINDING}},
    }


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, as a dict in a fixed order (the committed file is its YAML)."""
    root = TOPIC_ROOT
    device_params = {"site": _PARAMS["site"], "device_id": _PARAMS["device_id"]}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Vaka device and integration contract",
            "version": CONTRACT_VERSION,
            "description": (
                "MQTT topics a device publishes to Vaka and Vaka publishes for integrations. Devices publish "
                f"events with QoS 1 (Vaka acknowledges once the event is durable), one JSON object of at most "
                f"{MAX_PAYLOAD_BYTES} bytes per message, at most {MAX_MESSAGES_PER_S} messages per second per device "
                "(events, telemetry and status together), never retained except the status, and keep a retained "
                "status that is also their Last Will. A device connects with clean start false and a session expiry "
                f"of at least {DEVICE_SESSION_EXPIRY_S} s, so that QoS 1 messages without a PUBACK are sent again "
                "after a reconnect (the servers' MQTT bindings). A person closes a care alarm: a device's cancel, "
                "the end of a condition or `alarm_aborted` (the unit gave up on Vaka) marks it ended and it stays "
                "with staff; only `alarm_reset` (a person ended that alarm at the unit) closes it. Vaka's own retained "
                "`hub/status` per site says whether the hub is there (its Last Will says offline). "
                "See docs/vendors.md for connecting, clocks, ids and seq, duplicates and credentials. "
                "Generated by `vaka schema asyncapi`; do not edit."
            ),
            "license": {"name": "EUPL-1.2"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "site-broker": _server(
                "secure-mqtt",
                8883,
                "the site's Mosquitto over TLS, as in production; every device has its own account "
                "(`vaka mqtt credentials`)",
            ),
            "site-broker-plain": _server(
                "mqtt", 1883, "the same broker without TLS: development and a closed test network only"
            ),
        },
        "channels": {
            "deviceEvent": {
                "address": f"{root}/{{site}}/{{device_id}}/event",
                "title": "Device events",
                "description": (
                    "Things that happened (a fall, a button press, a door); never shed under load. Not retained: a "
                    "retained event would reach every new subscriber as if it had just happened."
                ),
                "parameters": device_params,
                "messages": {"nativeEvent": {"$ref": "#/components/messages/NativeEvent"}},
            },
            "deviceTelemetry": {
                "address": f"{root}/{{site}}/{{device_id}}/telemetry",
                "title": "Device telemetry",
                "description": "Measurements (temperature, battery); same payload as events, may be shed first.",
                "parameters": device_params,
                "messages": {"nativeTelemetry": {"$ref": "#/components/messages/NativeEvent"}},
            },
            "deviceStatus": {
                "address": f"{root}/{{site}}/{{device_id}}/status",
                "title": "Device status (retained, Last Will)",
                "description": (
                    "Publish `online` retained on connect and set the same topic as Last Will with `offline`, "
                    "retained. The plain strings `online` and `offline` are accepted too; an empty retained message "
                    "clears it."
                ),
                "parameters": device_params,
                "messages": {"nativeStatus": {"$ref": "#/components/messages/NativeStatus"}},
            },
            "hubStatus": {
                "address": f"{root}/{{site}}/hub/status",
                "title": "The hub's status (retained, Last Will)",
                "description": (
                    "Vaka publishes `online` (with `ts`) retained, QoS 1, when it connects to serve the site, and "
                    "`offline` retained when it stops; its connection for the site has the same topic as Last Will "
                    "with `offline`, retained, QoS 1, so a hub that dies reads offline within 1.5 keepalives "
                    f"({HUB_KEEPALIVE_S} s by default: about {int(HUB_KEEPALIVE_S * 1.5)} s). A vendor's gateway or a "
                    "receiving centre watches it to know whether Vaka is there to take the site's alarms. It says "
                    "the hub's process holds a connection, not that every path works (the hub's /readyz does). Only "
                    "the hub may publish."
                ),
                "parameters": {"site": _PARAMS["site"]},
                "messages": {"hubStatus": {"$ref": "#/components/messages/HubStatus"}},
            },
            "alarmState": {
                "address": f"{root}/{{site}}/alarms/{{alarm_id}}",
                "title": "Alarm state changes",
                "description": "Vaka publishes every alarm state change for integrations; only the hub may publish.",
                "parameters": {"site": _PARAMS["site"], "alarm_id": _PARAMS["alarm_id"]},
                "messages": {"alarmMessage": {"$ref": "#/components/messages/AlarmMessage"}},
            },
        },
        "operations": {
            "receiveDeviceEvent": _operation(
                "receive", "deviceEvent", "nativeEvent", 1, False, "Vaka receives a device's event (QoS 1)"
            ),
            "receiveDeviceTelemetry": _operation(
                "receive", "deviceTelemetry", "nativeTelemetry", 1, False, "Vaka receives telemetry (QoS 1)"
            ),
            "receiveDeviceStatus": _operation(
                "receive", "deviceStatus", "nativeStatus", 1, True, "Vaka follows a device's retained status"
            ),
            "sendHubStatus": {
                **_operation(
                    "send", "hubStatus", "hubStatus", 1, True, "Vaka says whether it serves the site (retained)"
                ),
                "x-last-will": {"topic": f"{root}/{{site}}/hub/status", "qos": 1, "retain": True, "message": OFFLINE},
            },
            "sendAlarmState": _operation(
                "send", "alarmState", "alarmMessage", 1, False, "Vaka announces an alarm's state change"
            ),
        },
        "components": {
            "schemas": _schemas(),
            "messages": {
                "NativeEvent": {
                    "name": "NativeEvent",
                    "title": "A device event",
                    "contentType": "application/json",
                    "payload": {"$ref": "#/components/schemas/NativePayload"},
                    "examples": [
                        {
                            "name": "fall",
                            "payload": {
                                "ts": "2026-11-29T03:12:00+01:00",
                                "kind": "fall_detected",
                                "seq": 4711,
                                "ref": "f-7d41c2",
                            },
                        },
                        {
                            "name": "temperature",
                            "payload": {
                                "ts": "2026-11-29T03:15:00+01:00",
                                "kind": "temperature",
                                "value": 21.5,
                                "unit": "Cel",
                                "seq": 4712,
                            },
                        },
                    ],
                },
                "NativeStatus": {
                    "name": "NativeStatus",
                    "title": "A device's status",
                    "contentType": "application/json",
                    "payload": {"$ref": "#/components/schemas/NativeStatus"},
                    "examples": [{"name": "online", "payload": {"state": "online", "ts": "2026-11-29T03:00:00+01:00"}}],
                },
                "HubStatus": {
                    "name": "HubStatus",
                    "title": "The hub's status",
                    "contentType": "application/json",
                    "payload": {"$ref": "#/components/schemas/NativeStatus"},
                    "examples": [
                        {"name": "online", "payload": {"state": "online", "ts": "2026-11-29T03:00:00+00:00"}},
                        {"name": "offline (Last Will)", "payload": {"state": "offline"}},
                    ],
                },
                "AlarmMessage": {
                    "name": "AlarmMessage",
                    "title": "An alarm's state",
                    "contentType": "application/json",
                    "payload": {"$ref": "#/components/schemas/AlarmMessage"},
                },
            },
            "securitySchemes": {
                "perDevice": {
                    "type": "userPassword",
                    "description": "one account per device, allowed to publish only under its own topics",
                }
            },
        },
    }


def asyncapi_yaml() -> str:
    """The document as the YAML committed under docs/contract/asyncapi.yaml."""
    header = "# Generated by `vaka schema asyncapi --output docs/contract/asyncapi.yaml`; do not edit by hand.\n"
    plain = json.loads(json.dumps(asyncapi_document()))  # no YAML anchors for shared parts: a reader sees each whole
    return header + yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, width=120)
