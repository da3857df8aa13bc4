"""SMS gateway channel: an HTTP POST per recipient with a phone number, for escalations of unaccepted alarms.

The gateway receives JSON `{"to", "message", "idempotency_key"}` (and `Idempotency-Key` as a header), with a
bearer token when configured. The message holds no personal data: site, room-less alarm kind and a short id.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from hub.notify import Notification, NotifyError
from hub.notify.http import ChannelSession
from hub.runtime.backoff import Backoff
from hub.settings import NotifySettings

logger = logging.getLogger(__name__)


def sms_text(notification: Notification) -> str:
    """The text sent: short, no names."""
    a = notification.alarm
    if a["rule_id"] == "nobody_reached":
        return f"Vaka: larm har inte nått någon / an alarm reached nobody - {a['id'][:8]}. Öppna Vaka."
    unit = "OBS: okänd enhet / unregistered device. " if a.get("unregistered") else ""
    return f"Vaka larm {a['rule_id']} ({a['severity']}) {a.get('resident_id') or a.get('device_id') or ''} {unit}- {a['id'][:8]}"


class SmsNotifier:
    """Sends escalations of unaccepted alarms to recipients' phones through an HTTP SMS gateway."""

    channel = "sms"

    def __init__(self, settings: NotifySettings) -> None:
        self._settings = settings
        self.http = ChannelSession(10.0)

    async def aclose(self) -> None:
        """Close the channel's HTTP session."""
        await self.http.aclose()

    def wants(self, notification: Notification) -> bool:
        """Escalations to people who have a phone number, and to a fallback number."""
        return notification.event == "escalation" and (
            bool(notification.phones) or any(r.phone for r in notification.recipients)
        )

    async def send(self, notification: Notification) -> None:
        """POST one message per phone number; NotifyError when any fails after all attempts."""
        url = self._settings.sms_gateway_url
        assert url is not None
        headers = {"content-type": "application/json"}
        if self._settings.sms_token:
            headers["authorization"] = f"Bearer {self._settings.sms_token.get_secret_value()}"
        text = sms_text(notification)
        phones = sorted({r.phone for r in notification.recipients if r.phone} | set(notification.phones))
        session = self.http.get()
        results = await asyncio.gather(
            *(self._post(session, url, headers, phone, text, f"{notification.id}:{phone}") for phone in phones)
        )
        if not all(results):
            msg = f"sms gateway refused {results.count(False)} of {len(results)} messages"
            raise NotifyError(msg)

    async def _post(
        self, session: aiohttp.ClientSession, url: str, headers: dict[str, str], phone: str, text: str, key: str
    ) -> bool:
        backoff = Backoff(0.5, 30.0)
        for attempt in range(1, self._settings.sms_attempts + 1):
            try:
                async with session.post(
                    url,
                    json={"to": phone, "message": text, "idempotency_key": key},
                    headers={**headers, "idempotency-key": key},
                ) as resp:
                    if 200 <= resp.status < 300:
                        return True
                    logger.info("sms attempt=%s status=%s", attempt, resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.info("sms attempt=%s error=%s", attempt, type(exc).__name__)
            if attempt < self._settings.sms_attempts:
                await backoff.sleep()
        return False
