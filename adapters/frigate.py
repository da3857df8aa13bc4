"""Frigate NVR: `{prefix}/events`, `{prefix}/reviews`, `{prefix}/available`, `{prefix}/stats`; metadata only.

A tracked object (`frigate/events`, one `id` from `new` through `update`s to `end`) becomes camera events that
carry the Frigate event id as `ref`: a person seen is `camera_person_detected`, anything else
`camera_object_detected`, and `end` is `camera_detection_ended` with the same ref, so one detection is one alarm
that ends when Frigate ends it. Review items (`frigate/reviews`) become `camera_review`. `frigate/available` is the
Frigate server's own status; `frigate/stats` gives each camera's status (frames per second above 0: online).

Only an allow-list of metadata passes: never a snapshot, thumbnail, clip or path to one, and no `sub_label`
(Frigate puts recognised faces' names there). Per-camera image topics (`…/snapshot`) are dropped unread.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec

from adapters._common import device_id_from_name, epoch_time, json_object, number
from hub.model import MAX_PAYLOAD_BYTES, Event, EventKind, PayloadError

TOPIC_FILTERS = ("frigate/#",)
SERVER_DEVICE_SUFFIX = "-server"
_STAGES = ("new", "update", "end")
_MAX_LIST = 16


class _TrackedObject(msgspec.Struct):
    """The fields of a tracked object Vaka reads; everything else (snapshot, thumbnail, box, …) is skipped unread."""

    id: str | None = None
    camera: str | None = None
    label: str | None = None
    false_positive: bool | None = None
    start_time: float | None = None
    frame_time: float | None = None
    end_time: float | None = None
    top_score: float | None = None
    current_zones: list[str] | None = None
    entered_zones: list[str] | None = None
    stationary: bool | None = None


class _EventMessage(msgspec.Struct):
    type: str | None = None
    after: _TrackedObject | None = None


_event_decoder = msgspec.json.Decoder(_EventMessage)


def parse(topic: str, payload: bytes, received_at: datetime) -> list[Event]:
    """Turn one Frigate message into Events; topics carrying images or counts give none."""
    prefix, _, rest = topic.partition("/")
    if rest == "events":
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PayloadError("payload_too_large", f"{len(payload)} bytes")
        try:
            message = _event_decoder.decode(payload)
        except msgspec.ValidationError as exc:
            raise PayloadError("invalid_event", str(exc)[:200]) from None
        except msgspec.DecodeError as exc:
            raise PayloadError("invalid_json", str(exc)[:200]) from None
        return _tracked_object(message, received_at, topic)
    if rest == "reviews":
        return _review(json_object(payload), received_at, topic)
    if rest == "available":
        return [_server_status(prefix, payload, received_at, topic)]
    if rest == "stats":
        return _camera_status(json_object(payload), received_at, topic)
    return []  # snapshots (JPEG bytes), object counts, motion, audio, controls: nothing Vaka keeps


def _tracked_object(msg: _EventMessage, received_at: datetime, topic: str) -> list[Event]:
    stage, after = msg.type, msg.after
    if stage not in _STAGES or after is None:
        raise PayloadError("invalid_event", "frigate/events needs type new|update|end and an `after` object")
    event_id, camera, label = after.id, after.camera, after.label
    if event_id is None or camera is None or label is None:
        raise PayloadError("missing_field", "after.id, after.camera and after.label are required")
    if after.false_positive is True:
        return []
    if stage == "end":
        kind = EventKind.CAMERA_DETECTION_ENDED
        at = after.end_time or after.frame_time
    else:
        kind = EventKind.CAMERA_PERSON_DETECTED if label == "person" else EventKind.CAMERA_OBJECT_DETECTED
        at = after.start_time if stage == "new" else after.frame_time
    attrs: dict[str, Any] = {"stage": stage, "label": label}
    score = number(after.top_score)
    if score is not None:
        attrs["score"] = round(score, 3)
    if after.current_zones is not None:
        attrs["current_zones"] = after.current_zones[:_MAX_LIST]
    if after.entered_zones is not None:
        attrs["entered_zones"] = after.entered_zones[:_MAX_LIST]
    if after.stationary is not None:
        attrs["stationary"] = after.stationary
    return [
        Event(
            ts=epoch_time(at, received_at) if at is not None else received_at,
            site="",
            device_id=device_id_from_name(camera),
            kind=kind,
            value=score,
            attrs=attrs,
            seq=_seq(event_id, stage),
            ref=event_id[:128],
            topic=topic,
        )
    ]


def _review(msg: dict[str, Any], received_at: datetime, topic: str) -> list[Event]:
    stage = msg.get("type")
    after = msg.get("after")
    if not isinstance(stage, str) or not isinstance(after, dict):
        raise PayloadError("invalid_event", "frigate/reviews needs type and an `after` object")
    review_id, camera = after.get("id"), after.get("camera")
    if not isinstance(review_id, str) or not isinstance(camera, str):
        raise PayloadError("missing_field", "after.id and after.camera are required")
    data = after.get("data")
    if not isinstance(data, dict):
        data = {}
    attrs: dict[str, Any] = {"stage": stage, "severity": str(after.get("severity") or "")}
    for key in ("objects", "zones", "detections"):
        items = data.get(key)
        if isinstance(items, list):
            attrs[key] = [str(i)[:128] for i in items[:_MAX_LIST]]
    at = after.get("end_time") if stage == "end" and after.get("end_time") else after.get("start_time")
    return [
        Event(
            ts=epoch_time(at, received_at) if at is not None else received_at,
            site="",
            device_id=device_id_from_name(camera),
            kind=EventKind.CAMERA_REVIEW,
            attrs=attrs,
            seq=_seq(review_id, stage),
            ref=review_id[:128],
            topic=topic,
        )
    ]


def _server_status(prefix: str, payload: bytes, received_at: datetime, topic: str) -> Event:
    state = payload.strip()
    if state not in (b"online", b"offline"):
        raise PayloadError("invalid_status", repr(state[:32]))
    kind = EventKind.DEVICE_ONLINE if state == b"online" else EventKind.DEVICE_OFFLINE
    return Event(ts=received_at, site="", device_id=f"{prefix}{SERVER_DEVICE_SUFFIX}", kind=kind, topic=topic)


def _camera_status(stats: dict[str, Any], received_at: datetime, topic: str) -> list[Event]:
    cameras = stats.get("cameras")
    if not isinstance(cameras, dict):
        return []
    out = []
    for camera, camera_stats in cameras.items():
        fps = number(camera_stats.get("camera_fps")) if isinstance(camera_stats, dict) else None
        if fps is None:
            continue
        kind = EventKind.DEVICE_ONLINE if fps > 0 else EventKind.DEVICE_OFFLINE
        out.append(
            Event(
                ts=received_at,
                site="",
                device_id=device_id_from_name(str(camera)),
                kind=kind,
                value=fps,
                unit="fps",
                topic=topic,
            )
        )
    return out


def _seq(ref: str, stage: str) -> int:
    """Objects first seen in the same frame share a start time: the id keeps their events apart in storage."""
    return int.from_bytes(hashlib.blake2b(f"{ref}/{stage}".encode(), digest_size=7).digest(), "big")
