"""A staff site with check-in plans, the check-in service and a camera gateway test double (a real HTTP server)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

import pytest
from aiohttp import web

from hub.checkins.gateway import HttpCameraGateway
from hub.checkins.plan import Plan, Slot
from hub.checkins.service import CheckinService, save_plans
from hub.model import Device, DirectoryEntry, Inventory
from hub.people.residents import store_entries
from hub.store.inventory import load_inventory
from hub.web.staff.context import CONTEXT
from tests.hub.desk_support import sites_for
from tests.hub.web.conftest import StaffSite, browser, free_port, staff_site  # noqa: F401  (fixtures)


@dataclass
class GatewayDouble:
    """Issues viewing URLs like a go2rtc/Frigate-style gateway; records every request it gets, and who made it.

    The live view is a page showing `frame` while its token lasts (then 410): what the camera shows, which must
    reach the browser straight from here and never pass through Vaka. `grant_s` caps a token's life (a gateway may
    grant less than asked).
    """

    url: str
    requests: list[tuple[str, str, dict[str, object] | None]] = field(default_factory=list)
    content_type: str = "application/json"
    grant_s: int | None = None
    frame: str = field(default_factory=lambda: f"live view {uuid.uuid4().hex}")
    tokens: dict[str, datetime] = field(default_factory=dict)
    clients: list[tuple[str, str]] = field(default_factory=list)  # (path, User-Agent) of every request


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayDouble]:
    port = free_port()
    double = GatewayDouble(f"http://127.0.0.1:{port}")

    async def issue(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        double.requests.append((request.method, request.path, body))
        double.clients.append((request.path, request.headers.get("User-Agent", "")))
        if double.content_type != "application/json":
            return web.Response(body=b"\xff\xd8\xff\xe0 a jpeg", content_type=double.content_type)
        ttl_s = int(body["ttl_s"]) if double.grant_s is None else min(int(body["ttl_s"]), double.grant_s)
        token = secrets.token_urlsafe(12)
        double.tokens[token] = expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
        return web.json_response(
            {"url": f"{double.url}/live/{body['camera_id']}?t={token}", "expires_at": expires.isoformat()}
        )

    async def live(request: web.Request) -> web.StreamResponse:
        double.requests.append((request.method, request.path, None))
        double.clients.append((request.path, request.headers.get("User-Agent", "")))
        expires = double.tokens.get(request.query.get("t", ""))
        if expires is None or datetime.now(UTC) >= expires:
            return web.Response(status=410, text="this viewing link has expired")
        return web.Response(text=f"<html><body>{double.frame}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/api/v1/view-tokens", issue)
    app.router.add_get("/live/{camera}", live)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield double
    finally:
        await runner.cleanup()


@dataclass
class CheckinSite:
    site: StaffSite
    service: CheckinService
    gateway: GatewayDouble
    camera: str
    resident: str
    night_start: datetime  # 23:00 local on the plan's first night


@pytest.fixture
async def checkin_site(staff_site: StaffSite, gateway: GatewayDouble) -> AsyncIterator[CheckinSite]:  # noqa: F811
    site = staff_site.site
    camera, resident = f"{site}-cam1", f"{site}-r1"
    base = sites_for(site)[0]
    extended = base.model_copy(update={"devices": [*base.devices, Device(id=camera, kind="camera", resident=resident)]})
    http_gateway = HttpCameraGateway(gateway.url)
    service = CheckinService(staff_site.db, staff_site.desk, lambda t, p, *, qos=1, retain=False: staff_site.published.append((t, p)),
                             staff_site.clock, http_gateway)  # fmt: skip
    async with staff_site.db.acquire() as conn:
        await load_inventory(conn, Inventory(sites=[extended]))
        await save_plans(conn, [Plan(resident=resident, consent_ref="samtycke-2026-11", care_decision_ref="beslut-42",
                                     camera=camera, travel_minutes=12,
                                     slots=[Slot(at=time(23, 0)), Slot(at=time(2, 0)), Slot(at=time(5, 0), mode="physical")])])  # fmt: skip
    # 22:50 local (CET) on 26 November 2026: the 23:00 slot's window (±15 min) is open
    staff_site.clock.t = datetime(2026, 11, 26, 21, 50, tzinfo=UTC)
    try:
        yield CheckinSite(staff_site, service, gateway, camera, resident, datetime(2026, 11, 26, 22, 0, tzinfo=UTC))
    finally:
        await http_gateway.aclose()


async def on_the_route(s: CheckinSite) -> None:
    """The staff page serves check-ins, and the site's two homes have addresses: r1 (Karin Berg) next door, r2 (Olle
    Ek) across town, for the patrol's route (`/staff/patrol`)."""
    site = s.site.site
    s.site.staff_app[CONTEXT].checkins = s.service
    async with s.site.db.acquire() as conn:
        await store_entries(
            conn,
            [
                DirectoryEntry(resident=f"{site}-r1", name="Karin Berg", address="Storgatan 1",
                               latitude=63.826, longitude=20.264),
                DirectoryEntry(resident=f"{site}-r2", name="Olle Ek", address="Ytterby 4",
                               latitude=63.90, longitude=20.40),
            ],
        )  # fmt: skip
