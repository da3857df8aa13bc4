"""Local copies that let the hub restart while the database is away: the engine snapshot and the inventory.

Both are written atomically (temp file, fsync, rename) into the spool directory. The engine snapshot is what keeps
an absence or sequence window alive across a restart, so the local copy is preferred over the database's.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import msgspec
from pydantic import TypeAdapter, ValidationError

from alarms.engine import Engine
from hub.model import Site

logger = logging.getLogger(__name__)

ENGINE_FILE = "engine_state.json"
INVENTORY_FILE = "inventory.json"
_sites_adapter = TypeAdapter(list[Site])
_encoder = msgspec.json.Encoder()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def encode_engine(engine: Engine, extra: dict[str, Any] | None = None) -> bytes:
    """The engine's snapshot as JSON, taken on the loop (msgspec: several times faster than json, and the GIL is
    held either way, so a slow encoder stalls the alarm path as much in a thread as on the loop).

    `extra` goes into the same document (the gate's marks and the replay point: hub/recovery.py), so engine and
    gate are always restored from the same instant."""
    snapshot = engine.snapshot()
    if extra:
        snapshot.update(extra)
    return _encoder.encode(snapshot)


def save_local(directory: Path, snapshot_json: bytes) -> None:
    """Write an encoded engine snapshot next to the spool (blocking: run it in a thread)."""
    _write_atomic(directory / ENGINE_FILE, snapshot_json)


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
    _write_atomic(directory / INVENTORY_FILE, _sites_adapter.dump_json(sites))


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
    _write_atomic(directory / PROFILES_FILE, json.dumps(profiles, sort_keys=True).encode())


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
