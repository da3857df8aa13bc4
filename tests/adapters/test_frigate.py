"""Frigate events become camera events tied by the Frigate event id; metadata passes, images never do."""

from __future__ import annotations

import base64
import json
import re

import pytest

from adapters import frigate
from hub.model import EventKind, PayloadError
from tests.adapters.support import RECEIVED, fixture

F = "frigate"
EVENT_ID = "1795917600.475377-mxklsc"


@pytest.mark.parametrize(
    ("name", "kind", "stage"),
    [
        ("event_new.json", EventKind.CAMERA_PERSON_DETECTED, "new"),
        ("event_update.json", EventKind.CAMERA_PERSON_DETECTED, "update"),
        ("event_end.json", EventKind.CAMERA_DETECTION_ENDED, "end"),
    ],
)
def test_one_tracked_object_is_one_ref_from_new_to_end(name: str, kind: EventKind, stage: str) -> None:
    [event] = frigate.parse("frigate/events", fixture(F, name), RECEIVED)
    assert (event.kind, event.ref, event.device_id, event.attrs["stage"]) == (kind, EVENT_ID, "korridor_2", stage)
    assert event.attrs["label"] == "person"


def test_stages_of_one_object_are_stored_apart_and_objects_of_one_frame_too() -> None:
    keys = {
        (ev.device_id, ev.ts, ev.seq)
        for name in ("event_new.json", "event_update.json", "event_end.json")
        for ev in frigate.parse("frigate/events", fixture(F, name), RECEIVED)
    }
    assert len(keys) == 3
    twin = json.loads(fixture(F, "event_new.json"))
    twin["after"]["id"] = "1795917600.475377-other1"
    [a] = frigate.parse("frigate/events", fixture(F, "event_new.json"), RECEIVED)
    [b] = frigate.parse("frigate/events", json.dumps(twin).encode(), RECEIVED)
    assert a.ts == b.ts
    assert a.seq != b.seq


def test_other_labels_are_objects_not_people() -> None:
    [event] = frigate.parse("frigate/events", fixture(F, "event_new_legacy_thumbnail.json"), RECEIVED)
    assert event.kind is EventKind.CAMERA_OBJECT_DETECTED
    assert event.attrs["label"] == "dog"


@pytest.mark.parametrize("name", ["event_new.json", "event_new_legacy_thumbnail.json", "review_new.json"])
def test_no_image_path_or_name_passes_through(name: str) -> None:
    topic = "frigate/reviews" if name.startswith("review") else "frigate/events"
    events = frigate.parse(topic, fixture(F, name), RECEIVED)
    produced = json.dumps([{"attrs": ev.attrs, "ref": ev.ref, "value": ev.value} for ev in events])
    assert "thumbnail" not in produced
    assert "snapshot" not in produced
    assert "thumb_path" not in produced
    assert "Anna" not in produced, "sub_label holds recognised faces' names"
    assert not re.search(r"[A-Za-z0-9+/]{64,}={0,2}", produced), "no base64 blob"
    jpeg_b64 = base64.b64encode(b"\xff\xd8\xff").decode()
    assert jpeg_b64 not in produced
    assert ".webp" not in produced
    assert ".jpg" not in produced


def test_snapshot_topics_with_image_bytes_are_dropped_unread() -> None:
    assert frigate.parse("frigate/korridor_2/person/snapshot", b"\xff\xd8\xff\xe0JFIF\x00", RECEIVED) == []
    assert frigate.parse("frigate/korridor_2/person", b"1", RECEIVED) == []


def test_review_items_carry_severity_and_their_detections() -> None:
    [event] = frigate.parse("frigate/reviews", fixture(F, "review_new.json"), RECEIVED)
    assert event.kind is EventKind.CAMERA_REVIEW
    assert event.ref == "1795917600.49-kxh3m2"
    assert event.attrs == {
        "stage": "new",
        "severity": "alert",
        "objects": ["person"],
        "zones": ["sovrum_dorr"],
        "detections": [EVENT_ID],
    }


def test_availability_and_stats_feed_supervision() -> None:
    [server] = frigate.parse("frigate/available", b"offline", RECEIVED)
    assert (server.device_id, server.kind) == ("frigate-server", EventKind.DEVICE_OFFLINE)
    cameras = {ev.device_id: ev.kind for ev in frigate.parse("frigate/stats", fixture(F, "stats.json"), RECEIVED)}
    assert cameras == {"korridor_2": EventKind.DEVICE_ONLINE, "entre": EventKind.DEVICE_OFFLINE}


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("frigate/events", b'{"type": "new"}', "invalid_event"),
        ("frigate/events", b'{"type": "begin", "after": {}}', "invalid_event"),
        ("frigate/events", b'{"type": "new", "after": {"id": "x"}}', "missing_field"),
        ("frigate/events", b"not json", "invalid_json"),
        ("frigate/available", b"maybe", "invalid_status"),
    ],
)
def test_bad_messages_say_why(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        frigate.parse(topic, payload, RECEIVED)
    assert err.value.reason == reason
