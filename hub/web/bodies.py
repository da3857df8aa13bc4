"""Request bodies read so that a malformed one is the sender's 400 with a plain message, never the hub's 500."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

FORM_HELP = "the form could not be read: send application/x-www-form-urlencoded or multipart/form-data in UTF-8"
JSON_HELP = "the body must be a JSON object in UTF-8"


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The posted form; HTTPBadRequest when it cannot be parsed (broken multipart, bad encoding, bad escapes)."""
    try:
        form = await request.post()
        for value in form.values():  # decoding errors surface here for some bodies
            if isinstance(value, str):
                value.encode("utf-8")
    except web.HTTPException:
        raise
    except Exception as exc:  # aiohttp raises assorted ValueError/AssertionError/LookupError kinds here
        raise web.HTTPBadRequest(text=FORM_HELP) from exc
    return form


def field(form: MultiDictProxy[str | bytes | bytearray | web.FileField], name: str, limit: int) -> str:
    """A text field cut to `limit` characters, without what PostgreSQL cannot store (NUL) or a page cannot show
    (other control characters but tab and newline); a file or bytes where text belongs is a 400."""
    value = form.get(name, "")
    if not isinstance(value, str):
        raise web.HTTPBadRequest(text=f"form field {name!r} must be text")
    return clean_text(value)[:limit]


_CONTROL = dict.fromkeys(c for c in range(32) if chr(c) not in "\t\n")
_CONTROL[0x7F] = None


def clean_text(value: str) -> str:
    """Text from a form without NUL and control characters (tab and newline kept, CR LF made LF)."""
    return value.replace("\r\n", "\n").translate(_CONTROL)


async def read_json_object(request: web.Request, max_bytes: int = 16 * 1024) -> dict[str, Any]:
    """The JSON object in the body; HTTPBadRequest when it is not one (or larger than `max_bytes`)."""
    raw = await request.read()  # cached by aiohttp: well_formed_bodies may have read it already
    if len(raw) > max_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=len(raw), text=JSON_HELP)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise web.HTTPBadRequest(text=JSON_HELP) from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text=JSON_HELP)
    return data


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@web.middleware
async def well_formed_bodies(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Parse a POST's form or JSON body once, up front: malformed is a 400 here, and every handler's later
    `request.post()` / `request.json()` reads the parsed copy aiohttp keeps, so no handler meets a broken body."""
    if request.method == "POST":
        if request.content_type in _FORMS:
            await read_form(request)
        elif request.content_type == "application/json" and request.can_read_body:
            raw = await request.read()
            try:
                json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise web.HTTPBadRequest(text=JSON_HELP) from exc
    return await handler(request)
