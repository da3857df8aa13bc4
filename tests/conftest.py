"""Shared fixtures: the real PostgreSQL and Mosquitto on this machine, a clean schema and fresh topics per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from hub.metrics import Metrics
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings, MqttSettings, Settings

PG_DSN = os.environ.get("VAKA_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")
MQTT_HOST = os.environ.get("VAKA_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("VAKA_TEST_MQTT_PORT", "1883"))


@pytest.fixture
def metrics() -> Metrics:
    """Metrics in a fresh registry, so tests never see each other's counts."""
    return Metrics(CollectorRegistry())


@pytest.fixture
async def spawner(metrics: Metrics) -> AsyncIterator[Spawner]:
    """The owner of the background tasks of the components a test builds (hub/runtime/tasks.py); closed after them."""
    async with Spawner(metrics) as owner:
        yield owner


@pytest.fixture
def unique() -> str:
    """A short unique token for topics, sites, client ids and schemas."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def db_schema(unique: str) -> AsyncIterator[str]:
    """A fresh, empty schema in the shared test database; dropped after the test."""
    schema = f"t_{unique}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    yield schema
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
def db_settings(db_schema: str) -> DbSettings:
    """Database settings pointing at the test's own schema (as postgres, which also migrates as the owner)."""
    return DbSettings(dsn=PG_DSN, owner_dsn=PG_DSN, db_schema=db_schema)  # type: ignore[arg-type]


@pytest.fixture
def mqtt_settings(unique: str) -> MqttSettings:
    """Broker settings with a client id of the test's own; no retained hub status left on the shared broker by every
    test's hub (tests/hub/test_hub_status.py turns it on and clears it)."""
    return MqttSettings(host=MQTT_HOST, port=MQTT_PORT, client_id=f"vaka-test-{unique}", hub_status=False)


@pytest.fixture
def settings(db_settings: DbSettings, mqtt_settings: MqttSettings, tmp_path: os.PathLike[str]) -> Settings:
    """Complete settings for one test: own schema, own client id, own spool, any free HTTP port."""
    return Settings(
        db=db_settings,
        mqtt=mqtt_settings,
        spool={"directory": f"{tmp_path}/spool"},  # type: ignore[arg-type]
        http={"port": 0, "cookie_secure": False},  # type: ignore[arg-type]
    )


def dsn_as(role: str, dsn: str = PG_DSN) -> str:
    """`dsn` logging in as `role` instead (the test cluster trusts local connections)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


@dataclass(frozen=True)
class DbRoles:
    """Per-test roles: the schema's owner (no superuser), the hub's runtime role and a read-only role."""

    owner: str
    runtime: str
    readonly: str

    @property
    def owner_dsn(self) -> str:
        """Connection string as the owner."""
        return dsn_as(self.owner)

    @property
    def runtime_dsn(self) -> str:
        """Connection string as the runtime role."""
        return dsn_as(self.runtime)

    @property
    def readonly_dsn(self) -> str:
        """Connection string as the read-only role."""
        return dsn_as(self.readonly)


@pytest.fixture
async def db_roles(unique: str, db_schema: str) -> AsyncIterator[DbRoles]:
    """Three fresh login roles, none a superuser, the owner owning the test's schema; all dropped afterwards."""
    roles = DbRoles(owner=f"vaka_own_{unique}", runtime=f"vaka_rt_{unique}", readonly=f"vaka_ro_{unique}")
    conn = await asyncpg.connect(PG_DSN)
    try:
        for role in (roles.owner, roles.runtime, roles.readonly):
            await conn.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        await conn.execute(f"ALTER SCHEMA {db_schema} OWNER TO {roles.owner}")
    finally:
        await conn.close()
    yield roles
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {db_schema} CASCADE")
        for role in (roles.runtime, roles.readonly, roles.owner):
            await conn.execute(f"DROP OWNED BY {role}")
            await conn.execute(f"DROP ROLE {role}")
    finally:
        await conn.close()


_OWN_CODE = tuple(str(Path(__file__).resolve().parent.parent / pkg) for pkg in ("hub", "adapters", "alarms"))


def _own_tasks() -> list[asyncio.Task[object]]:
    """Unfinished tasks running Vaka's own code (library internals such as aiohttp's are theirs to manage)."""
    found = []
    for task in asyncio.all_tasks():
        if task is asyncio.current_task() or task.done():
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and code.co_filename.startswith(_OWN_CODE):
            found.append(task)
    return found


@pytest.fixture(autouse=True)
async def verify_cleanup() -> AsyncIterator[None]:
    """Fail a test that leaves Vaka's tasks running after its fixtures closed (as Home Assistant's test suite does):
    every background task has an owner that cancels and awaits it."""
    yield
    await asyncio.sleep(0)  # let tasks that were just cancelled finish
    leftover = _own_tasks()
    for task in leftover:
        task.cancel()
    if leftover:
        await asyncio.gather(*leftover, return_exceptions=True)
        names = sorted(f"{t.get_name()} ({t.get_coro().__qualname__})" for t in leftover)  # type: ignore[union-attr]
        pytest.fail(f"the test left {len(leftover)} task(s) running: {', '.join(names)}")
