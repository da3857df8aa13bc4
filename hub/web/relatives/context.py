"""What the relatives handlers share, and the key it is kept under in the app."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

from hub.web.paths import wall_clock
from hub.web.staff.throttle import LoginThrottle

if TYPE_CHECKING:
    from hub.settings import Settings
    from hub.store.pool import Database


CHALLENGE_TTL_S = 120.0


class Challenges:
    """Outstanding WebAuthn challenges by key, each usable once within CHALLENGE_TTL_S."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[bytes, float]] = {}

    def put(self, key: str, challenge: bytes) -> None:
        now = time.monotonic()
        if len(self._items) > 10_000:
            self._items = {k: v for k, v in self._items.items() if v[1] > now}
        self._items[key] = (challenge, now + CHALLENGE_TTL_S)

    def take(self, key: str) -> bytes | None:
        item = self._items.pop(key, None)
        if item is None or item[1] < time.monotonic():
            return None
        return item[0]


@dataclass(slots=True)
class RelativesContext:
    """What the relatives handlers share."""

    db: Database
    settings: Settings
    jinja: jinja2.Environment
    challenges: Challenges
    # the staff login's throttle: per (account, address), and a per-account cap with a slow path across addresses;
    # a relative's account is `relative:<e-mail>` in it
    throttle: LoginThrottle
    now: Callable[[], datetime] = wall_clock


CONTEXT = web.AppKey("vaka_relatives", RelativesContext)
