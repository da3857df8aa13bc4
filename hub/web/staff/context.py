"""What the staff handlers share, and the key it is kept under in the app (imported by every staff module; it
imports none of them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

from hub.web.staff.throttle import LoginThrottle

if TYPE_CHECKING:
    from alarms.rules import RuleSet
    from hub.checkins.service import CheckinService
    from hub.desk.build import DeskParts
    from hub.metrics import Metrics
    from hub.notify.webpush import WebPushNotifier
    from hub.runtime.tasks import Spawner
    from hub.settings import Settings
    from hub.store.pool import Database
    from hub.web.staff.sessions import SessionStore


@dataclass(slots=True)
class StaffContext:
    """What the staff handlers share."""

    desk: DeskParts
    db: Database
    settings: Settings
    metrics: Metrics
    sessions: SessionStore
    jinja: jinja2.Environment
    push: WebPushNotifier | None
    spawner: Spawner
    throttle: LoginThrottle | None = None
    checkins: CheckinService | None = None
    rules: RuleSet | None = None  # the hub's loaded rule packs: the rule profiles a nurse may give a resident


CONTEXT = web.AppKey("vaka_staff", StaffContext)
