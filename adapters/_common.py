"""Small helpers the vendor adapters share: device ids from vendor names, vendor timestamps, JSON objects."""

from __future__ import annotations

import functools
import hashlib
import math
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

import msgspec

from hub.model import MAX_PAYLOAD_BYTES, PayloadError, check_event_time

_NOT_ID = re.compile(r"[^A-Za-z0-9_.\-]+")
_MAX_ID = 64
_json = msgspec.json.Decoder()


@functools.lru_cache(maxsize=8192)
def device_id_from_name(name: str) -> str:
    """A stable inventory id for a vendor's device name: `Kök/dörr 1` → `Kok_dorr_1`.

    Vendor names may hold `/`, spaces and letters outside ASCII; inventory ids may not. The same name always gives
    the same id (so `vaka site discover` and the adapter agree); a name longer than 64 characters keeps a hash tail.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _NOT_ID.sub("_", ascii_name).strip("_.-") or "device"
    if len(slug) > _MAX_ID:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        slug = f"{slug[: _MAX_ID - 9]}-{digest}"
    return slug


def device_message(topic: str, payload: bytes) -> tuple[str, dict[str, Any]]:
    """A vendor message on `{prefix}/{device}/{channel}`: its device id (the payload's `deviceId` wins over the topic's
    segment, made an id by `device_id_from_name`) and its JSON object; PayloadError for a bad topic or device."""
    parts = topic.split("/")
    if len(parts) < 3 or not parts[-2]:
        raise PayloadError("bad_topic", topic[:128])
    msg = json_object(payload)
    device = msg.get("deviceId", parts[-2])
    if not isinstance(device, str) or not device:
        raise PayloadError("missing_field", "deviceId")
    return device_id_from_name(device), msg


def json_object(payload: bytes) -> dict[str, Any]:
    """Decode a JSON object, or raise PayloadError (invalid_json, not_an_object, payload_too_large)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("payload_too_large", f"{len(payload)} bytes")
    try:
        data = _json.decode(payload)
    except msgspec.DecodeError as exc:
        raise PayloadError("invalid_json", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise PayloadError("not_an_object", type(data).__name__)
    return data


def epoch_time(value: Any, received_at: datetime, *, millis: bool = False) -> datetime:
    """A vendor's epoch timestamp (seconds, or milliseconds) as an aware UTC datetime, checked like native ones."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError("invalid_timestamp", repr(value)[:64])
    seconds = value / 1000.0 if millis else float(value)
    try:
        ts = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise PayloadError("absurd_timestamp", repr(value)[:64]) from None
    return check_event_time(ts, received_at)


def iso_time(value: Any, received_at: datetime) -> datetime:
    """An ISO 8601 timestamp with an offset, checked like native ones."""
    if not isinstance(value, str):
        raise PayloadError("invalid_timestamp", repr(value)[:64])
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError("invalid_timestamp", value[:64]) from None
    return check_event_time(ts, received_at)


def number(value: Any) -> float | None:
    """A finite number, or None for anything else (booleans included)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
