"""Shared fixtures: the real PostgreSQL and Mosquitto on this machine, a clean schema and fresh topics per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from hub.metrics import Metrics
from hub.settings import DbSettings, MqttSettings, Settings

PG_DSN = os.environ.get("VAKA_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")
MQTT_HOST = os.environ.get("VAKA_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("VAKA_TEST_MQTT_PORT", "1883"))


@pytest.fixture
def metrics() -> Metrics:
    """Metrics in a fresh registry, so tests never see each other's counts."""
    return Metrics(CollectorRegistry())


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
    """Database settings pointing at the test's own schema."""
    return DbSettings(dsn=PG_DSN, db_schema=db_schema)  # type: ignore[arg-type]


@pytest.fixture
def mqtt_settings(unique: str) -> MqttSettings:
    """Broker settings with a client id of the test's own."""
    return MqttSettings(host=MQTT_HOST, port=MQTT_PORT, client_id=f"vaka-test-{unique}")


@pytest.fixture
def settings(db_settings: DbSettings, mqtt_settings: MqttSettings, tmp_path: os.PathLike[str]) -> Settings:
    """Complete settings for one test: own schema, own client id, own spool, any free HTTP port."""
    return Settings(
        db=db_settings,
        mqtt=mqtt_settings,
        spool={"directory": f"{tmp_path}/spool"},  # type: ignore[arg-type]
        http={"port": 0, "cookie_secure": False},  # type: ignore[arg-type]
    )
