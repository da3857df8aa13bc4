"""The rule engine's snapshot (pending timers, windows), saved so a restart resumes where it stopped."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

_encoder = msgspec.json.Encoder()


async def save_engine_state(conn: asyncpg.Connection, snapshot: dict[str, Any] | bytes) -> None:
    """Replace the saved snapshot: a JSON-encodable dict, or its JSON encoding (the hub encodes once for disk and DB)."""
    await conn.execute(
        """
        INSERT INTO engine_state (id, saved_at, snapshot) VALUES (1, now(), $1::jsonb)
        ON CONFLICT (id) DO UPDATE SET saved_at = EXCLUDED.saved_at, snapshot = EXCLUDED.snapshot
        """,
        (snapshot if isinstance(snapshot, bytes) else _encoder.encode(snapshot)).decode(),
    )


async def load_engine_state(conn: asyncpg.Connection) -> dict[str, Any] | None:
    """The last saved snapshot, or None when nothing was saved yet."""
    text = await conn.fetchval("SELECT snapshot::text FROM engine_state WHERE id = 1")
    if text is None:
        return None
    value = msgspec.json.decode(text)
    if not isinstance(value, dict):
        return None
    return value
