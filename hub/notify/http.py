"""One HTTP session per notification channel: its connections are kept and reused, and closed with the channel."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp


class ChannelSession:
    """An aiohttp session opened on first use (inside the running loop) and closed by `aclose`."""

    def __init__(self, timeout_s: float, factory: Callable[[], aiohttp.ClientSession] | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._factory = factory
        self._session: aiohttp.ClientSession | None = None
        self.opened = 0  # sessions opened so far: one for the channel's life (tests read it)

    def get(self) -> aiohttp.ClientSession:
        """The channel's session."""
        if self._session is None or self._session.closed:
            self._session = self._factory() if self._factory else aiohttp.ClientSession(timeout=self._timeout)
            self.opened += 1
        return self._session

    async def aclose(self) -> None:
        """Close the session and its connections (shutdown)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
