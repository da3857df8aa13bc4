"""Passkeys (WebAuthn) for relatives, with the `webauthn` library: add one after logging in, sign in with it later.

The relying party is the host of `http.public_url` (a passkey works only on that host name: `localhost` or a real
domain, never a bare IP address). Challenges live in memory for two minutes; a hub restart in between only means
pressing the button again.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime
from urllib.parse import urlsplit

import asyncpg
import webauthn
from aiohttp import web
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hub.relatives import accounts as acc
from hub.web.relatives.context import CONTEXT, RelativesContext
from hub.web.relatives.pages import COOKIE_PATH, _session, address, set_cookie, start_session, throttle_key
from hub.web.security import origin_of

logger = logging.getLogger(__name__)

CHALLENGE_COOKIE = "vaka_relative_passkey"


def _ctx(request: web.Request) -> RelativesContext:
    return request.config_dict[CONTEXT]


def _rp(ctx: RelativesContext) -> tuple[str, str]:
    url = ctx.settings.http.public_url
    return urlsplit(url).hostname or "localhost", origin_of(url)


async def register_options(request: web.Request) -> web.StreamResponse:
    """Creation options for a new passkey of the logged-in relative."""
    ctx = _ctx(request)
    relative = _session(request).relative
    rp_id, _ = _rp(ctx)
    async with ctx.db.acquire() as conn:
        existing = await conn.fetch("SELECT credential_id FROM relative_passkeys WHERE relative_id = $1", relative.id)
    options = webauthn.generate_registration_options(
        rp_id=rp_id,
        rp_name="Vaka",
        user_id=f"vaka-relative-{relative.id}".encode(),
        user_name=relative.email,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.PREFERRED
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=bytes(r["credential_id"])) for r in existing],
    )
    ctx.challenges.put(f"reg:{relative.id}", options.challenge)
    return web.Response(text=webauthn.options_to_json(options), content_type="application/json")


async def register(request: web.Request) -> web.StreamResponse:
    """Verify the browser's new credential and keep its public key."""
    ctx = _ctx(request)
    relative = _session(request).relative
    rp_id, origin = _rp(ctx)
    challenge = ctx.challenges.take(f"reg:{relative.id}")
    if challenge is None:
        return web.json_response({"ok": False, "error": "challenge expired, try again"}, status=400)
    try:
        verified = webauthn.verify_registration_response(
            credential=await request.text(), expected_challenge=challenge, expected_rp_id=rp_id, expected_origin=origin
        )
    except (InvalidRegistrationResponse, ValueError, KeyError) as exc:
        logger.info("relative passkey refused relative=%s: %s", relative.id, exc)
        return web.json_response({"ok": False, "error": "the passkey could not be verified"}, status=400)
    async with ctx.db.acquire() as conn:
        try:
            await conn.execute(
                "INSERT INTO relative_passkeys (credential_id, relative_id, public_key, sign_count) VALUES ($1, $2, $3, $4)",
                verified.credential_id,
                relative.id,
                verified.credential_public_key,
                verified.sign_count,
            )
        except asyncpg.UniqueViolationError:
            return web.json_response({"ok": False, "error": "this passkey is already registered"}, status=409)
    logger.info("relative passkey added relative=%s", relative.id)
    return web.json_response({"ok": True})


async def login_options(request: web.Request) -> web.StreamResponse:
    """Request options for signing in with any passkey of this site (discoverable credentials)."""
    ctx = _ctx(request)
    rp_id, _ = _rp(ctx)
    options = webauthn.generate_authentication_options(
        rp_id=rp_id, user_verification=UserVerificationRequirement.PREFERRED
    )
    nonce = secrets.token_urlsafe(24)
    ctx.challenges.put(f"login:{nonce}", options.challenge)
    response = web.Response(text=webauthn.options_to_json(options), content_type="application/json")
    set_cookie(response, CHALLENGE_COOKIE, nonce, secure=ctx.settings.http.cookie_secure)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    """Verify a passkey assertion and start a session (rate-limited like the password login)."""
    ctx = _ctx(request)
    rp_id, origin = _rp(ctx)
    where = address(request)
    body = await request.text()
    try:
        raw_id = webauthn.base64url_to_bytes(str(json.loads(body)["rawId"]))
    except (ValueError, KeyError, TypeError):
        return web.json_response({"ok": False, "error": "expected a PublicKeyCredential as JSON"}, status=400)
    async with ctx.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT p.*, r.email FROM relative_passkeys p JOIN relatives r ON r.id = p.relative_id"
            " WHERE p.credential_id = $1 AND r.active",
            raw_id,
        )
    account = row["email"] if row else ""
    if await ctx.throttle.wait_s(throttle_key(account), where) > 0:
        return web.json_response({"ok": False, "error": "too many attempts"}, status=429)
    challenge = ctx.challenges.take(f"login:{request.cookies.get(CHALLENGE_COOKIE, '')}")
    if row is None or challenge is None:
        await ctx.throttle.failed(throttle_key(account), where)
        return web.json_response({"ok": False, "error": "unknown passkey or expired challenge"}, status=401)
    try:
        verified = webauthn.verify_authentication_response(
            credential=body,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=bytes(row["public_key"]),
            credential_current_sign_count=row["sign_count"],
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError) as exc:
        await ctx.throttle.failed(throttle_key(account), where)
        logger.info("relative passkey login refused: %s", exc)
        return web.json_response({"ok": False, "error": "the passkey could not be verified"}, status=401)
    now: datetime = ctx.now()
    async with ctx.db.acquire() as conn:
        await conn.execute(
            "UPDATE relative_passkeys SET sign_count = $2, last_used_at = $3 WHERE credential_id = $1",
            raw_id,
            verified.new_sign_count,
            now,
        )
        relative = await acc.relative_by_id(conn, row["relative_id"])
    if relative is None:
        return web.json_response({"ok": False, "error": "account disabled"}, status=401)
    await ctx.throttle.succeeded(throttle_key(account), where)
    started = await start_session(request, relative)
    response = web.json_response({"ok": True, "location": "/relative/"})
    for name, morsel in started.cookies.items():
        response.cookies[name] = morsel
    response.del_cookie(CHALLENGE_COOKIE, path=COOKIE_PATH)
    return response


def add_routes(app: web.Application) -> None:
    """The passkey routes of the relatives sub-application."""
    app.router.add_post("/passkey/register/options", register_options)
    app.router.add_post("/passkey/register", register)
    app.router.add_post("/passkey/login/options", login_options)
    app.router.add_post("/passkey/login", login)
