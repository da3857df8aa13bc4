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
from hub.people.staff import StaffMember
from hub.runtime.tasks import Spawner

logger = logging.getLogger(__name__)

CHANNEL = "websocket"
_QUEUE_MAX = 1000
_CLOSED_PENDING_KEEP_S = 3600.0
_PING_S = 10.0  # the page declares the connection lost after ~2.5 pings of silence
_PING = '{"type":"ping"}'
_CLOSE_TIMEOUT_S = 1.0
SESSION_ENDED = 4401  # the page goes to the login form
STAFF_CHANGED = 4409  # the page reconnects and is served as the person is now
SITE_MOVED = 4410  # the HA profile: another hub holds a site of the page now; the page reconnects (to that hub)


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
    alarm: dict[str, Any]
    visible: Callable[[StaffMember], bool] | None = None


@dataclass(eq=False, slots=True)
class StaffClient:
    """One open staff page."""

    staff: StaffMember
    ws: WebSocketLike
    session_key: str = ""
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(_QUEUE_MAX))
    resent: list[dict[str, Any]] = field(default_factory=list)  # unconfirmed alarms sent again on connect


def _visible(entry: _Pending, staff: StaffMember) -> bool:
    return entry.visible is None or entry.visible(staff)


class WebSocketHub:
    """Open staff pages and the messages they have not yet confirmed."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        spawner: Spawner,
        session_alive: Callable[[str], bool] | None = None,
        clock_info: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._metrics = metrics
        # the staff pages' series from the start: a dashboard reads 0 delivered, not "no data"
        metrics.notifications_delivered.labels(CHANNEL)
        self._spawner = spawner
        self._clients: set[StaffClient] = set()
        self._pending: dict[int, dict[str, _Pending]] = {}
        # asked before every delivery: False when the page's session has ended (logout, expiry, revoked)
        self.session_alive = session_alive
        self._closing: set[asyncio.Task[Any]] = set()
        # the hub's time for the page ({"now": iso, "rate": speed}): sent with snapshots and pings, so "how long ago"
        # follows the hub's clock (a simulation's too), not the phone's
        self.clock_info = clock_info

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
        now (the caller logs that as a read of the resident's data).

        Each page is checked at delivery: its session must be alive and, when `sees` is given, its person (as of
        the last account change, see `staff_changed`) must see the alarm now; the directory may be older.
        """
        nid = f"{alarm['id']}:{version}"
        text = json.dumps({"type": "alarm", "nid": nid, "alarm": alarm}, separators=(",", ":"))
        now = asyncio.get_running_loop().time()
        entry = _Pending(version, text, now, closed, alarm, sees)
        ids = set()
        for member in staff:
            ids.add(member.id)
            self._pending.setdefault(member.id, {})[alarm["id"]] = entry
        reached: list[StaffMember] = []
        for client in list(self._clients):
            member = client.staff
            if not self._alive(client):
                continue
            if sees is not None and not sees(member):
                continue
            if sees is None and member.id not in ids:
                continue
            if member.id not in ids:
                ids.add(member.id)
                self._pending.setdefault(member.id, {})[alarm["id"]] = entry
            self._send(client, text)
            reached.append(member)
        return reached

    def _alive(self, client: StaffClient) -> bool:
        """False (and the page is being closed) when its session has ended."""
        if self.session_alive is None or self.session_alive(client.session_key):
            return True
        self.close_page(client, SESSION_ENDED, "session ended")
        return False

    def close_page(self, client: StaffClient, code: int, reason: str) -> None:
        """Stop delivering to one page at once and close its WebSocket with `code` (in the background)."""
        if client not in self._clients:
            return
        self._clients.discard(client)
        self._metrics.websocket_clients.set(len(self._clients))
        logger.info("staff page closed staff=%s code=%s reason=%s", client.staff.id, code, reason)

        async def close() -> None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await client.ws.close(code=code, message=reason.encode())

        task = self._spawner.spawn(close(), name="vaka.staff.ws.close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def close_ended_sessions(self) -> int:
        """Close every page whose session has ended (logout, idle expiry); returns how many."""
        return sum(1 for client in list(self._clients) if not self._alive(client))

    def staff_changed(self, staff_id: int, member: StaffMember | None) -> int:
        """An account changed: its pages close when it is gone or its units or role changed (the page reconnects
        and is served as the person is now), and what it no longer sees is dropped from its unconfirmed messages.
        Returns pages closed."""
        closed = 0
        for client in list(self._clients):
            if client.staff.id != staff_id:
                continue
            if member is None:
                self.close_page(client, SESSION_ENDED, "account ended")
                closed += 1
            elif member.units != client.staff.units or member.role != client.staff.role:
                self.close_page(client, STAFF_CHANGED, "units changed")
                closed += 1
            else:
                client.staff = member
        pending = self._pending.get(staff_id)
        if pending:
            for alarm_id in [a for a, p in pending.items() if member is None or not _visible(p, member)]:
                del pending[alarm_id]
        return closed

    def site_moved(self, site: str, alarm_ids: Iterable[str]) -> int:
        """Another hub holds `site` now (the HA profile): the pages of people who see it close, so they reconnect
        through the hubs' one address to the hub that does, and its alarms leave the unconfirmed messages here.
        Returns pages closed."""
        ids = set(alarm_ids)
        for pending in self._pending.values():
            for alarm_id in [a for a in pending if a in ids]:
                del pending[alarm_id]
        closed = 0
        for client in list(self._clients):
            if client.staff.sees(site, None):
                self.close_page(client, SITE_MOVED, "site moved to another hub")
                closed += 1
        return closed

    def _send(self, client: StaffClient, text: str) -> None:
        try:
            client.queue.put_nowait(text)
        except asyncio.QueueFull:
            logger.warning("staff page too slow, disconnecting staff=%s", client.staff.id)
            self._clients.discard(client)
            task = self._spawner.spawn(self._close(client.ws), name="vaka.staff.ws.close")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(ws: WebSocketLike) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await ws.close()

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

    async def serve(
        self, staff: StaffMember, ws: WebSocketLike, alarms: list[dict[str, Any]], session_key: str = ""
    ) -> StaffClient:
        """Register a page: queue its snapshot (`alarms`) and the unconfirmed messages it may still see (listed in
        `client.resent`: the caller logs them as reads); `pump` is its writer."""
        client = StaffClient(staff, ws, session_key)
        clock = self.clock_info() if self.clock_info else {}
        client.queue.put_nowait(json.dumps({"type": "snapshot", "alarms": alarms, **clock}, separators=(",", ":")))
        pending = self._pending.get(staff.id, {})
        for entry in sorted(pending.values(), key=lambda p: p.created_s):
            if _visible(entry, staff):
                self._send(client, entry.text)
                client.resent.append(entry.alarm)
        self._clients.add(client)
        self._metrics.websocket_clients.set(len(self._clients))
        return client

    async def pump(self, client: StaffClient) -> None:
        """Write queued messages to one page until it goes away (run as the page's writer task)."""
        try:
            while True:
                try:
                    async with asyncio.timeout(_PING_S):
                        text = await client.queue.get()
                except TimeoutError:
                    text = json.dumps({"type": "ping", **self.clock_info()}) if self.clock_info else _PING
                await client.ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            logger.info("staff page gone staff=%s reason=%s", client.staff.id, type(exc).__name__)
        finally:
            self.detach(client)

    def clock_changed(self) -> None:
        """The hub's clock changed its rate (a simulation ended, paused or sped up): every page gets the hub's time and
        rate now, not at its next ping, so its ages and clock do not run on at the old rate for up to 10 s."""
        if self.clock_info is None:
            return
        text = json.dumps({"type": "ping", **self.clock_info()}, separators=(",", ":"))
        for client in list(self._clients):
            self._send(client, text)

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
        await asyncio.gather(*(self._close(c.ws) for c in clients), *self._closing, return_exceptions=True)
