"""Whether the alarm system is degraded (the hub cannot reach the broker, or the canary fails): for the staff page.

The hub registers a callable under `DEGRADED` on its web application; pages read it with `alarm_system_degraded`.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

DegradedCheck = Callable[[], bool]
DEGRADED: web.AppKey[DegradedCheck] = web.AppKey("vaka_degraded")


def alarm_system_degraded(request: web.Request) -> bool:
    """True when the staff should not trust a silent phone (no hub registered it: never degraded)."""
    check = request.config_dict.get(DEGRADED)
    return bool(check is not None and check())
