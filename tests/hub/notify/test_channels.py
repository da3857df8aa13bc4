"""Notification channels against local HTTP receivers: signed webhooks with retries, SMS gateway, Web Push."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import http_ece
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid
from pydantic import SecretStr

from hub.metrics import Metrics
from hub.notify import Dispatcher, Notification
from hub.notify.sms import SmsNotifier
from hub.notify.webhook import WebhookNotifier, verify, webhook_secret_bytes
from hub.notify.webpush import PushSubscription, WebPushNotifier, application_server_key
from hub.people.staff import Role, StaffMember
from hub.runtime.tasks import Spawner
from hub.settings import NotifySettings
from hub.store.pool import PlainDatabase

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()

ALARM = {
    "id": "a1b2c3d4e5",
    "rule_id": "fall_detected",
    "category": "care",
    "severity": "critical",
    "state": "raised",
    "resident_id": "r-17",
    "device_id": "radar-17",
    "raised_at": "2026-11-26T02:14:00+00:00",
    "updated_at": "2026-11-26T02:14:00+00:00",
    "accepted_by": None,
}
ANNA = StaffMember(1, "anna", Role.STAFF, frozenset({("s", "A")}), phone="+46700000001")
NILS = StaffMember(2, "nils", Role.NURSE, frozenset({("s", "A")}), phone="+46700000002")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[TestServer] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/hook"))

    yield start
    for server in servers:
        await server.close()


def escalation(n: int = 0, recipients: tuple[StaffMember, ...] = (ANNA, NILS)) -> Notification:
    return Notification(
        id=f"{ALARM['id']}:tier{n}", event="escalation", alarm=ALARM, recipients=recipients, tier=n, audience="unit"
    )


async def test_webhook_is_signed_retried_and_seen_once_per_idempotency_key(
    serve: Callable[[Handler], Awaitable[str]], metrics: Metrics, spawner: Spawner
) -> None:
    attempts: dict[str, int] = {}
    delivered: list[dict[str, object]] = []
    key = webhook_secret_bytes(SECRET)

    async def receiver(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if not verify(key, request.headers, body):
            return web.Response(status=401)
        msg_id = request.headers["webhook-id"]
        attempts[msg_id] = attempts.get(msg_id, 0) + 1
        if attempts[msg_id] == 1:
            return web.Response(status=503)  # the first attempt of every delivery fails
        if msg_id not in {d["id"] for d in delivered}:
            delivered.append({"id": msg_id, **json.loads(body)})
        return web.Response(status=204)

    url = await serve(receiver)
    cfg = NotifySettings(webhook_urls=[url], webhook_secret=SecretStr(SECRET), webhook_backoff_s=0.05)
    dispatcher = Dispatcher([WebhookNotifier(cfg)], metrics, spawner=spawner)
    state = Notification(id=f"{ALARM['id']}:1", event="state", alarm=ALARM)
    dispatcher.dispatch(state)
    dispatcher.dispatch(escalation(0))
    await dispatcher.drain()
    assert attempts == {f"{ALARM['id']}:1": 2, f"{ALARM['id']}:tier0": 2}
    assert [d["type"] for d in delivered] == ["alarm.state", "alarm.escalation"] or [d["type"] for d in delivered] == [
        "alarm.escalation",
        "alarm.state",
    ]
    assert all(d["data"]["alarm"]["id"] == ALARM["id"] for d in delivered)  # type: ignore[index]
    assert metrics.notifications_sent.labels("webhook")._value.get() == 2


async def test_webhook_signature_does_not_verify_with_another_secret() -> None:
    from hub.notify.webhook import sign

    body = b'{"type":"alarm.state"}'
    import time

    ts = int(time.time())
    headers = {"webhook-id": "m1", "webhook-timestamp": str(ts), "webhook-signature": sign(b"right", "m1", ts, body)}
    assert verify(b"right", headers, body)
    assert not verify(b"wrong", headers, body)
    assert not verify(b"right", headers, body + b" ")


async def test_a_failing_channel_is_counted_and_does_not_block_the_others(
    serve: Callable[[Handler], Awaitable[str]], metrics: Metrics, spawner: Spawner
) -> None:
    texts: list[dict[str, str]] = []

    async def gateway(request: web.Request) -> web.StreamResponse:
        assert request.headers["authorization"] == "Bearer t0ken"
        texts.append(await request.json())
        return web.json_response({"queued": True})

    sms_url = await serve(gateway)
    cfg = NotifySettings(
        webhook_urls=["http://127.0.0.1:1/nothing-listens-here"],
        webhook_attempts=2,
        webhook_backoff_s=0.05,
        sms_gateway_url=sms_url,
        sms_token=SecretStr("t0ken"),
    )
    dispatcher = Dispatcher([WebhookNotifier(cfg), SmsNotifier(cfg)], metrics, spawner=spawner)
    dispatcher.dispatch(escalation(1))
    await dispatcher.drain()
    assert sorted(t["to"] for t in texts) == ["+46700000001", "+46700000002"]
    assert all(
        "fall_detected" in t["message"] and t["idempotency_key"].startswith(f"{ALARM['id']}:tier1:") for t in texts
    )
    assert metrics.notifications_failed.labels("webhook")._value.get() == 1
    assert metrics.notifications_sent.labels("sms")._value.get() == 1


async def test_every_channel_shows_zero_before_its_first_alarm(metrics: Metrics, spawner: Spawner) -> None:
    # the alarm path dashboard's "Notifications per channel" reads 0 on a quiet night, not "no data"
    from prometheus_client import generate_latest

    from hub.notify.websocket import WebSocketHub

    cfg = NotifySettings(webhook_urls=["http://127.0.0.1:1/x"], sms_gateway_url="http://127.0.0.1:1/sms")
    Dispatcher([WebhookNotifier(cfg), SmsNotifier(cfg)], metrics, spawner=spawner)
    WebSocketHub(metrics, spawner=spawner)
    text = generate_latest(metrics.registry).decode()
    for line in (
        'vaka_notifications_sent_total{channel="webhook"} 0.0',
        'vaka_notifications_failed_total{channel="webhook"} 0.0',
        'vaka_notifications_sent_total{channel="sms"} 0.0',
        'vaka_notifications_failed_total{channel="sms"} 0.0',
        'vaka_notifications_delivered_total{channel="websocket"} 0.0',
    ):
        assert line in text.splitlines(), line


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_web_push_reaches_the_push_service_encrypted_and_vapid_signed(
    serve: Callable[[Handler], Awaitable[str]], metrics: Metrics, db_settings: object, spawner: Spawner
) -> None:
    # the browser's side: its own key pair and auth secret, as pushManager.subscribe() would make them
    browser_key = ec.generate_private_key(ec.SECP256R1())
    auth = secrets.token_bytes(16)
    p256dh = browser_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    received: list[tuple[Any, bytes]] = []

    async def push_service(request: web.Request) -> web.StreamResponse:
        received.append((request.headers.copy(), await request.read()))
        return web.Response(status=201)

    endpoint = await serve(push_service)
    vapid = Vapid()
    vapid.generate_keys()
    cfg = NotifySettings(  # the test's own push service on 127.0.0.1, allowed explicitly (refused by default)
        vapid_subject="mailto:ops@example.org",
        push_allowed_hosts=["127.0.0.1"],
        push_allowed_networks=["127.0.0.1/32"],
        push_allow_http=True,
    )
    notifier = WebPushNotifier(cfg, vapid, PlainDatabase(None))  # type: ignore[arg-type]
    notifier._loaded = True  # subscriptions come from subscribe(); no database in this test
    notifier._subs[ANNA.id] = {endpoint: PushSubscription(endpoint, _b64(p256dh), _b64(auth))}
    dispatcher = Dispatcher([notifier], metrics, spawner=spawner)
    dispatcher.dispatch(escalation(0, recipients=(ANNA,)))
    await dispatcher.drain()

    assert len(received) == 1
    headers, body = received[0]
    assert headers["Authorization"].startswith("vapid t=")
    assert f"k={application_server_key(vapid)}" in headers["Authorization"]
    assert headers["Urgency"] == "high"
    plain = http_ece.decrypt(body, private_key=browser_key, auth_secret=auth, version="aes128gcm")
    payload = json.loads(plain)
    assert payload["alarm_id"] == ALARM["id"]
    assert payload["resident_id"] == "r-17"
    assert metrics.notifications_sent.labels("webpush")._value.get() == 1
    await asyncio.sleep(0)


async def test_a_channel_keeps_one_http_session_and_reuses_its_connection(
    serve: Callable[[Handler], Awaitable[str]], metrics: Metrics, spawner: Spawner
) -> None:
    peers: list[object] = []

    async def receiver(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        return web.Response(status=204)

    notifier = WebhookNotifier(NotifySettings(webhook_urls=[await serve(receiver)]))
    dispatcher = Dispatcher([notifier], metrics, spawner=spawner)
    for n in range(3):
        dispatcher.dispatch(escalation(n))
        await dispatcher.drain()
    assert len(peers) == 3
    assert len(set(peers)) == 1, "every delivery opened a connection of its own"
    assert notifier.http.opened == 1
    await dispatcher.aclose()
    assert notifier.http.get().closed is False  # reopened on demand after a close, never leaked
    await notifier.http.aclose()


async def test_deliveries_of_alarms_whose_site_went_to_another_hub_are_stopped(
    serve: Callable[[Handler], Awaitable[str]], metrics: Metrics, spawner: Spawner
) -> None:
    """The HA profile: a hub that lost a site stops its deliveries in flight (here a webhook retrying a receiver that
    fails): the hub that holds the site now rings it."""
    attempts: list[float] = []
    first = asyncio.Event()

    async def failing(request: web.Request) -> web.StreamResponse:
        attempts.append(asyncio.get_running_loop().time())
        first.set()
        return web.Response(status=503)

    cfg = NotifySettings(webhook_urls=[await serve(failing)], webhook_attempts=10, webhook_backoff_s=0.1)
    dispatcher = Dispatcher([WebhookNotifier(cfg)], metrics, spawner=spawner)
    dispatcher.dispatch(escalation(1))
    await first.wait()
    assert dispatcher.cancel(["another-alarm"]) == 0
    assert dispatcher.cancel([str(ALARM["id"])]) == 1
    await dispatcher.drain()
    tried = len(attempts)
    await asyncio.sleep(0.5)  # several backoffs: a delivery still retrying would have tried again
    assert len(attempts) == tried
    assert metrics.notifications_failed.labels("webhook")._value.get() == 0  # stopped, not failed
