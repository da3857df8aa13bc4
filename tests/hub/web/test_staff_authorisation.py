"""One authorisation rule over the staff routes, against the real database and desk: a person grants, sees or acts only
within the units she holds, and a wildcard is expanded against her own units, never the site's.

The matrix: role (staff, nurse of unit A, admin of the whole site) × target (own unit, other unit of the site, another
site, the wildcard `site/*`) × route (adding an account, changing units, an account's password, a resident away, a
device in maintenance, a rule profile, a resident's consents, an alarm's home)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import unquote_plus

import aiohttp
import pytest

from hub.people.staff import Role
from hub.store.staff import create_staff
from tests.hub.desk_support import PASSWORD, decision
from tests.hub.web.conftest import StaffSite
from tests.hub.web.test_staff_http import csrf_of, login


async def client_of(site: StaffSite, username: str) -> aiohttp.ClientSession:
    client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    resp = await login(client, site.url, username)
    assert resp.status == 303, username
    return client


@pytest.fixture
async def nurse(staff_site: StaffSite) -> AsyncIterator[aiohttp.ClientSession]:
    client = await client_of(staff_site, f"nils-{staff_site.site}")
    yield client
    await client.close()


@pytest.fixture
async def admin(staff_site: StaffSite) -> AsyncIterator[aiohttp.ClientSession]:
    client = await client_of(staff_site, f"lisa-{staff_site.site}")
    yield client
    await client.close()


async def post_admin(site: StaffSite, client: aiohttp.ClientSession, action: str, **form: str) -> tuple[bool, str]:
    """(accepted, what the page said) for one admin form."""
    async with client.get(f"{site.url}/staff/admin") as page:
        token = csrf_of(await page.text())
    async with client.post(f"{site.url}/staff/admin/{action}", data={"csrf": token, **form},
                           allow_redirects=False) as resp:  # fmt: skip
        assert resp.status == 303, await resp.text()
        key, _, value = resp.headers["Location"].partition("?")[2].partition("=")
        return key == "done", unquote_plus(value)


async def units_of(site: StaffSite, username: str) -> set[str]:
    async with site.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT u.site, u.unit FROM staff_units u JOIN staff s ON s.id = u.staff_id WHERE s.username = $1", username
        )
    return {f"{r['site']}/{r['unit']}" for r in rows}


def new_account(username: str, units: str, role: str = "staff") -> dict[str, str]:
    return {"username": username, "password": PASSWORD, "role": role, "units": units, "name": "", "lang": "en"}


@pytest.mark.parametrize(
    ("units", "accepted", "granted"),
    [
        ("{site}/A", True, {"{site}/A"}),
        ("{site}/B", False, set()),
        ("elsewhere/A", False, set()),
        ("{site}/*", True, {"{site}/A"}),  # her own units of the site, not the site
        ("{site}/A {site}/B", False, set()),
    ],
    ids=["own-unit", "other-unit", "other-site", "wildcard", "own-and-other"],
)
async def test_a_nurse_adds_accounts_only_to_her_own_units(
    staff_site: StaffSite, nurse: aiohttp.ClientSession, units: str, accepted: bool, granted: set[str]
) -> None:
    site = staff_site.site
    username = f"new-{site}"
    ok, said = await post_admin(staff_site, nurse, "staff-add", **new_account(username, units.format(site=site)))
    assert ok is accepted, said
    assert await units_of(staff_site, username) == {g.format(site=site) for g in granted}


@pytest.mark.parametrize(
    ("units", "granted"),
    [
        ("{site}/A", {"{site}/A"}),
        ("{site}/B", {"{site}/B"}),
        ("{site}/*", {"{site}/*"}),
        ("elsewhere/A", None),
    ],
    ids=["own-unit", "other-unit", "wildcard", "other-site"],
)
async def test_an_admin_of_the_whole_site_grants_within_it_and_nowhere_else(
    staff_site: StaffSite, admin: aiohttp.ClientSession, units: str, granted: set[str] | None
) -> None:
    site = staff_site.site
    username = f"new-{site}"
    ok, said = await post_admin(staff_site, admin, "staff-add", **new_account(username, units.format(site=site)))
    assert ok is (granted is not None), said
    assert await units_of(staff_site, username) == {g.format(site=site) for g in granted or set()}


async def test_a_nurse_cannot_widen_her_own_units_or_a_colleagues(
    staff_site: StaffSite, nurse: aiohttp.ClientSession
) -> None:
    site = staff_site.site
    me, anna = f"nils-{site}", f"anna-{site}"
    ok, _ = await post_admin(staff_site, nurse, "staff-units", username=me, units=f"{site}/*")
    assert ok  # the wildcard means her own units: nothing changes
    assert await units_of(staff_site, me) == {f"{site}/A"}
    ok, said = await post_admin(staff_site, nurse, "staff-units", username=me, units=f"{site}/A {site}/B")
    assert not ok, said
    ok, said = await post_admin(staff_site, nurse, "staff-units", username=anna, units=f"{site}/B")
    assert not ok, said
    ok, said = await post_admin(staff_site, nurse, "staff-units", username=anna, units="elsewhere/A")
    assert not ok, said
    assert await units_of(staff_site, me) == {f"{site}/A"}
    assert await units_of(staff_site, anna) == {f"{site}/A"}


@pytest.mark.parametrize(
    ("target", "accepted"),
    [("anna", True), ("carl", False), ("lisa", False), ("wild", False), ("away", False)],
    ids=["own-unit", "other-unit", "admin", "wildcard", "other-site"],
)
async def test_a_nurse_manages_only_accounts_whose_every_unit_she_holds(
    staff_site: StaffSite, nurse: aiohttp.ClientSession, target: str, accepted: bool
) -> None:
    site = staff_site.site
    async with staff_site.db.acquire() as conn:
        await create_staff(conn, username=f"wild-{site}", password=PASSWORD, role=Role.STAFF, units={(site, "*")})
        await create_staff(
            conn, username=f"away-{site}", password=PASSWORD, role=Role.STAFF, units={("elsewhere", "A")}
        )
    username = f"{target}-{site}"
    ok, said = await post_admin(staff_site, nurse, "staff-password", username=username, password="a new long password")
    assert ok is accepted, said
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        assert (await login(other, staff_site.url, username)).status == (401 if accepted else 303)


@pytest.mark.parametrize(
    ("action", "target", "accepted"),
    [
        ("resident-away", "r1", True),
        ("resident-away", "r3", False),
        ("device-maintenance", "radar1", True),
        ("device-maintenance", "button3", False),
        ("resident-profile", "r3", False),
    ],
    ids=["away-own", "away-other", "maintenance-own", "maintenance-other", "profile-other"],
)
async def test_a_nurse_acts_on_residents_and_devices_of_her_units_only(
    staff_site: StaffSite, nurse: aiohttp.ClientSession, action: str, target: str, accepted: bool
) -> None:
    ok, said = await post_admin(
        staff_site, nurse, action, id=f"{staff_site.site}-{target}", state="on", profile="wanders_at_night"
    )
    assert ok is accepted, said


async def test_an_account_added_with_a_wildcard_sees_nothing_outside_the_nurses_units(
    staff_site: StaffSite, nurse: aiohttp.ClientSession
) -> None:
    """The reproduction: a nurse of unit A adds `site/*`; the new account must not list, accept or read the home of a
    resident of unit B."""
    site = staff_site.site
    ok, said = await post_admin(staff_site, nurse, "staff-add", **new_account(f"new-{site}", f"{site}/*"))
    assert ok, said
    await staff_site.desk.restorer.refresh(sites=False)
    alarm_b = staff_site.desk.lane.apply(decision(site, subject="r3", resident="r3", device="button3"))
    assert alarm_b is not None
    new = await client_of(staff_site, f"new-{site}")
    try:
        async with new.get(f"{staff_site.url}/staff/residents") as page:
            html = await page.text()
        assert f"{site}-r1" in html
        assert f"{site}-r3" not in html
        async with new.get(f"{staff_site.url}/staff/alarms/{alarm_b.id}/home") as home:
            assert home.status == 404
        async with new.get(f"{staff_site.url}/staff/") as page:
            csrf = csrf_of(await page.text())
        async with new.post(f"{staff_site.url}/staff/alarms/{alarm_b.id}/accept", data={"csrf": csrf},
                            allow_redirects=False) as resp:  # fmt: skip
            assert resp.status == 303
        taken = staff_site.desk.machine.get(alarm_b.id)
        assert taken is not None
        assert taken.accepted_by_id is None
    finally:
        await new.close()


@pytest.mark.parametrize(
    ("who", "resident", "status"),
    [("nils", "r1", 200), ("nils", "r3", 404), ("lisa", "r3", 200), ("anna", "r1", 403), ("carl", "r1", 403)],
    ids=["nurse-own", "nurse-other-unit", "admin-wildcard", "staff-own", "staff-other"],
)
async def test_consents_are_read_only_by_a_nurse_or_admin_holding_the_unit(
    staff_site: StaffSite, who: str, resident: str, status: int
) -> None:
    client = await client_of(staff_site, f"{who}-{staff_site.site}")
    try:
        async with client.get(f"{staff_site.url}/staff/residents/{staff_site.site}-{resident}/consents") as page:
            assert page.status == status
    finally:
        await client.close()


async def test_the_admin_page_lists_only_accounts_of_my_units(
    staff_site: StaffSite, nurse: aiohttp.ClientSession
) -> None:
    site = staff_site.site
    async with staff_site.db.acquire() as conn:
        await create_staff(conn, username=f"away-{site}", password=PASSWORD, role=Role.STAFF, units={(site, "B")})
    async with nurse.get(f"{staff_site.url}/staff/admin") as page:
        text = re.sub(r"<[^>]+>", " ", await page.text())
    assert f"anna-{site}" in text
    assert f"carl-{site}" not in text
    assert f"away-{site}" not in text


@pytest.mark.parametrize(
    ("origin", "status"),
    [("{url}", 303), ("https://evil.example", 403), ("null", 403), (None, 403)],
    ids=["ours", "foreign", "null", "none"],
)
async def test_a_staff_post_needs_our_origin_even_with_a_valid_csrf_token(
    staff_site: StaffSite, nurse: aiohttp.ClientSession, origin: str | None, status: int
) -> None:
    async with nurse.get(f"{staff_site.url}/staff/admin") as page:
        token = csrf_of(await page.text())
    headers = {} if origin is None else {"Origin": origin.format(url=staff_site.url)}
    nurse.headers.pop("Origin", None)
    form = {"csrf": token, "id": f"{staff_site.site}-r1", "state": "on"}
    async with nurse.post(f"{staff_site.url}/staff/admin/resident-away", data=form, headers=headers,
                          allow_redirects=False) as resp:  # fmt: skip
        assert resp.status == status
    async with staff_site.db.acquire() as conn:
        changed = await conn.fetchval("SELECT count(*) FROM admin_audit_log WHERE action = 'resident_away'")
    assert changed == (1 if status == 303 else 0)
