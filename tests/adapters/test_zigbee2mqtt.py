"""Zigbee2MQTT device state, availability and bridge messages become Events; friendly names may hold `/`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from adapters import zigbee2mqtt
from adapters._common import device_id_from_name
from hub.model import Device, EventKind, PayloadError
from tests.adapters.support import RECEIVED, fixture

Z = "zigbee2mqtt"


@pytest.mark.parametrize(
    ("topic", "name", "expected"),
    [
        ("zigbee2mqtt/hall/ytterdorr", "door_open.json", [(EventKind.DOOR_OPEN, None), (EventKind.BATTERY, 91.0)]),
        (
            "zigbee2mqtt/ytterdorr",
            "door_closed_last_seen.json",
            [(EventKind.DOOR_CLOSED, None), (EventKind.BATTERY, 91.0)],
        ),
        ("zigbee2mqtt/badrum/pir", "occupancy.json", [(EventKind.MOTION, None), (EventKind.BATTERY, 100.0)]),
        ("zigbee2mqtt/badrum/pir", "occupancy_cleared.json", [(EventKind.BATTERY, 100.0)]),
        ("zigbee2mqtt/kok/vatten", "water_leak.json", [(EventKind.WATER_LEAK, None), (EventKind.BATTERY, 100.0)]),
        (
            "zigbee2mqtt/kok/vatten",
            "water_dry.json",
            [(EventKind.WATER_LEAK_ENDED, None), (EventKind.BATTERY, 100.0)],
        ),
        ("zigbee2mqtt/brand", "smoke.json", [(EventKind.SMOKE, None), (EventKind.BATTERY, 83.0)]),
        ("zigbee2mqtt/brand", "smoke_cleared.json", [(EventKind.SMOKE_ENDED, None), (EventKind.BATTERY, 83.0)]),
        ("zigbee2mqtt/brand", "smoke_test_button.json", [(EventKind.BATTERY, 83.0)]),
        ("zigbee2mqtt/lgh 12/knapp", "sos_button.json", [(EventKind.ALARM_BUTTON, None), (EventKind.BATTERY, 100.0)]),
        ("zigbee2mqtt/fjarr", "remote_single.json", [(EventKind.BATTERY, 80.0)]),
        (
            "zigbee2mqtt/dorr",
            "tamper_battery_low.json",
            [(EventKind.DOOR_CLOSED, None), (EventKind.TAMPER, None), (EventKind.BATTERY, 10.0)],
        ),
        (
            "zigbee2mqtt/sovrum/termometer",
            "temperature.json",
            [(EventKind.TEMPERATURE, 15.42), (EventKind.HUMIDITY, 41.37), (EventKind.BATTERY, 12.0)],
        ),
    ],
)
def test_device_state_becomes_events(topic: str, name: str, expected: list[tuple[EventKind, float | None]]) -> None:
    events = zigbee2mqtt.parse(topic, fixture(Z, name), RECEIVED)
    assert [(ev.kind, ev.value) for ev in events] == expected
    assert len({(ev.device_id, ev.ts, ev.seq) for ev in events}) == len(events), "each event must be stored"
    assert all(ev.site == "" for ev in events), "the route gives the site"


@pytest.mark.parametrize(
    ("name", "prop"),
    [
        ("door_open.json", "contact"),
        ("door_closed.json", "contact"),
        ("water_leak.json", "water_leak"),
        ("water_dry.json", "water_leak"),
        ("smoke.json", "smoke"),
        ("smoke_cleared.json", "smoke"),
    ],
)
def test_a_two_valued_state_names_its_property_so_a_repeat_can_be_told_from_a_change(name: str, prop: str) -> None:
    (state, _battery) = zigbee2mqtt.parse("zigbee2mqtt/x", fixture(Z, name), RECEIVED)
    assert state.attrs["property"] == prop
    (motion, _) = zigbee2mqtt.parse("zigbee2mqtt/x", fixture(Z, "occupancy.json"), RECEIVED)
    assert "property" not in motion.attrs  # every report of movement is news


def test_friendly_names_with_slashes_and_swedish_letters_become_one_stable_device_id() -> None:
    events = zigbee2mqtt.parse("zigbee2mqtt/lgh 12/kök/vattenlarm", fixture(Z, "water_leak.json"), RECEIVED)
    assert {ev.device_id for ev in events} == {"lgh_12_kok_vattenlarm"}
    Device(id=events[0].device_id, kind="water_sensor")  # a valid inventory id
    status = zigbee2mqtt.parse("zigbee2mqtt/lgh 12/kök/vattenlarm/availability", b"offline", RECEIVED)
    assert status[0].device_id == "lgh_12_kok_vattenlarm"
    assert len(device_id_from_name("x" * 200)) == 64


def test_last_seen_is_the_event_time_when_the_bridge_sends_it() -> None:
    iso = zigbee2mqtt.parse("zigbee2mqtt/d", fixture(Z, "door_closed_last_seen.json"), RECEIVED)
    assert iso[0].ts == datetime(2026, 11, 29, 1, 10, 4, tzinfo=UTC)
    epoch = zigbee2mqtt.parse("zigbee2mqtt/d", fixture(Z, "occupancy.json"), RECEIVED)
    assert epoch[0].ts == datetime(2026, 11, 29, 1, 10, 4, tzinfo=UTC)
    plain = zigbee2mqtt.parse("zigbee2mqtt/d", fixture(Z, "door_open.json"), RECEIVED)
    assert plain[0].ts == RECEIVED


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"online", EventKind.DEVICE_ONLINE),
        (b"offline", EventKind.DEVICE_OFFLINE),
        (b'{"state":"online"}', EventKind.DEVICE_ONLINE),
        (b'{"state": "offline"}', EventKind.DEVICE_OFFLINE),
    ],
)
def test_availability_legacy_and_json_forms_are_device_status(payload: bytes, kind: EventKind) -> None:
    [event] = zigbee2mqtt.parse("zigbee2mqtt/hall/ytterdorr/availability", payload, RECEIVED)
    assert (event.device_id, event.kind) == ("hall_ytterdorr", kind)


def test_bridge_state_supervises_the_bridge_and_other_bridge_topics_are_quiet() -> None:
    [event] = zigbee2mqtt.parse("zigbee2mqtt/bridge/state", b'{"state":"offline"}', RECEIVED)
    assert (event.device_id, event.kind) == ("zigbee2mqtt-bridge", EventKind.DEVICE_OFFLINE)
    assert zigbee2mqtt.parse("zigbee2mqtt/bridge/devices", fixture(Z, "bridge_devices.json"), RECEIVED) == []
    assert zigbee2mqtt.parse("zigbee2mqtt/bridge/logging", b'{"level":"info","message":"x"}', RECEIVED) == []
    assert zigbee2mqtt.parse("zigbee2mqtt/hall/lampa/set", b'{"state":"ON"}', RECEIVED) == []


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("zigbee2mqtt/d", b"{not json", "invalid_json"),
        ("zigbee2mqtt/d", b"[1, 2]", "not_an_object"),
        ("zigbee2mqtt/d/availability", b"maybe", "invalid_status"),
        ("zigbee2mqtt", b"{}", "bad_topic"),
        ("zigbee2mqtt/d", b'{"contact": false, "last_seen": "2026-11-29T02:00:00"}', "naive_timestamp"),
        ("zigbee2mqtt/d", b'{"contact": false, "last_seen": 99999999999999}', "absurd_timestamp"),
    ],
)
def test_bad_messages_say_why(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        zigbee2mqtt.parse(topic, payload, RECEIVED)
    assert err.value.reason == reason


def test_bridge_devices_suggest_inventory_entries_that_load() -> None:
    suggestions = zigbee2mqtt.inventory_suggestions(fixture(Z, "bridge_devices.json"))
    by_id = {entry["id"]: entry for entry, _ in suggestions}
    assert by_id == {
        "lgh_12_hall_ytterdorr": {
            "id": "lgh_12_hall_ytterdorr",
            "kind": "door_entrance",
            "vendor": "zigbee2mqtt",
            "supervision_interval_s": 14400,
        },
        "lgh_12_trygghetsknapp": {
            "id": "lgh_12_trygghetsknapp",
            "kind": "alarm_button",
            "vendor": "zigbee2mqtt",
            "supervision_interval_s": 14400,
            "safety": True,
        },
        "lgh_12_kok_vattenlarm": {
            "id": "lgh_12_kok_vattenlarm",
            "kind": "water_sensor",
            "vendor": "zigbee2mqtt",
            "supervision_interval_s": 14400,
        },
        "lgh_12_brandvarnare": {
            "id": "lgh_12_brandvarnare",
            "kind": "smoke_detector",
            "vendor": "zigbee2mqtt",
            "supervision_interval_s": 14400,
            "safety": True,
        },
        "lgh_12_badrum_rorelse": {
            "id": "lgh_12_badrum_rorelse",
            "kind": "motion_hall",
            "vendor": "zigbee2mqtt",
            "supervision_interval_s": 14400,
        },
    }
    for entry, comment in suggestions:
        Device.model_validate(yaml.safe_load(yaml.safe_dump(entry)))
        assert comment


def test_bridge_devices_that_are_not_a_list_are_refused() -> None:
    with pytest.raises(PayloadError):
        zigbee2mqtt.inventory_suggestions(b'{"devices": []}')
