"""Any bytes on any topic: every adapter returns Events with inventory-safe ids, or refuses with a PayloadError."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import fall_radar, frigate, medication_robot, scaip, zigbee2mqtt
from hub.model import Event, PayloadError
from tests.adapters.support import RECEIVED

Parse = Callable[[str, bytes, datetime], list[Event]]
ADAPTERS: dict[str, tuple[Parse, list[str]]] = {
    "zigbee2mqtt": (
        zigbee2mqtt.parse,
        ["zigbee2mqtt/lgh 1/dörr", "zigbee2mqtt/x/availability", "zigbee2mqtt/bridge/state"],
    ),
    "frigate": (frigate.parse, ["frigate/events", "frigate/reviews", "frigate/stats", "frigate/available"]),
    "fall_radar": (fall_radar.parse, ["radar/VYR-1/events"]),
    "medication_robot": (medication_robot.parse, ["medication/EVD-1/events"]),
    "scaip": (scaip.parse, ["scaip/1"]),
}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
keys = st.sampled_from(
    [
        "type",
        "after",
        "before",
        "id",
        "camera",
        "label",
        "start_time",
        "contact",
        "action",
        "battery",
        "timestamp",
        "status",
        "eventId",
        "deviceId",
        "event",
        "time",
        "doseId",
        "last_seen",
        "state",
        "cameras",
    ]
)
near_valid = st.dictionaries(keys, json_values, max_size=8).map(lambda d: json.dumps(d).encode())
payloads = st.one_of(st.binary(max_size=200), near_valid, json_values.map(lambda v: json.dumps(v).encode()))


@pytest.mark.parametrize("name", sorted(ADAPTERS))
@settings(max_examples=100, deadline=None)
@given(payload=payloads, pick=st.integers(min_value=0, max_value=3))
def test_events_or_a_reason_never_a_crash(name: str, payload: bytes, pick: int) -> None:
    parse, topics = ADAPTERS[name]
    topic = topics[pick % len(topics)]
    try:
        events = parse(topic, payload, RECEIVED)
    except PayloadError as exc:
        reason = exc.reason
        events = []
    else:
        reason = "ok"
    assert re.fullmatch(r"[a-z_]+", reason), "a short, stable reason to count and log"
    for event in events:
        assert _ID.match(event.device_id), event.device_id
        assert event.ts.tzinfo is not None
        assert event.site == ""
