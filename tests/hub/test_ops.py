"""What operations sees: health, readiness and metrics over HTTP, from a running hub."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiohttp
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hub.app import Hub
from hub.settings import Settings
from tests.conftest import MQTT_HOST, MQTT_PORT


def publish_one(topic: str, payload: bytes) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


async def test_health_readiness_and_metrics(settings: Settings, unique: str) -> None:
    async with Hub(settings) as hub, aiohttp.ClientSession(f"http://127.0.0.1:{hub.http_port}") as http:
        await hub.wait_connected()
        async with http.get("/healthz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "alive"
        async with http.get("/readyz") as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "ready", "database": "up", "broker": "connected", "store": "ok"}

        resident_device = f"dev{unique}"
        # a fall of now: one days old is old news and raises no live alarm (docs/reliability.md)
        body = json.dumps({"ts": datetime.now(UTC).isoformat(), "kind": "fall_detected", "ref": "r1"}).encode()
        await asyncio.to_thread(publish_one, f"vaka/v1/s{unique}/{resident_device}/event", body)
        for _ in range(200):  # the shared test broker may hold other tests' traffic ahead of ours
            async with http.get("/metrics") as resp:
                text = await resp.text()
            if "vaka_alarms_raised_total{" in text:
                break
            await asyncio.sleep(0.1)
        assert 'vaka_events_ingested_total{lane="event"}' in text
        assert 'vaka_alarms_raised_total{category="care",severity=' in text
        assert "vaka_database_up 1.0" in text
        # pseudonymity: no device or resident ids in metrics, only bounded label sets
        assert resident_device not in text
        assert unique not in text


async def test_readiness_says_not_ready_without_the_broker(settings: Settings) -> None:
    broken = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"port": 1})})
    async with Hub(broken) as hub, aiohttp.ClientSession(f"http://127.0.0.1:{hub.http_port}") as http:
        async with http.get("/readyz") as resp:
            assert resp.status == 503
            body = await resp.json()
        assert body["status"] == "not_ready"
        assert body["broker"] == "disconnected"
