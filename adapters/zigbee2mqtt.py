"""Zigbee2MQTT: `{base}/{friendly_name}` device state, `{base}/{friendly_name}/availability`, `{base}/bridge/…`.

The base topic is the first topic level (Zigbee2MQTT's `mqtt.base_topic`, `zigbee2mqtt` by default); the friendly
name is everything after it and may itself contain `/`. The device id is the friendly name made inventory-safe
(`device_id_from_name`). A state message is one JSON object of the device's exposes; each known property becomes an
Event, unknown ones (linkquality, voltage, …) are ignored. With Zigbee2MQTT's default `cache_state: true` every
message repeats the whole state, so a door still open is reported again with the next battery report. The events of
a two-valued state (`contact`, `presence`, `water_leak`, `smoke`) carry the property's name in `attrs.property`: the
rule engine then tells a repeat of the same state from a change (alarms.engine), and a change back (`water_leak`
false, `smoke` false) ends the condition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from adapters._common import device_id_from_name, epoch_time, iso_time, json_object, number
from hub.model import MAX_PAYLOAD_BYTES, Event, EventKind, PayloadError

TOPIC_FILTERS = ("zigbee2mqtt/#",)
BRIDGE_DEVICE_SUFFIX = "-bridge"

# action values of SOS / emergency / panic buttons (Tuya TS0215A_sos, Heiman HS1EB, Frient SBTZB, …)
SOS_ACTIONS = frozenset({"emergency", "sos", "panic", "alarm", "sos_alarm"})
# ignored sub-topics: commands to the device, not reports from it
_COMMAND_SUFFIXES = ("/set", "/get")
_LOW_BATTERY_PERCENT = 10.0
_WATER = {"property": "water_leak"}
_SMOKE = {"property": "smoke"}


class _State(msgspec.Struct):
    """The exposes Vaka reads from a device's state message; every other property is skipped unread."""

    action: Any = None
    sos: Any = None
    emergency: Any = None
    contact: Any = None
    occupancy: Any = None
    presence: Any = None
    water_leak: Any = None
    smoke: Any = None
    test: Any = None
    tamper: Any = None
    temperature: Any = None
    humidity: Any = None
    battery: Any = None
    battery_low: Any = None
    last_seen: Any = None


_state_decoder = msgspec.json.Decoder(_State)


def _decode_state(payload: bytes) -> _State:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("payload_too_large", f"{len(payload)} bytes")
    try:
        return _state_decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise PayloadError("not_an_object", str(exc)[:200]) from None
    except msgspec.DecodeError as exc:
        raise PayloadError("invalid_json", str(exc)[:200]) from None


def split_topic(topic: str) -> tuple[str, str]:
    """Return (base, friendly_name) of a Zigbee2MQTT topic, or raise PayloadError."""
    base, _, name = topic.partition("/")
    if not base or not name:
        raise PayloadError("bad_topic", topic[:128])
    return base, name


def parse(topic: str, payload: bytes, received_at: datetime) -> list[Event]:
    """Turn one Zigbee2MQTT message into Events; bridge topics other than `bridge/state` give none."""
    base, name = split_topic(topic)
    if name.startswith("bridge/"):
        if name == "bridge/state":
            return [_status(f"{base}{BRIDGE_DEVICE_SUFFIX}", payload, received_at, topic)]
        return []  # bridge/devices, bridge/info, bridge/logging …: inventory and diagnostics, not device events
    if name.endswith(_COMMAND_SUFFIXES) or "/set/" in name:
        return []
    if name.endswith("/availability"):
        return [_status(device_id_from_name(name.removesuffix("/availability")), payload, received_at, topic)]
    if not payload:
        return []  # a retained state being cleared
    return _state(device_id_from_name(name), _decode_state(payload), received_at, topic)


def _status(device_id: str, payload: bytes, received_at: datetime, topic: str) -> Event:
    """`online`/`offline`, plain (Zigbee2MQTT before 1.22, `legacy_availability_payload`) or `{"state": …}`."""
    text = payload.strip()
    state: Any = text.decode("utf-8", "replace")
    if text.startswith(b"{"):
        state = json_object(payload).get("state")
    if state not in ("online", "offline"):
        raise PayloadError("invalid_status", repr(state)[:64])
    kind = EventKind.DEVICE_ONLINE if state == "online" else EventKind.DEVICE_OFFLINE
    return Event(ts=received_at, site="", device_id=device_id, kind=kind, topic=topic)


def _state(device_id: str, state: _State, received_at: datetime, topic: str) -> list[Event]:
    ts = _last_seen(state.last_seen, received_at)
    out: list[tuple[EventKind, float | None, str | None, dict[str, Any]]] = []
    action = state.action
    if isinstance(action, str) and action.lower() in SOS_ACTIONS:
        out.append((EventKind.ALARM_BUTTON, None, None, {"action": action}))
    elif state.sos is True or state.emergency is True:
        out.append((EventKind.ALARM_BUTTON, None, None, {}))
    # other actions (single, double, hold of ordinary remotes) are not events of care
    contact = state.contact
    if isinstance(contact, bool):  # Zigbee2MQTT: contact true means closed
        out.append((EventKind.DOOR_CLOSED if contact else EventKind.DOOR_OPEN, None, None, {"property": "contact"}))
    occupancy = state.occupancy
    if occupancy is True:  # each report of movement is news (false is the sensor's own timeout, not an event)
        out.append((EventKind.MOTION, None, None, {}))
    presence = state.presence
    if isinstance(presence, bool):
        out.append((EventKind.PRESENCE, 1.0 if presence else 0.0, None, {"property": "presence"}))
    water_leak = state.water_leak
    if isinstance(water_leak, bool):
        out.append((EventKind.WATER_LEAK if water_leak else EventKind.WATER_LEAK_ENDED, None, None, _WATER))
    smoke = state.smoke
    if isinstance(smoke, bool) and state.test is not True:
        out.append((EventKind.SMOKE if smoke else EventKind.SMOKE_ENDED, None, None, _SMOKE))
    if state.tamper is True:
        out.append((EventKind.TAMPER, None, None, {}))
    temperature = number(state.temperature)
    if temperature is not None:
        out.append((EventKind.TEMPERATURE, temperature, "Cel", {}))
    humidity = number(state.humidity)
    if humidity is not None:
        out.append((EventKind.HUMIDITY, humidity, "%", {}))
    battery = number(state.battery)
    battery_low = state.battery_low
    if battery is not None:
        out.append((EventKind.BATTERY, battery, "%", {"battery_low": battery_low} if battery_low is True else {}))
    elif battery_low is True:
        # the device reports only a flag: stand for it with a level under every low-battery threshold
        out.append((EventKind.BATTERY, _LOW_BATTERY_PERCENT, "%", {"battery_low": True, "estimated": True}))
    return [
        Event(ts=ts, site="", device_id=device_id, kind=kind, value=value, unit=unit, attrs=attrs, seq=i, topic=topic)
        for i, (kind, value, unit, attrs) in enumerate(out)
    ]


def _last_seen(value: Any, received_at: datetime) -> datetime:
    """Zigbee2MQTT's optional `last_seen` (ISO 8601 or epoch ms); else the time the hub received the message."""
    if value is None:
        return received_at
    if isinstance(value, str):
        return iso_time(value, received_at)
    return epoch_time(value, received_at, millis=True)


def inventory_suggestions(payload: bytes) -> list[tuple[dict[str, Any], str]]:
    """(device entry for `vaka site load`, a comment naming the device) from a retained `bridge/devices` message."""
    try:
        devices = msgspec.json.decode(payload)
    except Exception as exc:
        raise PayloadError("invalid_json", str(exc)[:200]) from None
    if not isinstance(devices, list):
        raise PayloadError("not_a_list", "bridge/devices is a JSON list of devices")
    out: list[tuple[dict[str, Any], str]] = []
    for dev in devices:
        if not isinstance(dev, dict) or dev.get("type") == "Coordinator":
            continue
        name = dev.get("friendly_name") or dev.get("ieee_address")
        if not isinstance(name, str):
            continue
        definition = dev.get("definition") or {}
        properties = _exposed_properties(definition.get("exposes") or [])
        kind, safety = _device_kind(properties)
        entry: dict[str, Any] = {
            "id": device_id_from_name(name),
            "kind": kind,
            "vendor": "zigbee2mqtt",
            "supervision_interval_s": 3600 if dev.get("power_source") == "Mains (single phase)" else 4 * 3600,
        }
        if safety:
            entry["safety"] = True
        note = " ".join(str(definition.get(k) or "") for k in ("vendor", "model", "description")).strip()
        out.append((entry, f"{name}: {note}" if note else name))
    return out


def _exposed_properties(exposes: list[Any]) -> set[str]:
    props: set[str] = set()
    for item in exposes:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("property"), str):
            props.add(item["property"])
            if item["property"] == "action":
                props.update(str(v) for v in item.get("values") or [])
        props |= _exposed_properties(item.get("features") or [])
    return props


def _device_kind(props: set[str]) -> tuple[str, bool]:
    """A device kind the rule packs know, guessed from what the device exposes; a person reviews it."""
    if props & (SOS_ACTIONS | {"sos", "emergency"}):
        return "alarm_button", True
    if "smoke" in props:
        return "smoke_detector", True
    if "water_leak" in props:
        return "water_sensor", False
    if "contact" in props:
        return "door_entrance", False
    if "presence" in props:
        return "presence_bathroom", False
    if "occupancy" in props:
        return "motion_hall", False
    if "temperature" in props:
        return "thermometer", False
    return "zigbee_device", False
