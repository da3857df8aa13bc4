"""A PostgreSQL with the timescaledb package installed but not preloaded: `vaka migrate` falls back, it does not die.

This is the state right after installing the TimescaleDB package without tuning PostgreSQL. TimescaleDB answers
`CREATE EXTENSION` there with a FATAL that closes the connection; the hub must notice beforehand, warn once and use
native partitions.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

import asyncpg
import pytest

from hub.store import timescale
from tests.services import PrivatePostgres


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


async def vaka_migrate(dsn: str) -> Result:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub.cli",
        "migrate",
        env={**os.environ, "VAKA_DB__DSN": dsn},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return Result(int(proc.returncode or 0), out.decode(), err.decode())


@pytest.mark.parametrize(
    ("setting", "preloaded"),
    [
        ("", False),
        ("timescaledb", True),
        ("pg_stat_statements, timescaledb", True),
        ("'$libdir/timescaledb'", True),
        ('"timescaledb.so"', True),
        ("timescaledb_toolkit", False),
        ("pg_stat_statements", False),
    ],
)
def test_preload_setting_is_read_as_postgresql_lists_it(setting: str, preloaded: bool) -> None:
    assert timescale.is_preloaded(setting) is preloaded


async def test_migrate_falls_back_to_native_partitions_with_one_warning(private_postgres: PrivatePostgres) -> None:
    conn = await asyncpg.connect(private_postgres.dsn)
    try:
        available = await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")
        preload = await conn.fetchval("SELECT current_setting('shared_preload_libraries')")
    finally:
        await conn.close()
    if not available:
        pytest.skip("the timescaledb package is not installed in this PostgreSQL (nothing to fall back from)")
    assert "timescaledb" not in preload

    first = await vaka_migrate(private_postgres.dsn)
    assert first.returncode == 0, first.stderr
    assert "migrations applied" in first.stdout
    warnings = [line for line in first.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, first.stderr
    assert "shared_preload_libraries" in warnings[0]
    assert "native partitions" in warnings[0]
    assert "InterfaceError" not in first.stderr + first.stdout

    second = await vaka_migrate(private_postgres.dsn)
    assert second.returncode == 0, second.stderr
    assert "WARNING" not in second.stderr  # the choice is made once, when events is created

    conn = await asyncpg.connect(private_postgres.dsn)
    try:
        relkind = await conn.fetchval("SELECT relkind FROM pg_class WHERE relname = 'events'")
        extension = await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
    finally:
        await conn.close()
    assert relkind in (b"p", "p")  # natively partitioned
    assert extension == 0


async def test_an_owner_role_that_is_not_superuser_migrates_with_one_warning(
    private_postgres: PrivatePostgres,
) -> None:
    """A least-privilege owner may neither read shared_preload_libraries nor create the extension."""
    conn = await asyncpg.connect(private_postgres.dsn)
    try:
        if not await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"):
            pytest.skip("the timescaledb package is not installed in this PostgreSQL (nothing to fall back from)")
        await conn.execute("CREATE ROLE vaka_owner LOGIN")
        await conn.execute("CREATE DATABASE vaka OWNER vaka_owner")
    finally:
        await conn.close()
    dsn = private_postgres.dsn.replace("postgres@", "vaka_owner@").rsplit("/", 1)[0] + "/vaka"
    result = await vaka_migrate(dsn)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, result.stderr
    assert "native partitions" in warnings[0]
    assert "superuser" in warnings[0]
