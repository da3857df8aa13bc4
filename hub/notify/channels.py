"""The channels the settings switch on (kept apart from hub/notify/__init__.py, which the channels import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.notify import Notifier
from hub.notify.sms import SmsNotifier
from hub.notify.webhook import WebhookNotifier
from hub.notify.webpush import WebPushNotifier, load_vapid_key

if TYPE_CHECKING:
    from hub.settings import Settings
    from hub.store.pool import Database


def build_notifiers(settings: Settings, db: Database) -> list[Notifier]:
    """The channels the settings switch on: webhook when URLs are set, SMS with a gateway, Web Push with VAPID keys."""
    notifiers: list[Notifier] = []
    cfg = settings.notify
    if cfg.webhook_urls:
        notifiers.append(WebhookNotifier(cfg))
    if cfg.sms_gateway_url:
        notifiers.append(SmsNotifier(cfg))
    vapid = load_vapid_key(cfg)
    if vapid is not None:
        notifiers.append(WebPushNotifier(cfg, vapid, db))
    return notifiers
