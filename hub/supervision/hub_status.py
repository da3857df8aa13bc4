"""The hub's own health on MQTT: a retained `vaka/v1/{site}/hub/status` per site a gateway or receiving centre can watch.

Each site gets a small connection of its own (client id `{client_id}-status-{site}`, the broker account of the same
name from `vaka mqtt credentials`), because a Last Will names one topic: on connect it publishes
`{"state": "online", "ts": …}` retained, QoS 1, and its Will is `{"state": "offline"}` retained, QoS 1, so a hub that
dies (SIGKILL, power, network) reads offline within the broker's keepalive (1.5 × `mqtt.keepalive_s`). A clean stop
publishes offline itself (a normal DISCONNECT makes the broker drop the Will). Online means the hub's process holds a
connection to the broker; it does not say that every path works (the canary and /readyz do, docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

import msgspec

from hub.intake.mqtt import Message, MqttConnection
from hub.metrics import Metrics
from hub.model import TOPIC_ROOT, NativeStatus
from hub.runtime.tasks import Spawner
from hub.settings import MqttSettings

logger = logging.getLogger(__name__)

STATUS_SUFFIX = "-status-"  # the status connection's client id and broker account: `{hub}-status-{site}`
OFFLINE = msgspec.json.encode({"state": "offline"})  # the Last Will: no time, it is written at connect


def hub_status_topic(site: str) -> str:
    """Where the hub says whether it serves `site`."""
    return f"{TOPIC_ROOT}/{site}/hub/status"


class HubStatus:
    """One status connection per site the hub serves; `set_sites` follows the inventory."""

    def __init__(self, settings: MqttSettings, metrics: Metrics, spawner: Spawner, now: Callable[[], datetime]) -> None:
        self._settings = settings
        self._metrics = metrics
        self._spawner = spawner
        self._now = now
        self._sites: dict[str, tuple[MqttConnection, asyncio.Task[None]]] = {}

    def set_sites(self, site_ids: Iterable[str]) -> None:
        """Start a status connection for each new site; a site no longer served says offline and is let go."""
        wanted = set(site_ids) if self._settings.hub_status else set()
        for site in sorted(wanted - self._sites.keys()):
            topic = hub_status_topic(site)
            conn = MqttConnection(
                self._settings,
                self._metrics,
                name=f"status-{site}",
                client_id=f"{self._settings.client_id}{STATUS_SUFFIX}{site}",
                subscriptions=[],
                on_message=_ignore,
                spawner=self._spawner,
                will=(topic, OFFLINE),
                on_connected=functools.partial(self._online, topic),
            )
            task = self._spawner.spawn(conn.run_loop(), name="vaka.mqtt.status", about=site)
            self._sites[site] = (conn, task)
        for site in sorted(self._sites.keys() - wanted):
            _, task = self._sites.pop(site)
            task.cancel()  # the connection's shutdown publishes its Will's offline
            logger.info("hub status: site %s no longer served, says offline", site)

    def _online(self, topic: str) -> None:
        entry = self._sites.get(topic.split("/")[2])
        if entry is None:
            return
        online = msgspec.json.encode(NativeStatus(state="online", ts=self._now()))
        entry[0].publish(topic, online, qos=1, retain=True)

    def connected(self, site: str) -> bool:
        """Whether the site's status connection is up (tests)."""
        entry = self._sites.get(site)
        return entry is not None and entry[0].connected

    async def aclose(self) -> None:
        """Say offline for every site and close the connections."""
        tasks = [task for _, task in self._sites.values()]
        self._sites.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)


def _ignore(_msg: Message) -> None:
    """A status connection subscribes to nothing."""
