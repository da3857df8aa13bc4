"""`vaka vendor check` against simulated vendors on the real broker: a well-behaved one gets a clean report, a
misbehaving one has every defect found."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.cli import main
from hub.model import Device, Inventory, Site
from hub.settings import DbSettings
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from hub.vendor.conformance import CHECKS
from tests.conftest import MQTT_HOST, MQTT_PORT, PG_DSN

WINDOW = "14s"
INTERVAL_S = 10  # the inventory's floor; b2 dies 1.5 s in and is silent for the rest of the window


def device(client_id: str, will_topic: str | None = None) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    if will_topic is not None:
        client.will_set(will_topic, b'{"state": "offline"}', qos=1, retain=True)
    client.connect(MQTT_HOST, MQTT_PORT)
    client.loop_start()
    return client


def event(kind: str, seq: int, *, skew_s: float = 0, ref: str | None = None) -> bytes:
    body: dict[str, object] = {"ts": (datetime.now(UTC) + timedelta(seconds=skew_s)).isoformat(), "kind": kind}
    body["seq"] = seq
    if ref is not None:
        body["ref"] = ref
    return json.dumps(body).encode()


class Vendors:
    """Three devices of one site: g1 behaves; b1 breaks every payload rule; b2 dies without a Last Will."""

    def __init__(self, site: str, unique: str) -> None:
        self.root = f"vaka/v1/{site}"
        self.unique = unique
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=t, daemon=True) for t in (self.good, self.bad, self.dying)]

    def __enter__(self) -> Vendors:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def good(self) -> None:
        topic = f"{self.root}/g1"
        c = device(f"g1-{self.unique}", will_topic=f"{topic}/status")
        c.publish(f"{topic}/status", b'{"state": "online"}', qos=1, retain=True)
        seq = 0
        c.publish(f"{topic}/event", event("fall_detected", seq, ref="f1"), qos=1)
        while not self.stop.wait(0.5):
            seq += 1
            c.publish(f"{topic}/event", event("heartbeat", seq), qos=1)
            if seq == 4:
                seq += 1
                c.publish(f"{topic}/event", event("fall_finished", seq, ref="f1"), qos=1)
        c.publish(f"{topic}/status", b'{"state": "offline"}', qos=1, retain=True).wait_for_publish(5)
        c.disconnect()
        c.loop_stop()

    def bad(self) -> None:
        topic = f"{self.root}/b1"
        c = device(f"b1-{self.unique}")
        c.publish(f"{topic}/status", b'{"state": "online"}', qos=1, retain=False)  # not retained
        c.publish(f"{topic}/event", event("fall_detected", 1, skew_s=120, ref="x"), qos=1)  # never ends
        c.publish(f"{topic}/event", event("heartbeat", 2, skew_s=120), qos=0)  # QoS 0
        c.publish(f"{topic}/event", event("teleport", 3, skew_s=120), qos=1)  # undocumented kind
        c.publish(f"{topic}/event", b"{oops", qos=1)  # not JSON
        c.publish(f"{topic}/event", event("door_open", 4, skew_s=120), qos=1, retain=True)  # a retained event
        c.publish(f"{topic}/event", json.dumps({"ts": datetime.now(UTC).isoformat(), "kind": "alarm_button"}), qos=1)
        for n in range(300):  # a flood: 300 readings at once
            c.publish(f"{topic}/telemetry", event("temperature", 1000 + n, skew_s=120), qos=1)
        seq = 1300  # 5 … 999 are missing
        while not self.stop.wait(0.5):
            c.publish(f"{topic}/event", event("heartbeat", seq, skew_s=120), qos=1)
            if seq == 1301:
                c.publish(f"{topic}/event", event("heartbeat", seq, skew_s=121), qos=1)  # re-used seq
            seq += 1
        c.publish(f"{topic}/event", b"", qos=1, retain=True).wait_for_publish(5)  # the broker forgets it again
        c.disconnect()
        c.loop_stop()

    def dying(self) -> None:
        topic = f"{self.root}/b2"
        c = device(f"b2-{self.unique}")  # no Last Will
        c.publish(f"{topic}/status", b'{"state": "online"}', qos=1, retain=True)
        c.publish(f"{topic}/event", event("heartbeat", 0), qos=1).wait_for_publish(5)
        c.publish(f"{topic}/event", event("heartbeat", 1), qos=1).wait_for_publish(5)
        time.sleep(0.5)
        c.loop_stop()
        sock = c.socket()
        if sock is not None:
            sock.close()  # lost, not disconnected: the broker would publish a Will if there were one


@pytest.fixture
def site(unique: str) -> str:
    return f"s{unique}"


@pytest.fixture
async def inventory(db_settings: DbSettings, site: str) -> None:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": db_settings.db_schema})
    try:
        await migrate(conn, db_settings)
        devices = [Device(id=d, kind="fall_radar", supervision_interval_s=INTERVAL_S) for d in ("g1", "b1", "b2")]
        await load_inventory(conn, Inventory(sites=[Site(id=site, devices=devices)]))
    finally:
        await conn.close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, db_settings: DbSettings) -> None:
    monkeypatch.setenv("VAKA_MQTT__HOST", MQTT_HOST)
    monkeypatch.setenv("VAKA_MQTT__PORT", str(MQTT_PORT))
    monkeypatch.setenv("VAKA_DB__DSN", PG_DSN)
    monkeypatch.setenv("VAKA_DB__DB_SCHEMA", db_settings.db_schema)
    monkeypatch.delenv("VAKA_CONFIG", raising=False)


def report_of(directory: Path) -> tuple[dict[str, object], str]:
    [data] = directory.glob("*.json")
    [markdown] = directory.glob("*.md")
    return json.loads(data.read_text()), markdown.read_text()


@pytest.mark.slow
@pytest.mark.usefixtures("inventory", "env")
async def test_a_well_behaved_vendor_is_clean_and_a_misbehaving_one_has_every_defect_found(
    site: str, unique: str, tmp_path: Path
) -> None:
    good_dir, bad_dir = tmp_path / "good", tmp_path / "bad"
    argv = ["vendor", "check", "--site", site, "--duration", WINDOW]
    good = asyncio.create_task(asyncio.to_thread(main, [*argv, "--device-prefix", "g", "--out", str(good_dir)]))
    bad = asyncio.create_task(asyncio.to_thread(main, [*argv, "--device-prefix", "b", "--out", str(bad_dir)]))
    await asyncio.sleep(1.5)  # the checks subscribe first: a device's retained status is then seen as published
    with Vendors(site, unique):
        codes = await asyncio.gather(good, bad)
    assert codes == [0, 1]

    clean, clean_md = report_of(good_dir)
    assert clean["clean"] is True, clean["findings"]
    assert list(clean["devices"]) == ["g1"]  # type: ignore[call-overload]
    assert "No defects found" in clean_md

    found, found_md = report_of(bad_dir)
    devices = found["devices"]
    assert isinstance(devices, dict)
    assert set(devices) == {"b1", "b2"}
    failed = set(devices["b1"]["failed"]) | set(devices["b2"]["failed"])
    assert failed == set(CHECKS), f"missed: {set(CHECKS) - failed}"
    assert set(devices["b2"]["failed"]) == {"heartbeat", "last_will"}
    details = " ".join(f["detail"] for f in found["findings"])  # type: ignore[attr-defined]
    assert "teleport" in details
    assert "invalid_json" in details
    assert "seq number(s) missing" in details
    assert "re-used" in details
    assert "'x'" in details, "the fall without an end is named by its ref"
    assert "1 alarm_button event(s) without seq" in details
    assert re.search(r"published \d{3} messages within one second; the contract allows 10", details), details
    assert "1 message(s) on event published with the retain flag" in details
    assert "| `b1` |" in found_md
    assert "✗" in found_md
