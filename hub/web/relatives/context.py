"""What the relatives handlers share, and the key it is kept under in the app."""

from __future__ import annotations

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
    from hub.web.relatives.passkeys import Challenges


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
