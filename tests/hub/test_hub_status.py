"""The hub's retained `vaka/v1/{site}/hub/status`: online while it runs, offline when it stops (its Last Will when it
dies: tests/hub/test_vendor_corpus.py kills `vaka serve`), for every site it serves, also one added while it runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest

from adapters import native
from hub.app import Hub
from hub.model import Device, Inventory, NativeStatus, PayloadError, Site
from hub.settings import Settings
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from tests.conftest import PG_DSN
from tests.hub.scaip.test_receiver import wait_until as until
from tests.hub.test_ingest import native_event, publish_all, wait_for_count
from tests.hub.test_vendor_corpus import Watcher


async def load_sites(settings: Settings, *sites: str) -> None:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": settings.db.db_schema})
    try:
        await migrate(conn, settings.db)
        inventory = Inventory(sites=[Site(id=s, devices=[Device(id=f"d{s}", kind="door")]) for s in sites])
        await load_inventory(conn, inventory)
    finally:
        await conn.close()


async def test_the_hub_says_online_for_each_site_and_offline_when_it_stops(settings: Settings, unique: str) -> None:
    first, second = f"a{unique}", f"b{unique}"
    desk = settings.desk.model_copy(update={"inventory_refresh_s": 1.0})
    settings = settings.model_copy(update={"desk": desk, "mqtt": settings.mqtt.model_copy(update={"hub_status": True})})
    await load_sites(settings, first)
    watchers = {site: await asyncio.to_thread(Watcher, site) for site in (first, second)}
    try:
        async with Hub(settings) as hub:
            await hub.wait_connected()
            assert await until(lambda: watchers[first].last_status() == "online")
            status = msgspec.json.decode(msgspec.json.encode(watchers[first].status[-1]), type=NativeStatus)
            assert status.ts is not None, "online says since when"
            # the hub hears its own status (vaka/v1/+/+/status matches it): no device's message, nothing refused
            await asyncio.to_thread(publish_all, [(f"vaka/v1/{first}/d{first}/event", native_event(1, "motion"))])
            assert await wait_for_count(settings.db.db_schema, "SELECT count(*) FROM events", 1) == 1
            refused = "SELECT count(*) FROM rejected_messages WHERE topic LIKE '%/hub/status'"
            assert await wait_for_count(settings.db.db_schema, refused, 0) == 0
            # a site added to the inventory while the hub runs gets its status too
            await load_sites(settings, first, second)
            assert await until(lambda: watchers[second].last_status() == "online")
        # a clean stop: the hub says offline itself (a normal disconnect makes the broker drop the Will)
        assert await until(lambda: all(w.last_status() == "offline" for w in watchers.values()))
    finally:
        for site, watcher in watchers.items():
            watcher.clear_retained(site)
            watcher.close()


def test_the_hubs_own_status_is_no_device_message() -> None:
    assert native.parse("vaka/v1/s1/hub/status", b'{"state":"online"}', datetime.now(UTC)) == []
    with pytest.raises(PayloadError, match="bad_topic"):  # a device calling itself hub is still refused
        native.parse("vaka/v1/s1/hub/event", b'{"ts":"2026-11-29T03:00:00Z","kind":"motion"}', datetime.now(UTC))
