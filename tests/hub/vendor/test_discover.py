"""`vaka site discover --zigbee2mqtt` turns the bridge's retained device list into inventory YAML that loads."""

from __future__ import annotations

import asyncio
import os

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from hub.cli import main
from hub.model import Inventory
from tests.adapters.support import fixture
from tests.conftest import MQTT_HOST, MQTT_PORT


def publish_retained(topic: str, payload: bytes) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture(autouse=True)
def broker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAKA_MQTT__HOST", MQTT_HOST)
    monkeypatch.setenv("VAKA_MQTT__PORT", str(MQTT_PORT))
    monkeypatch.delenv("VAKA_CONFIG", raising=False)
    os.environ.pop("VAKA_CONFIG", None)


async def test_discover_prints_reviewable_inventory_yaml_that_loads(
    unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = f"z2m_{unique}"
    await asyncio.to_thread(publish_retained, f"{base}/bridge/devices", fixture("zigbee2mqtt", "bridge_devices.json"))
    try:
        argv = ["site", "discover", "--zigbee2mqtt", "--base-topic", base, "--site", "lgh12", "--timeout-s", "5"]
        assert await asyncio.to_thread(main, argv) == 0
    finally:
        await asyncio.to_thread(publish_retained, f"{base}/bridge/devices", b"")
    out = capsys.readouterr().out
    assert "# lgh 12/trygghetsknapp: Tuya TS0215A_sos SOS button" in out
    inventory = Inventory.model_validate(yaml.safe_load(out))
    [site] = inventory.sites
    assert site.id == "lgh12"
    kinds = {d.id: (d.kind, d.safety) for d in site.devices}
    assert kinds["lgh_12_trygghetsknapp"] == ("alarm_button", True)
    assert kinds["lgh_12_hall_ytterdorr"] == ("door_entrance", False)
    assert len(kinds) == 5, "the coordinator is not a device"


async def test_discover_without_a_bridge_says_what_to_check(unique: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["site", "discover", "--zigbee2mqtt", "--base-topic", f"none_{unique}", "--timeout-s", "0.5"]
    assert await asyncio.to_thread(main, argv) == 1
    assert "is Zigbee2MQTT running with this base topic" in capsys.readouterr().err
