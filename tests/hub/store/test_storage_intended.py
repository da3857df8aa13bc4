"""`db.storage = timescaledb`: a hub meant for TimescaleDB refuses plain PostgreSQL instead of quietly using it.

Runs on the test cluster (PostgreSQL without TimescaleDB). A database where events would be, or already is, a native
partitioned table is refused by `vaka migrate` (before it creates anything) and by `vaka serve` at start, with a
message that says what to do; `auto` keeps the fallback.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import pytest

from hub.app import Hub
from hub.settings import DbSettings, Settings
from hub.store.migrate import StorageError, migrate, storage_mode
from tests.conftest import PG_DSN


async def tables_in(schema: str) -> list[str]:
    conn = await asyncpg.connect(PG_DSN)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    finally:
        await conn.close()
    return [r["tablename"] for r in rows]


async def test_vaka_migrate_refuses_plain_postgresql_and_creates_nothing(db_schema: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAKA_")}
    env.update(VAKA_DB__DSN=PG_DSN, VAKA_DB__DB_SCHEMA=db_schema, VAKA_DB__STORAGE="timescaledb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "migrate", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    text = (out + err).decode()
    assert proc.returncode != 0, text
    assert "db.storage is timescaledb but this database has no timescaledb extension" in text
    assert "CREATE EXTENSION timescaledb" in text
    assert await tables_in(db_schema) == []


async def test_auto_still_falls_back_to_native_partitions(db_settings: DbSettings) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await migrate(conn, db_settings)
        assert await storage_mode(conn, db_settings.db_schema) == "native"
    finally:
        await conn.close()


async def test_the_hub_refuses_to_start_on_native_events_when_timescaledb_is_intended(settings: Settings) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await migrate(conn, settings.db)  # auto: native partitions, as a stack without TimescaleDB made them
    finally:
        await conn.close()
    intended = settings.model_copy(update={"db": settings.db.model_copy(update={"storage": "timescaledb"})})
    with pytest.raises(StorageError, match="is a native partitioned table"):
        async with Hub(intended):
            pass
