"""The staff page channel: alarm changes pushed over WebSocket, each confirmed by a client receipt.

`publish()` is synchronous and only enqueues: the desk calls it inside `apply()`, so a raised alarm is on its way
to every open page of the unit before the desk returns. Each page has its own writer task and bounded queue: a slow
phone never delays the others (when its queue is full it is disconnected, and catches up on reconnect).

Per staff member the latest unconfirmed message of each alarm is kept; on (re)connect the page gets a snapshot of
its open alarms and then every unconfirmed message again, which it confirms one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.metrics import Metrics
from hub.staff import StaffMember

logger = logging.getLogger(__name__)

CHANNEL = "websocket"
_QUEUE_MAX = 1000
_CLOSED_PENDING_KEEP_S = 3600.0
_PING_S = 10.0  # the page declares the connection lost after ~2.5 pings of silence
_PING = '{"type":"ping"}'
_CLOSE_TIMEOUT_S = 1.0


class WebSocketLike(Protocol):
    """The part of aiohttp's WebSocketResponse the hub uses."""

    async def send_str(self, data: str, compress: int | None = None) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


@dataclass(slots=True)
class _Pending:
    version: int
    text: str
    created_s: float
    closed: bool


@dataclass(eq=False, slots=True)
class StaffClient:
    """One open staff page."""

    staff: StaffMember
    ws: WebSocketLike
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(_QUEUE_MAX))


class WebSocketHub:
    """Open staff pages and the messages they have not yet confirmed."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._clients: set[StaffClient] = set()
        self._pending: dict[int, dict[str, _Pending]] = {}

    @property
    def client_count(self) -> int:
        """Pages connected now."""
        return len(self._clients)

    def publish(
        self,
        alarm: dict[str, Any],
        version: int,
        closed: bool,
        staff: Iterable[StaffMember],
        *,
        sees: Callable[[StaffMember], bool] | None = None,
    ) -> list[StaffMember]:
        """Queue an alarm change for the pages of `staff` and of every connected person `sees` accepts (someone
        added since the directory was loaded); it is kept unconfirmed for them all. Returns whose open pages got it
        now (the caller logs that as a read of the resident's data)."""
        nid = f"{alarm['id']}:{version}"
        text = json.dumps({"type": "alarm", "nid": nid, "alarm": alarm}, separators=(",", ":"))
        now = asyncio.get_running_loop().time()
        entry = _Pending(version, text, now, closed)
        ids = set()
        for member in staff:
            ids.add(member.id)
            self._pending.setdefault(member.id, {})[alarm["id"]] = entry
        reached: list[StaffMember] = []
        for client in list(self._clients):
            member = client.staff
            if member.id not in ids and sees is not None and sees(member):
                ids.add(member.id)
                self._pending.setdefault(member.id, {})[alarm["id"]] = entry
            if member.id in ids:
                self._send(client, text)
                reached.append(member)
        return reached

    def _send(self, client: StaffClient, text: str) -> None:
        try:
            client.queue.put_nowait(text)
        except asyncio.QueueFull:
            logger.warning("staff page too slow, disconnecting staff=%s", client.staff.id)
            self._clients.discard(client)
            asyncio.get_running_loop().create_task(client.ws.close())

    def receipt(self, staff_id: int, nid: str) -> bool:
        """A page confirmed `nid` ("alarm_id:version"); True when it was pending."""
        alarm_id, _, version_text = nid.rpartition(":")
        pending = self._pending.get(staff_id)
        if not pending or not version_text.isdigit():
            return False
        entry = pending.get(alarm_id)
        if entry is None or entry.version != int(version_text):
            return False
        del pending[alarm_id]
        self._metrics.notifications_delivered.labels(CHANNEL).inc()
        self._metrics.notification_delivery_latency.labels(CHANNEL).observe(
            max(0.0, asyncio.get_running_loop().time() - entry.created_s)
        )
        return True

    def unconfirmed(self, staff_id: int) -> list[str]:
        """Messages `staff_id` has not confirmed, oldest first."""
        return [p.text for p in sorted(self._pending.get(staff_id, {}).values(), key=lambda p: p.created_s)]

    async def serve(self, staff: StaffMember, ws: WebSocketLike, alarms: list[dict[str, Any]]) -> StaffClient:
        """Register a page: queue its snapshot (`alarms`) and unconfirmed messages; `pump` is its writer."""
        client = StaffClient(staff, ws)
        client.queue.put_nowait(json.dumps({"type": "snapshot", "alarms": alarms}, separators=(",", ":")))
        for text in self.unconfirmed(staff.id):
            self._send(client, text)
        self._clients.add(client)
        self._metrics.websocket_clients.set(len(self._clients))
        return client

    async def pump(self, client: StaffClient) -> None:
        """Write queued messages to one page until it goes away (run as the page's writer task)."""
        try:
            while True:
                try:
                    text = await asyncio.wait_for(client.queue.get(), _PING_S)
                except TimeoutError:
                    text = _PING
                await client.ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            logger.info("staff page gone staff=%s reason=%s", client.staff.id, type(exc).__name__)
        finally:
            self.detach(client)

    def detach(self, client: StaffClient) -> None:
        """Forget a page that has closed."""
        self._clients.discard(client)
        self._metrics.websocket_clients.set(len(self._clients))

    def prune(self) -> None:
        """Drop unconfirmed messages of long-closed alarms (people who never came back)."""
        with contextlib.suppress(RuntimeError):
            now = asyncio.get_running_loop().time()
            for pending in self._pending.values():
                for alarm_id in [
                    a for a, p in pending.items() if p.closed and now - p.created_s > _CLOSED_PENDING_KEEP_S
                ]:
                    del pending[alarm_id]

    async def aclose(self) -> None:
        """Close every page (shutdown): all at once, none waited for longer than a second."""
        clients = list(self._clients)
        self._clients.clear()

        async def close(ws: WebSocketLike) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), _CLOSE_TIMEOUT_S)

        await asyncio.gather(*(close(c.ws) for c in clients))
