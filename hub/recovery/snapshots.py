"""Local copies that let the hub restart while the database is away: the engine snapshot and the inventory.

Both are written atomically (temp file, fsync, rename) into the spool directory. The engine snapshot is what keeps
an absence or sequence window alive across a restart, so the local copy is preferred over the database's.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

import msgspec
from pydantic import TypeAdapter, ValidationError

from alarms.engine import Engine
from hub.model import Site
from hub.store.files import write_whole

logger = logging.getLogger(__name__)

ENGINE_FILE = "engine_state.json"
INVENTORY_FILE = "inventory.json"
_sites_adapter = TypeAdapter(list[Site])


def take(engine: Engine, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The snapshot as a dict that shares nothing mutable with the engine: take it where `feed` runs (the loop), then
    `encode` it anywhere."""
    snapshot = engine.snapshot()
    if extra:
        snapshot.update(extra)
    return snapshot


_FEW = 64  # a dict with at most this many keys is structure (the snapshot, its rules, a rule's parts): walked into
_CHUNK = 2_000  # entries of a larger dict or list encoded per call


def encode(snapshot: dict[str, Any]) -> bytes:
    """`snapshot` as JSON, identical in meaning to `msgspec.json.encode(snapshot)`, but as many small encoder calls.

    At 5,000 residents the snapshot is some 20 MB of JSON; one msgspec call for it holds the GIL for 40–100 ms, and
    in a thread the event loop waits as long as on the loop. Between calls of at most a few thousand entries a
    thread gives the GIL back within the interpreter's switch interval (5 ms), so the hub encodes in a worker
    thread (`asyncio.to_thread(encode, take(...))`) while alarms go on. A fresh encoder per call: nothing shared
    between threads."""
    encoder = msgspec.json.Encoder()
    out: list[bytes] = []
    _emit(snapshot, out, encoder)
    return b"".join(out)


def _emit(value: Any, out: list[bytes], encoder: msgspec.json.Encoder) -> None:
    if isinstance(value, dict) and len(value) <= _FEW:
        out.append(b"{")
        for i, (key, item) in enumerate(value.items()):
            out.append(encoder.encode(str(key)) + b":" if i == 0 else b"," + encoder.encode(str(key)) + b":")
            _emit(item, out, encoder)
        out.append(b"}")
    elif isinstance(value, dict):
        out.append(b"{")
        items = iter(value.items())
        first = True
        while chunk := dict(itertools.islice(items, _CHUNK)):
            body = encoder.encode(chunk)[1:-1]
            out.append(body if first else b"," + body)
            first = False
        out.append(b"}")
    elif isinstance(value, list | tuple) and len(value) > _CHUNK:
        out.append(b"[")
        for start in range(0, len(value), _CHUNK):
            body = encoder.encode(value[start : start + _CHUNK])[1:-1]
            out.append(body if start == 0 else b"," + body)
        out.append(b"]")
    else:
        out.append(encoder.encode(value))


def save_local(directory: Path, snapshot_json: bytes) -> None:
    """Write an encoded engine snapshot next to the spool (blocking: run it in a thread)."""
    write_whole(directory / ENGINE_FILE, snapshot_json)


def load_local(directory: Path) -> dict[str, Any] | None:
    """The last locally saved engine snapshot, or None."""
    path = directory / ENGINE_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("local engine snapshot %s unreadable (%s): starting from the database's", path, exc)
        return None
    return data


def save_inventory(directory: Path, sites: list[Site]) -> None:
    """Cache the inventory for a start with the database away."""
    write_whole(directory / INVENTORY_FILE, _sites_adapter.dump_json(sites))


def load_inventory(directory: Path) -> list[Site]:
    """The cached inventory, or an empty one (alarms then go out as from unregistered devices)."""
    try:
        return _sites_adapter.validate_json((directory / INVENTORY_FILE).read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, ValidationError) as exc:
        logger.warning("cached inventory unreadable (%s)", exc)
        return []


PROFILES_FILE = "rule_profiles.json"


def save_profiles(directory: Path, profiles: dict[str, str]) -> None:
    """Cache the residents' rule profile names (resident id -> profile) with the inventory."""
    write_whole(directory / PROFILES_FILE, json.dumps(profiles, sort_keys=True).encode())


def load_profiles(directory: Path) -> dict[str, str]:
    """The cached rule profile names, or none (every resident then gets the pack's values until the database answers)."""
    try:
        data = json.loads((directory / PROFILES_FILE).read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("cached rule profiles unreadable (%s)", exc)
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
