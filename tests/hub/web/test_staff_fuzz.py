"""Every staff route, fed malformed bodies, paths and methods by Hypothesis: never a 5xx (issue 9)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hub.desk_support import PASSWORD, decision
from tests.hub.web.conftest import StaffSite
from tests.hub.web.test_staff_http import csrf_of, login

CONTENT_TYPES = [
    None,
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=no-such-charset",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "multipart/form-data; boundary=",
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "application/octet-stream",
]

form_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
bodies = st.one_of(
    st.binary(max_size=300),
    st.dictionaries(
        st.sampled_from(["csrf", "outcome", "note", "username", "password", "scope", "until", "on"]),
        form_text,
        max_size=4,
    ).map(lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8", "surrogatepass")),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | form_text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(form_text, inner, max_size=3),
        max_leaves=8,
    ).map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [b"--x\r\n", b'--x\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n', b"%ZZ=%", b"{", b"\xff\xfe\x00"]
    ),
)
segment = st.one_of(
    st.sampled_from(["accept", "resolve", "look", "outcome", "x", "..", "%00", "ä"]), st.text(max_size=12)
)


def staff_routes(site: StaffSite) -> list[tuple[str, str]]:
    """(method, path template) of every route of the staff application but static files and logout."""
    found = []
    for route in site.staff_app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if template is None or route.method == "HEAD" or template.endswith("/logout"):
            continue
        found.append((route.method, template))
    assert len(found) >= 10, found
    return sorted(set(found))


@pytest.fixture
async def admin(staff_site: StaffSite) -> AsyncIterator[tuple[aiohttp.ClientSession, str, aiohttp.ClientSession]]:
    """Lisa (admin of the whole site) logged in, with her page's CSRF token; and a stranger with no session."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client,
        aiohttp.ClientSession() as stranger,
    ):
        assert (await login(client, staff_site.url, f"lisa-{staff_site.site}", PASSWORD)).status == 303
        async with client.get(f"{staff_site.url}/staff/") as page:
            yield client, csrf_of(await page.text()), stranger


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_no_staff_route_answers_a_malformed_request_with_a_5xx(
    staff_site: StaffSite, admin: tuple[aiohttp.ClientSession, str, aiohttp.ClientSession], data: st.DataObject
) -> None:
    client, token, stranger = admin
    if data.draw(st.booleans()):
        client = stranger
    if not staff_site.desk.machine.open_alarms():
        staff_site.desk.lane.apply(decision(staff_site.site))
    method, template = data.draw(st.sampled_from(staff_routes(staff_site)))
    method = data.draw(st.sampled_from([method, method, "POST", "PUT", "DELETE", "PATCH"]))
    alarm_ids = [a.id for a in staff_site.desk.machine.open_alarms()]
    path = re.sub(
        r"\{(\w+)\}",
        lambda m: data.draw(st.sampled_from(alarm_ids) | segment if m.group(1) == "alarm_id" else segment),
        template,
    )
    headers = {}
    content_type = data.draw(st.sampled_from(CONTENT_TYPES))
    if content_type is not None:
        headers["Content-Type"] = content_type
    if data.draw(st.booleans()):
        headers["X-CSRF-Token"] = token
    if data.draw(st.booleans()):
        headers["X-Requested-With"] = "fetch"
    body = data.draw(bodies)
    url = (
        staff_site.url + "/staff" + path.removeprefix("/staff")
        if not path.startswith("/staff")
        else staff_site.url + path
    )
    async with client.request(method, url, data=body, headers=headers, allow_redirects=False) as resp:
        text = await resp.text(errors="replace")
        assert resp.status < 500, (method, path, content_type, body[:80], resp.status, text[:300])
        assert "Traceback" not in text
