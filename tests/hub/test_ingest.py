"""Events flow from MQTT into PostgreSQL exactly once; anything else is set aside with a reason, never a crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from alarms.directory import Directory
from alarms.engine import Engine
from alarms.rules import default_pack_path, load_rules
from hub.app import Hub
from hub.intake.ingest import Ingest
from hub.metrics import Metrics
from hub.model import AlarmDecision, EventKind
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings, Settings, SpoolSettings
from hub.store.db import Database
from hub.store.migrate import migrate
from hub.store.spool import Spool
from hub.store.writer import Writer
from tests.conftest import MQTT_HOST, MQTT_PORT, PG_DSN


def publish_all(messages: list[tuple[str, bytes]]) -> None:
    """Publish with QoS 1 and wait until the broker has acknowledged every one (run in a thread)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.max_inflight_messages_set(200)
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=30)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


async def count(conn: asyncpg.Connection, sql: str, *args: object) -> int:
    value = await conn.fetchval(sql, *args)
    return int(value)


async def wait_for_count(schema: str, sql: str, expected: int, *args: object, timeout_s: float = 20.0) -> int:
    """Poll until `sql` counts `expected` (or the timeout); return the last count."""
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            n = await count(conn, sql, *args)
            if n >= expected or asyncio.get_running_loop().time() > deadline:
                return n
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


def native_event(i: int, kind: str = "temperature") -> bytes:
    ts = datetime(2026, 11, 26, 2, 0, tzinfo=UTC) + timedelta(seconds=i)
    return json.dumps({"ts": ts.isoformat(), "kind": kind, "value": 20.5, "unit": "Cel", "seq": i}).encode()


async def test_events_land_once_however_often_the_broker_delivers_them(settings: Settings, unique: str) -> None:
    n = 500
    site = f"s{unique}"
    messages = [(f"vaka/v1/{site}/d{i % 7}/event", native_event(i)) for i in range(n)]
    async with Hub(settings) as hub:
        await hub.wait_connected()
        await asyncio.to_thread(publish_all, messages)
        stored = await wait_for_count(settings.db.db_schema, "SELECT count(*) FROM events WHERE site = $1", n, site)
        assert stored == n
        await asyncio.to_thread(publish_all, messages)  # the same events again, as a re-delivery would
        await asyncio.to_thread(publish_all, [(f"vaka/v1/{site}/marker/event", native_event(0, "motion"))])
        await wait_for_count(
            settings.db.db_schema, "SELECT count(*) FROM events WHERE device_id = 'marker' AND site = $1", 1, site
        )
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": settings.db.db_schema})
    try:
        assert await count(conn, "SELECT count(*) FROM events WHERE site = $1 AND device_id <> 'marker'", site) == n
    finally:
        await conn.close()


async def test_garbage_is_set_aside_with_a_reason_and_the_hub_keeps_going(settings: Settings, unique: str) -> None:
    site = f"s{unique}"
    garbage = [
        (f"vaka/v1/{site}/d1/event", b"\xff\xfe not json"),
        (f"vaka/v1/{site}/d1/event", b'{"ts": "2026-11-26T03:00:00", "kind": "fall_detected"}'),  # no offset
        (f"vaka/v1/{site}/d1/event", b'{"ts": "1970-01-01T00:00:00Z", "kind": "motion"}'),
        (f"vaka/v1/{site}/d1/event", b'{"ts": "2026-11-26T03:00:00Z", "kind": "teleport"}'),
        (f"vaka/v1/{site}/d1/event", b"x" * 70_000),
    ]
    async with Hub(settings) as hub:
        await hub.wait_connected()
        await asyncio.to_thread(publish_all, [*garbage, (f"vaka/v1/{site}/d1/event", native_event(1))])
        rejected = await wait_for_count(
            settings.db.db_schema, "SELECT count(*) FROM rejected_messages WHERE topic LIKE $1", 5, f"%/{site}/%"
        )
        stored = await wait_for_count(settings.db.db_schema, "SELECT count(*) FROM events WHERE site = $1", 1, site)
        assert (rejected, stored) == (5, 1)
        conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": settings.db.db_schema})
        try:
            reasons = {r["reason"].split(":")[0] for r in await conn.fetch("SELECT reason FROM rejected_messages")}
            sizes = [r["n"] for r in await conn.fetch("SELECT octet_length(payload) AS n FROM rejected_messages")]
        finally:
            await conn.close()
        assert reasons == {"invalid_json", "naive_timestamp", "absurd_timestamp", "invalid_event", "payload_too_large"}
        assert max(sizes) == 4096
        # counted for operations too (the shared test broker may carry other tests' traffic: at least ours)
        assert hub.metrics.messages_rejected.labels("payload_too_large")._value.get() >= 1


# --- property: whatever arrives, ingest never raises and every message is either stored or rejected ----------------


@dataclass
class FakeMessage:
    """A received message as hub.intake.mqtt delivers it; `acked` records the PUBACK the broker would get."""

    topic: str
    payload: bytes
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    acked: int = 0

    def ack(self) -> None:
        self.acked += 1


@dataclass
class Store:
    writer: Writer
    db: Database


@pytest.fixture
async def store(db_settings: DbSettings, metrics: Metrics, tmp_path: object, spawner: Spawner) -> AsyncIterator[Store]:
    db = Database(db_settings, metrics, spawner=spawner)
    await db.open()
    async with db.acquire() as conn:
        await migrate(conn, db_settings)
    spool = Spool(SpoolSettings(directory=f"{tmp_path}/spool"), metrics, spawner=spawner)  # type: ignore[arg-type]
    await spool.open()
    writer = Writer(db, spool, db_settings, metrics, spawner=spawner)
    task = asyncio.create_task(writer.run_loop(), name="vaka.writer")
    yield Store(writer, db)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await spool.close()
    await db.close()


topics = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda site, dev, ch: f"vaka/v1/{site}/{dev}/{ch}",
        st.text(min_size=1, max_size=12),
        st.text(min_size=1, max_size=12),
        st.sampled_from(["event", "telemetry", "status", "other"]),
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
near_valid = st.fixed_dictionaries(
    {
        "ts": st.one_of(
            st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()), st.text(max_size=30), st.integers()
        ),
        "kind": st.one_of(st.sampled_from([k.value for k in EventKind]), st.text(max_size=10)),
    },
    optional={
        "value": json_values,
        "seq": st.integers(),
        "attrs": json_values,
        "ref": json_values,
        "unit": json_values,
    },
).map(lambda d: json.dumps(d).encode())
payloads = st.one_of(st.binary(max_size=300), near_valid, json_values.map(lambda v: json.dumps(v).encode()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.tuples(topics, payloads), min_size=1, max_size=8))
async def test_any_topic_and_payload_is_stored_or_rejected_never_a_crash(
    batch: list[tuple[str, bytes]], store: Store, metrics: Metrics
) -> None:
    decisions: list[AlarmDecision] = []
    engine = Engine(load_rules([default_pack_path()]), Directory())
    ingest = Ingest(metrics, store.writer, alarm_lane=lambda ev: decisions.extend(engine.feed(ev, datetime.now(UTC))))
    base = datetime.now(UTC)
    messages = [
        FakeMessage(topic, payload, base + timedelta(microseconds=i)) for i, (topic, payload) in enumerate(batch)
    ]
    for msg in messages:
        ingest.handle(msg)
    await store.writer.flush()
    # every message acknowledged exactly once, which the store does only once its events or its rejection are durable
    assert [m.acked for m in messages] == [1] * len(messages)
    rejected_counted = sum(s.value for s in metrics.messages_rejected.collect()[0].samples if s.name.endswith("_total"))
    async with store.db.acquire() as conn:
        assert await count(conn, "SELECT count(*) FROM rejected_messages") == rejected_counted


async def test_a_message_with_nothing_to_store_is_acknowledged_by_flush(store: Store, metrics: Metrics) -> None:
    # an emptied retained status (a device's status topic cleared) gives no event, and still gets its PUBACK
    ingest = Ingest(metrics, store.writer, alarm_lane=lambda ev: None)
    msg = FakeMessage("vaka/v1/s1/dev-1/status", b"")
    ingest.handle(msg)
    await store.writer.flush()
    assert msg.acked == 1
