"""Notification channels beyond the open staff page: Web Push, signed webhooks, SMS gateway.

Each channel is a Notifier. The Dispatcher hands every notification to each channel in its own task with a
deadline: a channel that fails or hangs is counted (`vaka_notifications_failed`) and logged, and never delays
the others or the desk. The staff page's WebSocket is not dispatched here: the desk writes to it synchronously.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hub.metrics import Metrics
from hub.model import VakaError
from hub.people.staff import StaffMember
from hub.runtime.tasks import Spawner

logger = logging.getLogger(__name__)

NotificationEvent = Literal["state", "escalation"]


class NotifyError(VakaError):
    """A channel could not deliver a notification."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing to tell people about an alarm. `id` is stable across retries: the idempotency key."""

    id: str
    event: NotificationEvent
    alarm: dict[str, Any]
    recipients: tuple[StaffMember, ...] = ()
    tier: int | None = None
    audience: str | None = None
    ring: bool = True
    phones: tuple[str, ...] = ()  # numbers beyond the recipients' own: the site's fallback when nobody was reached


class Notifier(Protocol):
    """A delivery channel."""

    channel: str

    def wants(self, notification: Notification) -> bool:
        """True when this channel should carry the notification."""
        ...

    async def send(self, notification: Notification) -> None:
        """Deliver, retrying as the channel sees fit; raise NotifyError (or anything) on failure."""
        ...


class Dispatcher:
    """Fans notifications out to channels, each in its own task with a deadline."""

    def __init__(
        self, notifiers: Sequence[Notifier], metrics: Metrics, *, spawner: Spawner, deadline_s: float = 60.0
    ) -> None:
        self.notifiers = list(notifiers)
        self._metrics = metrics
        self._spawner = spawner
        self._deadline_s = deadline_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._alarm_of: dict[asyncio.Task[None], str] = {}  # each delivery's alarm (the HA profile lets sites go)
        for notifier in self.notifiers:
            # each channel's series from the start: a dashboard reads 0, not "no data", before the first alarm
            metrics.notifications_sent.labels(notifier.channel)
            metrics.notifications_failed.labels(notifier.channel)

    def dispatch(self, notification: Notification) -> None:
        """Start delivery on every channel that wants it; returns at once."""
        for notifier in self.notifiers:
            try:
                wanted = notifier.wants(notification)
            except Exception:
                logger.exception("notify channel=%s wants() failed", notifier.channel)
                continue
            if wanted:
                task = self._spawner.spawn(
                    self._deliver(notifier, notification), name=f"vaka.notify.{notifier.channel}", about=notification.id
                )
                self._tasks.add(task)
                self._alarm_of[task] = str(notification.alarm.get("id"))
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._alarm_of.pop(task, None)

    def cancel(self, alarm_ids: Iterable[str]) -> int:
        """Stop the deliveries in flight for these alarms (another hub owns their site now); returns how many."""
        ids = set(alarm_ids)
        tasks = [task for task, alarm_id in self._alarm_of.items() if alarm_id in ids]
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def _deliver(self, notifier: Notifier, notification: Notification) -> None:
        try:
            async with asyncio.timeout(self._deadline_s):
                await notifier.send(notification)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._metrics.notifications_failed.labels(notifier.channel).inc()
            logger.warning(
                "notify failed channel=%s id=%s alarm=%s error=%s",
                notifier.channel,
                notification.id,
                notification.alarm.get("id"),
                str(exc)[:256] or type(exc).__name__,
            )
        else:
            self._metrics.notifications_sent.labels(notifier.channel).inc()

    async def drain(self) -> None:
        """Wait for deliveries in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel deliveries in flight, then close each channel's HTTP session."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for notifier in self.notifiers:
            close = getattr(notifier, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    logger.exception("notify channel=%s did not close", notifier.channel)
