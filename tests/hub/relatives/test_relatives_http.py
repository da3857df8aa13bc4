"""The relatives page and API over HTTP: invitations, login limits, exactly the consented fields, 403 vs 404, and
one access-log row per read."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp

from hub.relatives.consent import Scope
from tests.hub.relatives.conftest import DAUGHTER, Relative, RelativesSite


async def test_an_invitation_works_once_and_not_after_72_hours(relatives_site: RelativesSite) -> None:
    r1 = relatives_site.home.resident(1)
    first, second = Relative(relatives_site), Relative(relatives_site)
    try:
        link = await relatives_site.invite("son@example.se", r1)
        assert "sv" in (await (await first.http.get(link)).text())[:80]
        short = await first.accept(link, password="kort")
        assert short.status == 400
        differ = await first.accept(link, again="something else")
        assert differ.status == 400
        assert "The passwords differ" in await differ.text()
        used = await first.accept(link)
        assert used.status == 303
        assert used.headers["Location"] == "/relative/?welcome=1"
        again = await second.accept(link, password="another password")
        assert again.status == 410
        assert "already been used" in await (await second.http.get(link + "?lang=en")).text()
        assert (await second.login("son@example.se", "another password")).status == 401
        assert (await second.login("son@example.se")).status == 303

        old = await relatives_site.invite("son@example.se", r1, at=datetime.now(UTC) - timedelta(hours=72, seconds=1))
        expired = await Relative(relatives_site).http.get(old + "?lang=en")
        assert expired.status == 410
        assert "has expired" in await expired.text()
        async with relatives_site.home.db.acquire() as conn:
            stored = await conn.fetchval("SELECT count(*) FROM relative_invitations WHERE token_sha256 = $1", old)
        assert stored == 0  # only the hash of the link is stored
    finally:
        await first.http.close()
        await second.http.close()


async def test_only_the_consented_fields_of_consented_residents(
    daughter: Relative, relatives_site: RelativesSite
) -> None:
    r1, r2 = relatives_site.home.resident(1), relatives_site.home.resident(2)
    assert await daughter.get_json("/relative/api/v1/residents") == (200, {"residents": []})
    # a resident she was never given is answered like an id Vaka does not know: ids cannot be enumerated
    assert await daughter.get_json(f"/relative/api/v1/residents/{r1}/status") == (404, {"error": "no such resident"})

    await relatives_site.grant(DAUGHTER, r1, Scope.NIGHT_SUMMARY, Scope.DEVICE_HEALTH)
    status, listed = await daughter.get_json("/relative/api/v1/residents")
    assert (status, listed) == (
        200,
        {"residents": [{"id": r1, "name": None, "scopes": ["device_health", "night_summary"]}]},
    )
    status, body = await daughter.get_json(f"/relative/api/v1/residents/{r1}/status")
    assert status == 200
    assert set(body) == {"resident", "name", "unit_phone", "scopes", "alarm_open", "night_summary", "device_health"}
    assert body["device_health"] == {"state": "ok"}

    status, body = await daughter.get_json(f"/relative/api/v1/residents/{r2}/status")
    assert (status, body) == (404, {"error": "no such resident"})
    status, body = await daughter.get_json("/relative/api/v1/residents/nobody-r9/status")
    assert (status, body) == (404, {"error": "no such resident"})
    page = await daughter.http.get(f"/relative/residents/{r2}?lang=en")
    assert page.status == 404

    await relatives_site.revoke(DAUGHTER, r1, Scope.DEVICE_HEALTH)
    status, body = await daughter.get_json(f"/relative/api/v1/residents/{r1}/status")
    assert set(body) == {"resident", "name", "unit_phone", "scopes", "alarm_open", "night_summary"}
    await relatives_site.revoke(DAUGHTER, r1)  # hers until now: she is told it is no longer shared
    status, body = await daughter.get_json(f"/relative/api/v1/residents/{r1}/status")
    assert (status, body) == (403, {"error": "not shared with you (no live consent)"})
    page = await daughter.http.get(f"/relative/residents/{r1}?lang=en")
    assert page.status == 403
    assert "no longer shared with you" in await page.text()

    anonymous = aiohttp.ClientSession(base_url=relatives_site.url)
    try:
        response = await anonymous.get(f"/relative/api/v1/residents/{r1}/status")
        assert response.status == 401
    finally:
        await anonymous.close()


async def test_a_consent_ends_on_its_date(daughter: Relative, relatives_site: RelativesSite) -> None:
    r1 = relatives_site.home.resident(1)
    await relatives_site.grant(DAUGHTER, r1, Scope.DEVICE_HEALTH, until=relatives_site.clock() + timedelta(hours=1))
    assert (await daughter.get_json(f"/relative/api/v1/residents/{r1}/status"))[0] == 200
    relatives_site.clock.advance(3600)
    assert (await daughter.get_json(f"/relative/api/v1/residents/{r1}/status"))[0] == 403


async def _alarm(site: RelativesSite, resident: str, raised: datetime, closed: datetime | None, **more: object) -> None:
    values = {"rule_id": "fall_detected", "category": "care", "reason": "fall detected by radar", "note": "on floor"}
    values.update({k: str(v) for k, v in more.items()})
    async with site.home.db.acquire() as conn:
        await conn.execute(
            "INSERT INTO desk_alarms (id, key, rule_id, category, severity, site, unit, resident_id, device_id, reason,"
            " state, outcome, note, raised_at, updated_at, accepted_by, closed_at) VALUES ($1, $2, $3, $4, 4, $5, 'A',"
            " $6, $7, $8, $9, $10, $11, $12, $12, 'Anna', $13)",
            uuid.uuid4().hex,
            f"{values['rule_id']}:{resident}",
            values["rule_id"],
            values["category"],
            site.home.site,
            resident,
            f"{site.home.site}-radar1",
            values["reason"],
            "resolved" if closed else "raised",
            "assisted" if closed else None,
            values["note"],
            raised,
            closed,
        )


async def test_last_night_shows_handled_alarms_by_time_and_category_only(
    daughter: Relative, relatives_site: RelativesSite
) -> None:
    r1 = relatives_site.home.resident(1)
    zone = ZoneInfo("Europe/Stockholm")
    now = datetime.now(zone)
    night_end = now.replace(hour=7, minute=0, second=0, microsecond=0)
    if now < night_end:
        night_end -= timedelta(days=1)
    two_fourteen = night_end.replace(hour=2, minute=14)
    await _alarm(relatives_site, r1, two_fourteen - timedelta(minutes=6), two_fourteen)
    await _alarm(relatives_site, r1, night_end - timedelta(hours=2), None, note="still open")  # never while open
    await _alarm(relatives_site, r1, two_fourteen, None, rule_id="device_silent", category="technical")
    await relatives_site.grant(DAUGHTER, r1, Scope.NIGHT_SUMMARY, Scope.ALARM_NOTICE, Scope.DEVICE_HEALTH)

    status, body = await daughter.get_json(f"/relative/api/v1/residents/{r1}/status")
    assert status == 200
    assert (
        body["night_summary"]
        == {
            "night": (night_end - timedelta(days=1)).date().isoformat(),
            "state": "open",  # an alarm is still open: never "handled" for the night (tests/hub/relatives/test_night_truth.py)
            "alarms_handled": [{"handled_at": "02:14", "category": "care"}],
        }
    )
    text = str(body)
    for secret in ("fall", "radar", "floor", "Anna", "assisted", "still open"):
        assert secret not in text
    assert body["device_health"] == {"state": "needs_service"}
    notices = body["alarm_notices"]
    assert isinstance(notices, list)
    if now - two_fourteen < timedelta(hours=24):
        assert notices == [{"handled_at": two_fourteen.isoformat(timespec="minutes"), "category": "care"}]

    page = await daughter.http.get(f"/relative/residents/{r1}?lang=sv")
    html = await page.text()
    assert "Ett larm togs om hand kl." in html
    assert "Personalen har fått ett larm och tar hand om det just nu." in html
    assert ">02:14<" in html
    assert "(omsorg)" in html
    assert "Något behöver ses över" in html


async def test_every_read_is_one_access_log_row(daughter: Relative, relatives_site: RelativesSite) -> None:
    r1, r2 = relatives_site.home.resident(1), relatives_site.home.resident(2)
    await relatives_site.grant(DAUGHTER, r1, Scope.NIGHT_SUMMARY)
    reads = [
        ("/relative/", "resident_list"),
        (f"/relative/residents/{r1}", "status_page"),
        (f"/relative/residents/{r1}/panel", "status_refresh"),
        ("/relative/api/v1/residents", "api_residents"),
        (f"/relative/api/v1/residents/{r1}/status", "api_status"),
    ]
    for path, what in reads:
        before = await relatives_site.access_rows()
        response = await daughter.http.get(path)
        assert response.status == 200, path
        assert (await relatives_site.access_rows())[len(before) :] == [(r1, what, "relative")], path
    before = await relatives_site.access_rows()
    for refused in (
        f"/relative/api/v1/residents/{r2}/status",
        f"/relative/residents/{r2}",
        "/relative/api/v1/residents/x",
    ):
        assert (await daughter.http.get(refused)).status in (403, 404)
    assert await relatives_site.access_rows() == before
    async with relatives_site.home.db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM resident_access_log ORDER BY seq DESC LIMIT 1")
    assert row["relative_id"] is not None
    assert row["staff_id"] is None
    assert row["address"] == "127.0.0.1"


async def test_a_post_from_another_origin_is_refused(daughter: Relative, relatives_site: RelativesSite) -> None:
    response = await daughter.http.post("/relative/logout", headers={"Origin": "https://evil.example"})
    assert response.status == 403
    no_csrf = await daughter.http.post("/relative/logout", allow_redirects=False)
    assert no_csrf.status == 403


async def test_a_closed_account_is_signed_out_at_once(daughter: Relative, relatives_site: RelativesSite) -> None:
    r1 = relatives_site.home.resident(1)
    await relatives_site.grant(DAUGHTER, r1, Scope.DEVICE_HEALTH)
    assert (await daughter.get_json(f"/relative/api/v1/residents/{r1}/status"))[0] == 200
    closed = await asyncio.to_thread(relatives_site.home.vaka, "relative", "disable", DAUGHTER)
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert (await daughter.get_json(f"/relative/api/v1/residents/{r1}/status"))[0] == 401
    assert (await daughter.login()).status == 401
    unknown = await asyncio.to_thread(relatives_site.home.vaka, "relative", "disable", "nobody@example.se")
    assert unknown.returncode == 1
