"""The camera gateway: asked for a short-lived viewing URL bound to one staff member and one camera, so the browser
shows the live view straight from the gateway (go2rtc/Frigate style). Vaka never fetches a stream or an image."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import aiohttp

from hub.model import VakaError


class GatewayError(VakaError):
    """The gateway did not issue a viewing URL (down, refused, or said the camera is unreachable)."""


@dataclass(frozen=True, slots=True)
class ViewGrant:
    """Where the browser looks, and until when."""

    url: str
    expires_at: datetime


class CameraGateway(Protocol):
    """Issues viewing URLs; the only thing Vaka asks of a camera system."""

    async def issue(self, camera_id: str, viewer: str, ttl_s: int) -> ViewGrant: ...


class HttpCameraGateway:
    """A generic gateway: `POST {base}/api/v1/view-tokens {camera_id, viewer, ttl_s}` → `{url, expires_at}`.

    One HTTP session for the hub's life; only that small JSON crosses: the response is refused if it is not JSON or
    larger than 4 KiB, so no image can pass through Vaka even by mistake.
    """

    MAX_RESPONSE = 4096

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 5.0) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def issue(self, camera_id: str, viewer: str, ttl_s: int) -> ViewGrant:
        """A viewing URL for `camera_id`, valid `ttl_s` seconds, bound to `viewer`."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        try:
            async with self._session.post(
                f"{self._base}/api/v1/view-tokens", json={"camera_id": camera_id, "viewer": viewer, "ttl_s": ttl_s}
            ) as resp:
                if resp.content_type != "application/json" or (resp.content_length or 0) > self.MAX_RESPONSE:
                    msg = f"camera gateway answered {resp.status} {resp.content_type}, not a viewing URL"
                    raise GatewayError(msg)
                body = await resp.content.read(self.MAX_RESPONSE + 1)
                if resp.status != 200 or len(body) > self.MAX_RESPONSE:
                    msg = f"camera gateway refused the view ({resp.status})"
                    raise GatewayError(msg)
        except (aiohttp.ClientError, TimeoutError) as exc:
            msg = f"camera gateway unreachable: {exc.__class__.__name__}"
            raise GatewayError(msg) from exc
        data = json.loads(body)
        return ViewGrant(str(data["url"]), datetime.fromisoformat(str(data["expires_at"])))

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
