"""Signed webhooks (Standard Webhooks) for alarm receivers and DECT gateways.

Each delivery carries `webhook-id` (the idempotency key: the same on every retry), `webhook-timestamp` (Unix
seconds) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 over `"{id}.{timestamp}.{body}"` with the secret that
follows `whsec_`). A 2xx answer is success; anything else is retried with exponential backoff.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import aiohttp

from hub.notify import Notification, NotifyError
from hub.notify.http import ChannelSession
from hub.runtime.backoff import Backoff
from hub.settings import NotifySettings

logger = logging.getLogger(__name__)


def webhook_secret_bytes(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (a secret without the prefix is used as UTF-8 text)."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one delivery."""
    mac = hmac.new(secret, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: bytes, headers: dict[str, str] | Any, body: bytes, *, tolerance_s: int = 300) -> bool:
    """True when the headers carry a valid, recent signature of `body` (receivers and tests use this)."""
    msg_id = headers.get("webhook-id", "")
    ts_text = headers.get("webhook-timestamp", "")
    if not msg_id or not ts_text.isdigit() or abs(time.time() - int(ts_text)) > tolerance_s:
        return False
    expected = sign(secret, msg_id, int(ts_text), body).split(",", 1)[1]
    for part in headers.get("webhook-signature", "").split():
        version, _, sig = part.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False


def body_of(notification: Notification) -> bytes:
    """The JSON body: `type`, `timestamp` and the alarm (plus tier and audience on escalations)."""
    data: dict[str, Any] = {"alarm": notification.alarm}
    if notification.event == "escalation":
        data.update(tier=notification.tier, audience=notification.audience, recipients=len(notification.recipients))
    payload = {
        "type": f"alarm.{notification.event}",
        "timestamp": notification.alarm.get("updated_at"),
        "data": data,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


class WebhookNotifier:
    """POSTs every alarm change and escalation to each configured URL, signed, with retries."""

    channel = "webhook"

    def __init__(self, settings: NotifySettings) -> None:
        self._settings = settings
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        self._secret = webhook_secret_bytes(secret) if secret else b""
        self.http = ChannelSession(settings.webhook_timeout_s)

    async def aclose(self) -> None:
        """Close the channel's HTTP session."""
        await self.http.aclose()

    def wants(self, notification: Notification) -> bool:
        """Every change goes to the integrations."""
        return bool(self._settings.webhook_urls)

    async def send(self, notification: Notification) -> None:
        """Deliver to every URL; NotifyError names the URLs that failed after all attempts."""
        body = body_of(notification)
        session = self.http.get()
        results = await asyncio.gather(
            *(self._deliver(session, url, notification.id, body) for url in self._settings.webhook_urls),
            return_exceptions=True,
        )
        failed = [url for url, r in zip(self._settings.webhook_urls, results, strict=True) if r is not True]
        if failed:
            msg = f"webhook delivery failed for {len(failed)} of {len(results)} receivers"
            raise NotifyError(msg)

    async def _deliver(self, session: aiohttp.ClientSession, url: str, msg_id: str, body: bytes) -> bool:
        backoff = Backoff(self._settings.webhook_backoff_s, max(60.0, self._settings.webhook_backoff_s))
        for attempt in range(1, self._settings.webhook_attempts + 1):
            ts = int(time.time())
            headers = {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(ts),
            }
            if self._secret:
                headers["webhook-signature"] = sign(self._secret, msg_id, ts, body)
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    if 200 <= resp.status < 300:
                        return True
                    logger.info("webhook attempt=%s id=%s status=%s", attempt, msg_id, resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.info("webhook attempt=%s id=%s error=%s", attempt, msg_id, type(exc).__name__)
            if attempt < self._settings.webhook_attempts:
                await backoff.sleep()
        return False
