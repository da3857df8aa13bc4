"""Web Push with VAPID (pywebpush), so a locked phone rings for an escalated alarm.

Subscriptions are kept in `push_subscriptions` and cached in memory, so a push goes out even while the database is
away. A subscription the push service
reports gone (404/410) is removed. Pushes go out with pywebpush's aiohttp sender, concurrently.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush_async

from hub.notify import Notification, NotifyError
from hub.notify.http import ChannelSession
from hub.notify.push_guard import PushEndpointError, check_endpoint, check_subscription_endpoint, guarded_session
from hub.settings import NotifySettings

if TYPE_CHECKING:
    from hub.store.pool import Database

logger = logging.getLogger(__name__)

_TTL_S = 300


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A browser's push endpoint and its encryption keys."""

    endpoint: str
    p256dh: str
    auth: str

    def info(self) -> dict[str, Any]:
        """The subscription in the shape pywebpush takes."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


def load_vapid_key(settings: NotifySettings) -> Vapid | None:
    """The VAPID key from the settings (PEM file, PEM text or base64url), or None when push is not configured."""
    if settings.vapid_private_key_file is not None:
        return Vapid.from_file(str(settings.vapid_private_key_file))
    if settings.vapid_private_key is not None:
        text = settings.vapid_private_key.get_secret_value().strip()
        if text.startswith("-----BEGIN"):
            return Vapid.from_pem(text.encode())
        return Vapid.from_string(text)
    return None


def application_server_key(vapid: Vapid) -> str:
    """The public key a browser needs to subscribe (base64url, uncompressed P-256 point)."""
    raw = vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def push_payload(notification: Notification) -> str:
    """What the service worker shows: no names, the alarm kind, resident pseudonym and a link."""
    a = notification.alarm
    return json.dumps(
        {
            "alarm_id": a["id"],
            "rule_id": a["rule_id"],
            "severity": a["severity"],
            "resident_id": a.get("resident_id"),
            "unregistered": bool(a.get("unregistered")),
            "tier": notification.tier,
            "url": "/staff/",
        }
    )


class WebPushNotifier:
    """Pushes escalations to every subscribed browser of the recipients."""

    channel = "webpush"

    def __init__(self, settings: NotifySettings, vapid: Vapid, db: Database) -> None:
        self._settings = settings
        self.vapid = vapid
        self._db = db
        self._subs: dict[int, dict[str, PushSubscription]] = {}
        self._loaded = False
        # one session for the channel, its connections reaching only allowed addresses (each connect re-checked)
        self.http = ChannelSession(
            10.0, factory=lambda: guarded_session(settings, timeout=aiohttp.ClientTimeout(total=10))
        )

    async def aclose(self) -> None:
        """Close the channel's HTTP session."""
        await self.http.aclose()

    @property
    def public_key(self) -> str:
        """The application server key for `pushManager.subscribe`."""
        return application_server_key(self.vapid)

    def wants(self, notification: Notification) -> bool:
        """Escalations (including the first tier) to people with a subscription."""
        return notification.event == "escalation" and bool(notification.recipients)

    async def subscribe(self, staff_id: int, sub: PushSubscription) -> bool:
        """Store a browser's subscription for a staff member (its endpoint checked by hub.notify.push_guard first).

        An endpoint belongs to whoever registered it: False, and nothing changes, when it is someone else's.
        """
        await check_subscription_endpoint(sub.endpoint, self._settings)
        async with self._db.acquire() as conn:
            owner = await conn.fetchval(
                "INSERT INTO push_subscriptions (endpoint, staff_id, p256dh, auth) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (endpoint) DO UPDATE SET p256dh = $3, auth = $4"
                " WHERE push_subscriptions.staff_id = $2 RETURNING staff_id",
                sub.endpoint,
                staff_id,
                sub.p256dh,
                sub.auth,
            )
        if owner != staff_id:
            logger.warning(
                "web push subscription refused: endpoint registered to another staff member staff=%s", staff_id
            )
            return False
        self._subs.setdefault(staff_id, {})[sub.endpoint] = sub
        return True

    async def _load(self) -> None:
        if self._loaded:
            return
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncio.TimeoutError):
            async with self._db.acquire() as conn:
                rows = await conn.fetch("SELECT endpoint, staff_id, p256dh, auth FROM push_subscriptions")
            for r in rows:
                self._subs.setdefault(r["staff_id"], {})[r["endpoint"]] = PushSubscription(
                    r["endpoint"], r["p256dh"], r["auth"]
                )
            self._loaded = True

    async def send(self, notification: Notification) -> None:
        """Push to every subscription of every recipient; NotifyError when any push failed."""
        await self._load()
        subs = [(r.id, s) for r in notification.recipients for s in self._subs.get(r.id, {}).values()]
        if not subs:
            return
        data = push_payload(notification)
        session = self.http.get()
        results = await asyncio.gather(*(self._push(session, s, data) for _, s in subs))
        for (staff_id, sub), status in zip(subs, results, strict=True):
            if status in (404, 410):
                await self._forget(staff_id, sub)
        failed = sum(1 for status in results if status != 0)
        if failed:
            msg = f"web push failed for {failed} of {len(results)} subscriptions"
            raise NotifyError(msg)

    async def _push(self, session: aiohttp.ClientSession, sub: PushSubscription, data: str) -> int:
        try:
            check_endpoint(sub.endpoint, self._settings)  # the allow-list may have changed since it subscribed
        except PushEndpointError as exc:
            logger.warning("web push skipped: %s", exc)
            return -1
        try:
            await webpush_async(
                sub.info(),
                data,
                vapid_private_key=self.vapid,
                vapid_claims={"sub": self._settings.vapid_subject},
                timeout=10,
                ttl=_TTL_S,
                headers={"Urgency": "high"},
                aiohttp_session=session,
            )
        except WebPushException as exc:
            response = exc.response
            status = getattr(response, "status", None) or getattr(response, "status_code", None) or -1
            logger.info("web push refused status=%s", status)
            return int(status)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            logger.info("web push error=%s", type(exc).__name__)
            return -1
        return 0

    async def _forget(self, staff_id: int, sub: PushSubscription) -> None:
        self._subs.get(staff_id, {}).pop(sub.endpoint, None)
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncio.TimeoutError):
            async with self._db.acquire() as conn:
                await conn.execute("DELETE FROM push_subscriptions WHERE endpoint = $1", sub.endpoint)
