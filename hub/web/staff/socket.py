"""The staff page's WebSocket: only for a logged-in session from the allowed origin; carries receipts back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import WSMsgType, web

from hub.web.security import SESSION_COOKIE, origin_allowed
from hub.web.staff.context import CONTEXT
from hub.web.staff.sessions import session_key

logger = logging.getLogger(__name__)


async def staff_socket(request: web.Request) -> web.StreamResponse:
    """Open alarms snapshot, then every change of my units; each `alarm` message is answered with a receipt."""
    ctx = request.config_dict[CONTEXT]
    if not origin_allowed(request, ctx.settings.http.public_url):
        logger.warning("staff websocket refused: origin not allowed")
        raise web.HTTPForbidden(text="origin not allowed")
    token = request.cookies.get(SESSION_COOKIE)
    session = await ctx.sessions.get(token)
    if session is None:
        raise web.HTTPUnauthorized(text="login required")
    staff = session.staff
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024)
    await ws.prepare(request)
    desk = ctx.desk
    alarms = desk.machine.open_alarms_for(staff)
    client = await desk.pages.serve(staff, ws, [desk.view(a) for a in alarms], session_key(token or ""))
    desk.log_resident_reads(
        staff, ((a.site, a.resident_id) for a in alarms if a.resident_id), "alarm_push", request.remote
    )
    desk.log_resident_reads(  # unconfirmed alarms sent again (some may have closed since): read again
        staff,
        ((a["site"], a["resident_id"]) for a in client.resent if a.get("resident_id")),
        "alarm_push",
        request.remote,
    )
    writer = ctx.spawner.spawn(desk.pages.pump(client), name="vaka.staff.ws.writer")
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("type") == "receipt" and isinstance(data.get("nid"), str):
                desk.pages.receipt(staff.id, data["nid"])
                if await ctx.sessions.get(token, check_db=False) is None:
                    break
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        desk.pages.detach(client)
        await ws.close()
    return ws
