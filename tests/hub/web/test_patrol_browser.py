"""The night patrol's page in Debian's Chromium, phone-sized, on the hub's clock (a FakeClock the test moves):
care alarms stay until resolved, repeats ring again, times are the hub's, nobody on duty reaches the fallback,
take-over is asked and recorded, the night log, the language switch, sound kept for the session, axe in both languages.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, Dialog, Page, expect

from alarms.instant import ABORT_REASON
from hub.desk.machine import NOBODY_REACHED
from hub.model import AlarmCategory, AlarmDecision, Contact, DecisionAction, DirectoryEntry, Severity
from hub.people.residents import store_entries
from tests.hub.desk_support import RecordingNotifier, decision
from tests.hub.web.conftest import CHROMIUM, StaffSite, staff_page
from tests.hub.web.test_staff_browser import axe_violations, pages_connected

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"),
]
# 02:14 in Stockholm (CET) on a November night
NIGHT = datetime(2026, 11, 27, 1, 14, tzinfo=UTC)


def door(site: StaffSite, action: DecisionAction = DecisionAction.RAISE) -> AlarmDecision:
    return decision(
        site.site,
        action,
        rule_id="entrance_door_night",
        severity=Severity.HIGH,
        device="radar1",
        reason="entrance door closed" if action is DecisionAction.CLEAR else "entrance door open at night",
    )


async def open_page(browser: Browser, site: StaffSite, name: str) -> Page:
    page = await staff_page(browser, site.url, site.site, name)
    return page


async def test_a_wandering_night_keeps_the_alarm_until_resolved(browser: Browser, staff_site: StaffSite) -> None:
    """The door closes again nine minutes later: the card says so, keeps ringing, and stays until resolved."""
    staff_site.clock.t = NIGHT
    page = await open_page(browser, staff_site, "anna")
    await pages_connected(staff_site, 1)
    alarm = staff_site.desk.lane.apply(door(staff_site))
    assert alarm is not None
    card = page.locator(f"#alarm-{alarm.id}")
    await expect(card).to_be_visible(timeout=1000)
    await expect(card.locator(".clock")).to_have_text("02:14")
    staff_site.clock.advance(9 * 60)
    staff_site.desk.lane.apply(door(staff_site, DecisionAction.CLEAR))
    await expect(card.locator(".ended")).to_have_text(
        "Condition ended 02:23: entrance door closed. Check on the person anyway.", timeout=1000
    )
    await expect(card.locator(".reason")).to_be_hidden()  # "entrance door open at night" only repeats the title
    staff_site.clock.advance(30 * 60)
    staff_site.desk.lane.escalate_due()
    await page.reload()
    await expect(card).to_be_visible()
    await expect(card.locator(".ago")).to_have_text("39 min ago")  # the hub's clock, not the phone's
    assert await page.evaluate("document.body.classList.contains('is-ringing')")

    await card.get_by_role("button", name="Accept").click()
    await expect(card.get_by_role("button", name="On my way")).to_be_visible()
    await expect(card.get_by_role("button", name="On site")).to_be_hidden()  # only the next step
    await expect(card.locator("form.act-resolve")).to_be_hidden()
    await card.get_by_role("button", name="On my way").click()
    await card.get_by_role("button", name="On site").click()
    resolve = card.locator("form.act-resolve")
    await resolve.get_by_label("Outcome").select_option("assisted")
    await resolve.get_by_role("button", name="Resolve").click()
    await expect(card).to_have_count(0, timeout=1000)

    await staff_site.desk.lane.store.flushed()
    await page.get_by_role("link", name="Night log").click()
    entry = page.locator(f"#log-{alarm.id}")
    await expect(entry).to_contain_text("02:14")
    await expect(entry).to_contain_text("Resolved: Assisted")
    await expect(entry.locator(".step-condition_ended")).to_contain_text("02:23")
    await expect(entry.locator(".step-resolved")).to_contain_text("Anna")


async def test_a_repeat_rings_again_on_an_alarm_left_on_site(browser: Browser, staff_site: StaffSite) -> None:
    """Three missed doses: the alarm left "On site" rings again for its holder, says "3rd time since 02:14 · latest
    17:14" and stays hers and on site."""
    staff_site.clock.t = NIGHT
    page = await open_page(browser, staff_site, "anna")
    await pages_connected(staff_site, 1)
    med = {"rule_id": "medication_missed", "severity": Severity.MEDIUM, "device": "plug2", "resident": "r2"}
    alarm = staff_site.desk.lane.apply(decision(staff_site.site, subject="r2", **med))
    assert alarm is not None
    card = page.locator(f"#alarm-{alarm.id}")
    await card.get_by_role("button", name="Accept").click()
    await card.get_by_role("button", name="On my way").click()
    await card.get_by_role("button", name="On site").click()
    await expect(card.locator(".state")).to_have_text("On site")
    assert not await page.evaluate("document.body.classList.contains('is-ringing')")
    for hours in (8, 16):
        staff_site.clock.t = NIGHT.replace(hour=1 + hours)
        repeat = replace(decision(staff_site.site, DecisionAction.UPDATE, subject="r2", **med), repeat=True)
        staff_site.desk.lane.apply(repeat)
    await expect(card.locator(".repeat")).to_have_text("3rd time since 02:14 · latest 18:14", timeout=1000)
    await expect(card.locator(".again")).to_have_text("Alarming again 18:14")
    await expect(card.locator(".state")).to_have_text("On site")
    await expect(page.locator("body")).to_have_class(re.compile(r"\bis-ringing\b"))
    await expect(card.locator(".accepted-by")).to_have_text("Anna")


async def test_a_technical_fault_reported_again_stays_taken_and_says_how_often(
    browser: Browser, staff_site: StaffSite
) -> None:
    """A camera still at 0 fps in every stats message: the taken alarm stays taken, the card counts the reports."""
    staff_site.clock.t = NIGHT
    page = await open_page(browser, staff_site, "anna")
    await pages_connected(staff_site, 1)
    cam = {"rule_id": "camera_offline", "category": AlarmCategory.TECHNICAL, "severity": Severity.MEDIUM}
    fault = decision(staff_site.site, subject="plug2", device="plug2", resident="r2", **cam)
    alarm = staff_site.desk.lane.apply(fault)
    assert alarm is not None
    card = page.locator(f"#alarm-{alarm.id}")
    await card.get_by_role("button", name="Accept").click()
    await expect(card.locator(".state")).to_have_text("Accepted")
    await expect(card.locator(".still")).to_be_hidden()
    for _ in range(3):  # a stats message a minute
        staff_site.clock.advance(60)
        staff_site.desk.lane.apply(replace(fault, action=DecisionAction.RAISE, at=staff_site.clock.now()))
    await expect(card.locator(".still")).to_have_text(
        "Fault reported 4 times – the same fault, it does not ring again", timeout=1000
    )
    await expect(card.locator(".state")).to_have_text("Accepted")
    await expect(card.locator(".repeat")).to_be_hidden()
    await page.reload()
    await expect(card.locator(".still")).to_contain_text("4 times")


async def test_an_alarm_reset_at_the_unit_closes_and_the_night_log_says_a_person_did_it_there(
    browser: Browser, staff_site: StaffSite
) -> None:
    staff_site.clock.t = NIGHT
    page = await open_page(browser, staff_site, "anna")
    await pages_connected(staff_site, 1)
    press = decision(staff_site.site, rule_id="alarm_button", device="plug2", subject="r2", resident="r2")
    alarm = staff_site.desk.lane.apply(press)
    assert alarm is not None
    card = page.locator(f"#alarm-{alarm.id}")
    await expect(card).to_be_visible(timeout=1000)
    staff_site.clock.advance(4 * 60)
    reset = replace(press, action=DecisionAction.CANCEL, reason="reset at the alarm unit", by_person=True)
    staff_site.desk.lane.apply(reset)
    await expect(card).to_have_count(0, timeout=1000)
    await staff_site.desk.lane.store.flushed()
    await page.get_by_role("link", name="Night log").click()
    entry = page.locator(f"#log-{alarm.id}")
    await expect(entry.locator(".step-reset")).to_contain_text("02:18")
    await expect(entry.locator(".step-reset")).to_contain_text("reset at the alarm unit, closed by a person there")


async def test_an_alarm_unit_that_gave_up_on_vaka_leaves_the_alarm_ringing_and_says_so(
    browser: Browser, staff_site: StaffSite
) -> None:
    """SCAIP RE (SS 91100:2014 4.4): nobody ended the alarm, so the card keeps it, ringing, in words of its own."""
    staff_site.clock.t = NIGHT
    page = await open_page(browser, staff_site, "anna")
    await pages_connected(staff_site, 1)
    press = decision(staff_site.site, rule_id="alarm_button", device="plug2", subject="r2", resident="r2")
    alarm = staff_site.desk.lane.apply(press)
    assert alarm is not None
    card = page.locator(f"#alarm-{alarm.id}")
    await expect(card).to_be_visible(timeout=1000)
    staff_site.clock.advance(3 * 60)
    staff_site.desk.lane.apply(replace(press, action=DecisionAction.CANCEL, reason=ABORT_REASON))
    await expect(card.locator(".ended")).to_have_text(
        "The alarm unit stopped waiting for Vaka 02:17 and may have alerted another receiver. "
        "The alarm still needs a person.",
        timeout=1000,
    )
    await expect(card.locator(".state")).to_have_text("New")
    await staff_site.desk.lane.store.flushed()
    await page.get_by_role("link", name="Night log").click()
    step = page.locator(f"#log-{alarm.id}").locator(".step-sender_gave_up")
    await expect(step).to_contain_text("02:17")
    await expect(step).to_contain_text("the alarm unit gave up on Vaka")


async def test_a_repeat_while_on_the_way_stays_with_the_holder_and_keeps_the_way_in(
    browser: Browser, staff_site: StaffSite
) -> None:
    """Finding 2: a second press while Anna is on her way rings for her, not for Bo; her card stays "On my way" with
    the key box code, says "Alarming again 02:31"; "Got it" stops the ringing and nothing else changes."""
    r1 = f"{staff_site.site}-r1"
    async with staff_site.db.acquire() as conn:
        await store_entries(
            conn, [DirectoryEntry(resident=r1, name="Karin Berg", address="Storgatan 1", access="Nyckelbox, kod 4411")]
        )
    await staff_site.desk.restorer.refresh(sites=True)
    staff_site.clock.t = NIGHT
    anna = await open_page(browser, staff_site, "anna")
    bo = await open_page(browser, staff_site, "bo")
    await pages_connected(staff_site, 2)
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    card = anna.locator(f"#alarm-{alarm.id}")
    await card.get_by_role("button", name="Accept").click()
    await card.get_by_role("button", name="On my way").click()
    await expect(card.locator(".home-access")).to_have_text("Nyckelbox, kod 4411", timeout=2000)
    await expect(anna.locator("body")).not_to_have_class(re.compile(r"\bis-ringing\b"))
    staff_site.clock.advance(17 * 60)
    staff_site.desk.lane.apply(replace(decision(staff_site.site, DecisionAction.UPDATE), repeat=True))
    await expect(card.locator(".again")).to_have_text("Alarming again 02:31", timeout=1000)
    await expect(card.locator(".repeat")).to_have_text("2nd time since 02:14 · latest 02:31")
    await expect(card.locator(".state")).to_have_text("On the way")
    await expect(card.get_by_role("button", name="Accept")).to_be_hidden()
    await expect(card.locator(".home-access")).to_have_text("Nyckelbox, kod 4411")
    await expect(anna.locator("body")).to_have_class(re.compile(r"\bis-ringing\b"))
    colleague = bo.locator(f"#alarm-{alarm.id}")
    await expect(colleague.locator(".again")).to_have_text("Alarming again 02:31")
    await expect(colleague.get_by_role("button", name="Got it")).to_be_hidden()
    assert not await bo.evaluate("document.body.classList.contains('is-ringing')")
    channel = staff_site.desk.lane.dispatcher.notifiers[0]
    assert isinstance(channel, RecordingNotifier)
    await staff_site.desk.lane.dispatcher.drain()
    assert [e for e in channel.escalations() if e[1] == "holder"] == [
        (0, "holder", [f"anna-{staff_site.site}"])
    ]  # her phone

    await card.get_by_role("button", name="Got it").click()
    await expect(card.locator(".again")).to_be_hidden(timeout=1000)
    await expect(anna.locator("body")).not_to_have_class(re.compile(r"\bis-ringing\b"))
    await expect(card.locator(".state")).to_have_text("On the way")
    await expect(card.locator(".home-access")).to_have_text("Nyckelbox, kod 4411")
    await expect(card.locator(".accepted-by")).to_have_text("Anna")


async def test_acting_on_a_colleagues_alarm_asks_to_take_over_and_the_card_shows_who_has_it(
    browser: Browser, staff_site: StaffSite
) -> None:
    anna = await open_page(browser, staff_site, "anna")
    bo = await open_page(browser, staff_site, "bo")
    await pages_connected(staff_site, 2)
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    await anna.locator(f"#alarm-{alarm.id}").get_by_role("button", name="Accept").click()
    card = bo.locator(f"#alarm-{alarm.id}")
    await expect(card.locator(".accepted-by")).to_have_text("Anna", timeout=1000)
    asked: list[str] = []

    async def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    bo.on("dialog", answer)
    await card.get_by_role("button", name="On my way").click()
    await expect(card.locator(".accepted-by")).to_have_text("Bo", timeout=2000)
    await expect(anna.locator(f"#alarm-{alarm.id} .accepted-by")).to_have_text("Bo", timeout=1000)
    assert asked == ["Take over from Anna?"]
    await staff_site.desk.lane.store.flushed()
    async with staff_site.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT actor, detail FROM desk_alarm_log WHERE alarm_id = $1 AND action = 'taken_over'", alarm.id
        )
    assert row is not None
    assert row["actor"] == f"staff:{staff_site.staff['bo'].id}"
    assert row["detail"] == f"from=staff:{staff_site.staff['anna'].id}"


async def test_an_alarm_with_nobody_on_duty_reaches_everyone_of_the_site_and_the_fallback(
    browser: Browser, staff_site: StaffSite
) -> None:
    staff_site.settings.patrol.fallback_phones = {"*": "+46700009999"}
    carl = await open_page(browser, staff_site, "carl")  # unit B: the fall in unit A is not his, "nobody reached" is
    await pages_connected(staff_site, 1)
    await carl.get_by_role("button", name="Go off duty").click()
    await expect(carl.locator(".duty-state")).to_have_text("Not on duty")
    staff_site.desk.directory.set_duty({})  # the rest of the site is off duty too
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    nobody = staff_site.desk.machine.get_open_by_key(f"{NOBODY_REACHED}:{staff_site.site}")
    assert nobody is not None
    card = carl.locator(f"#alarm-{nobody.id}")
    await expect(card).to_be_visible(timeout=1000)
    await expect(card.locator(".what")).to_have_text("Alarm reached nobody")
    await expect(card.locator(".reason")).to_have_text("Nobody on duty was reached for: Fall, room 101")
    assert await carl.locator(f"#alarm-{alarm.id}").count() == 0
    channel = staff_site.desk.lane.dispatcher.notifiers[0]
    assert isinstance(channel, RecordingNotifier)
    await staff_site.desk.lane.dispatcher.drain()
    fallback = [n for n in channel.seen if n.event == "escalation" and n.alarm["rule_id"] == NOBODY_REACHED]
    assert fallback
    assert fallback[0].phones == ("+46700009999",)
    assert len(fallback[0].recipients) == 5  # everyone of the site, on duty or not


async def test_swedish_page_language_switch_and_no_serious_accessibility_violations(
    browser: Browser, staff_site: StaffSite
) -> None:
    staff_site.clock.t = NIGHT
    staff_site.desk.lane.apply(door(staff_site))
    staff_site.clock.advance(9 * 60)
    staff_site.desk.lane.apply(door(staff_site, DecisionAction.CLEAR))
    staff_site.desk.lane.apply(
        decision(
            staff_site.site,
            rule_id="bed_exit_no_return",
            subject="r2",
            resident="r2",
            device="plug2",
            severity=Severity.HIGH,
            reason="out of bed for 23 min, not back",
        )
    )
    page = await open_page(browser, staff_site, "anna")
    await expect(page.locator("li.alarm")).to_have_count(2)
    found = await axe_violations(page)
    assert found == [], [(v["id"], v["help"]) for v in found]
    await page.get_by_role("button", name="Svenska").click()
    await expect(page.locator("h1")).to_have_text("Öppna larm")
    await expect(page.locator("html")).to_have_attribute("lang", "sv")
    bed = page.locator("li.alarm", has_text="Uppe ur sängen")
    await expect(bed.locator(".reason")).to_have_text("Uppe ur sängen i 23 min, inte tillbaka")
    door_card = page.locator("li.alarm", has_text="Ytterdörr")
    await expect(door_card.locator(".ended")).to_contain_text("ytterdörren stängdes")
    await expect(door_card.locator(".nobody")).to_have_text("Ingen har tagit larmet")
    found = await axe_violations(page)
    assert found == [], [(v["id"], v["help"]) for v in found]
    for path in ("/staff/residents", "/staff/log"):
        await page.goto(staff_site.url + path)
        found = await axe_violations(page)
        assert found == [], (path, [(v["id"], v["help"]) for v in found])
    await page.get_by_role("button", name="English").click()
    await expect(page.locator("h1")).to_have_text("Night log")
    found = await axe_violations(page)
    assert found == [], [(v["id"], v["help"]) for v in found]
    box = await page.locator("header.top").bounding_box()
    assert box is not None
    assert box["height"] < 150  # three short lines, not 330 px of the 844


async def test_sound_is_turned_on_once_per_login(browser: Browser, staff_site: StaffSite) -> None:
    page = await open_page(browser, staff_site, "anna")
    sound = page.locator("#enable-sound")
    await expect(sound).to_be_visible()
    await sound.click()
    await page.get_by_role("link", name="Residents").click()
    await page.get_by_role("link", name="Alarms").click()
    await expect(page.locator("#enable-sound")).to_have_class(re.compile(r"\binvisible\b"))
    assert await page.evaluate("sessionStorage.getItem('vaka.sound')") == "on"


async def test_on_my_way_shows_the_home_and_how_to_get_in_and_every_read_is_logged(
    browser: Browser, staff_site: StaffSite
) -> None:
    """Issue 28, finding 10: the colleague on duty saw nothing of the home. Now everyone of the unit on duty sees the
    resident's name and address on the card (to back up); how to get in, contacts and notes only the person on the way,
    and only while she is: taken over, they go to the new holder. Off duty, a card shows nothing of the home."""
    r1 = f"{staff_site.site}-r1"
    async with staff_site.db.acquire() as conn:
        await store_entries(
            conn,
            [
                DirectoryEntry(
                    resident=r1,
                    name="Karin Berg",
                    address="Storgatan 1",
                    access="Nyckelbox vid dörren, kod 4411",
                    contacts=[Contact(name="Eva Berg", phone="070-111 22 33", relation="dotter")],
                    notes="Hund, snäll",
                )
            ],
        )
        await conn.execute("UPDATE residents SET away = true WHERE id = $1", f"{staff_site.site}-r2")
    await staff_site.desk.restorer.refresh(sites=True)
    anna = await open_page(browser, staff_site, "anna")
    bo = await open_page(browser, staff_site, "bo")
    await pages_connected(staff_site, 2)
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    card = anna.locator(f"#alarm-{alarm.id}")
    await card.get_by_role("button", name="Accept").click()
    await expect(card.locator("section.home .home-name")).to_have_text("Karin Berg")
    await expect(card.locator("section.home .home-access-part")).to_be_hidden()  # not yet on her way
    await card.get_by_role("button", name="On my way").click()
    home = card.locator("section.home")
    await expect(home).to_be_visible(timeout=2000)
    await expect(home.locator(".home-name")).to_have_text("Karin Berg")
    await expect(home.locator(".home-access")).to_have_text("Nyckelbox vid dörren, kod 4411")
    await expect(home.get_by_role("link", name="070-111 22 33")).to_have_attribute("href", "tel:0701112233")
    backup = bo.locator(f"#alarm-{alarm.id} section.home")  # a colleague on duty: who and where, to back up
    await expect(backup).to_be_visible(timeout=2000)
    await expect(backup.locator(".home-name")).to_have_text("Karin Berg")
    await expect(backup.locator(".home-address")).to_have_text("Storgatan 1")
    await expect(backup.locator(".home-access-part")).to_be_hidden()
    await expect(backup.locator(".home-notes-part")).to_be_hidden()
    await expect(backup.locator(".home-contacts li")).to_have_count(0)
    answer = await bo.evaluate("async (id) => (await fetch('/staff/alarms/' + id + '/home')).json()", alarm.id)
    assert answer["home"]["access"] == ""  # asked directly, the access instructions are still withheld
    assert answer["home"]["contacts"] == []
    assert answer["home"]["notes"] == ""
    await staff_site.desk.lane.store.flushed()
    async with staff_site.db.acquire() as conn:
        purposes = {
            (r["staff_id"], r["purpose"])
            for r in await conn.fetch("SELECT staff_id, purpose FROM resident_access_log WHERE resident_id = $1", r1)
        }
    assert (staff_site.staff["anna"].id, "home_access") in purposes
    assert (staff_site.staff["bo"].id, "home") in purposes

    bo.on("dialog", lambda dialog: dialog.accept())  # "Take over from Anna?"
    await bo.locator(f"#alarm-{alarm.id}").get_by_role("button", name="On site").click()
    await expect(backup.locator(".home-access")).to_have_text("Nyckelbox vid dörren, kod 4411", timeout=2000)
    await expect(home.locator(".home-access-part")).to_be_hidden(timeout=2000)  # Anna is no longer on the way
    await expect(home.locator(".home-contacts li")).to_have_count(0)
    await expect(home.locator(".home-address")).to_have_text("Storgatan 1")
    await bo.get_by_role("button", name="Go off duty").click()
    await expect(bo.locator(".duty-state")).to_have_text("Not on duty")
    await expect(bo.locator(f"#alarm-{alarm.id} .accepted-by")).to_have_text("Bo")
    await expect(backup.locator(".home-access")).to_have_text("Nyckelbox vid dörren, kod 4411")  # still hers
    async with staff_site.db.acquire() as conn:
        await store_entries(conn, [DirectoryEntry(resident=f"{staff_site.site}-r2", name="Per Ek", address="Lillv 2")])
    async with bo.expect_response(lambda r: r.url.endswith("/home")) as asked:
        second = staff_site.desk.lane.apply(decision(staff_site.site, subject="r2", resident="r2", device="plug2"))
        assert second is not None
    assert await (await asked.value).json() == {"home": None}  # off duty and not hers: nothing of the home
    await expect(bo.locator(f"#alarm-{second.id} section.home")).to_be_hidden()

    await anna.get_by_role("link", name="Residents").click()
    row = anna.locator(f"#resident-{r1}")
    await expect(row.locator(".resident-name")).to_have_text("Karin Berg")
    await expect(row.locator(".status-alarm")).to_have_text("Open alarm: Fall")
    await expect(row.locator(".last-activity")).to_have_text("Last activity: none in the last week")
    await expect(anna.locator(f"#resident-{staff_site.site}-r2 .status-away")).to_have_text("Away / in hospital")
    found = await axe_violations(anna)
    assert found == [], [(v["id"], v["help"]) for v in found]


async def test_a_nurse_manages_accounts_residents_away_and_devices_in_the_browser_audited(
    browser: Browser, staff_site: StaffSite
) -> None:
    site = staff_site.site
    anna = await open_page(browser, staff_site, "anna")
    response = await anna.goto(f"{staff_site.url}/staff/admin")
    assert response is not None
    assert response.status == 403  # staff: no admin page
    bo = await open_page(browser, staff_site, "bo")
    nils = await open_page(browser, staff_site, "nils")
    await nils.get_by_role("link", name="Admin").click()
    add = nils.locator("form.admin-add")
    await add.get_by_label("User name").fill(f"ulla-{site}")
    await add.get_by_label("Name colleagues see").fill("Ulla")
    await add.get_by_label("Units (site/unit)").fill(f"{site}/A")
    await add.get_by_label("Password").fill("ulla-natt-2026")
    await add.get_by_role("button", name="Add account").click()
    await expect(nils.locator("p.done")).to_contain_text(f"Account ulla-{site} created")
    await expect(nils.locator(f"#account-ulla-{site}")).to_contain_text("Ulla")
    await expect(nils.locator(f"#account-lisa-{site} form")).to_have_count(0)  # an admin's account is not hers

    await nils.locator(f"#account-bo-{site} summary").click()
    await nils.locator(f"#account-bo-{site}").get_by_role("button", name="Disable").click()
    await expect(nils.locator(f"#account-bo-{site}")).to_contain_text("account disabled")
    await bo.reload()
    await expect(bo).to_have_url(f"{staff_site.url}/staff/login")  # his session ended with the account

    await nils.locator(f"#admin-resident-{site}-r2").get_by_role("button", name="Mark away").click()
    await expect(nils.locator(f"#admin-resident-{site}-r2")).to_contain_text("Away / in hospital")
    await nils.locator(f"#admin-resident-{site}-r2").get_by_role("link", name="Devices (1)").click()
    await nils.locator(f"#admin-device-{site}-plug2").get_by_role("button", name="To maintenance").click()
    await expect(nils.locator(f"#admin-device-{site}-plug2")).to_contain_text("in maintenance")
    found = await axe_violations(nils)
    assert found == [], [(v["id"], v["help"]) for v in found]
    await nils.get_by_role("button", name="Svenska").click()
    await expect(nils.locator("h1")).to_have_text("Administration")
    found = await axe_violations(nils)
    assert found == [], [(v["id"], v["help"]) for v in found]

    ulla = await staff_page(browser, staff_site.url, site, "ulla", password="ulla-natt-2026")
    await expect(ulla.locator("h1")).to_have_text("Öppna larm")
    async with staff_site.db.acquire() as conn:
        audit = [
            (r["staff_id"], r["action"], r["target"])
            for r in await conn.fetch("SELECT staff_id, action, target FROM admin_audit_log ORDER BY seq")
        ]
        assert await conn.fetchval("SELECT away FROM residents WHERE id = $1", f"{site}-r2") is True
        assert await conn.fetchval("SELECT maintenance FROM devices WHERE id = $1", f"{site}-plug2") is True
    nurse = staff_site.staff["nils"].id
    assert audit == [
        (nurse, "staff_add", f"ulla-{site}"),
        (nurse, "staff_disable", f"bo-{site}"),
        (nurse, "resident_away", f"{site}-r2"),
        (nurse, "device_maintenance", f"{site}-plug2"),
    ]


async def test_the_route_orders_open_alarms_by_travel_time_from_where_i_am(
    browser: Browser, staff_site: StaffSite
) -> None:
    site = staff_site.site
    async with staff_site.db.acquire() as conn:
        await store_entries(
            conn,
            [
                DirectoryEntry(resident=f"{site}-r1", name="Far", address="Ytterby 1", latitude=63.90, longitude=20.40),
                DirectoryEntry(
                    resident=f"{site}-r2", name="Near", address="Centrum 2", latitude=63.826, longitude=20.264
                ),
            ],
        )
    staff_site.desk.lane.apply(decision(staff_site.site))  # r1, critical
    staff_site.desk.lane.apply(
        decision(site, rule_id="alarm_button", subject="r2", resident="r2", device="plug2", severity=Severity.HIGH)
    )
    page = await open_page(browser, staff_site, "anna")
    await page.goto(f"{staff_site.url}/staff/patrol?from=63.8258,20.2630")
    stops = page.locator("li.patrol-stop .stop-home")
    await expect(stops).to_have_text(["Near, Centrum 2", "Far, Ytterby 1"])
    await expect(page.locator("li.patrol-stop .minutes").first).to_have_text("0 min away")
    found = await axe_violations(page)
    assert found == [], [(v["id"], v["help"]) for v in found]


async def test_the_route_without_a_start_point_says_no_coordinates_only_for_homes_without_them(
    browser: Browser, staff_site: StaffSite
) -> None:
    """Finding 3: with no start point every stop used to say "the address has no coordinates"."""
    site = staff_site.site
    async with staff_site.db.acquire() as conn:
        await store_entries(
            conn,
            [
                DirectoryEntry(
                    resident=f"{site}-r1", name="Mapped", address="Ytterby 1", latitude=63.9, longitude=20.4
                ),
                DirectoryEntry(resident=f"{site}-r2", name="Unmapped", address="Okänd väg"),
            ],
        )
    mapped = staff_site.desk.lane.apply(decision(site))
    unmapped = staff_site.desk.lane.apply(
        decision(site, rule_id="alarm_button", subject="r2", resident="r2", device="plug2")
    )
    assert mapped is not None
    assert unmapped is not None
    page = await open_page(browser, staff_site, "anna")
    await page.goto(f"{staff_site.url}/staff/patrol")
    await expect(page.locator(".patrol-from")).to_contain_text("No starting point")
    await expect(page.locator(f"#stop-{mapped.id} .no-coordinates")).to_have_count(0)
    await expect(page.locator(f"#stop-{unmapped.id} .no-coordinates")).to_be_visible()


async def test_a_nurse_gives_a_resident_a_rule_profile_in_the_browser_in_both_languages(
    browser: Browser, staff_site: StaffSite
) -> None:
    """Phone-sized: the profiles and what they change, in words; a choice per resident of her unit; saved, audited;
    axe finds nothing serious in English or Swedish."""
    site = staff_site.site
    nils = await open_page(browser, staff_site, "nils")
    await nils.goto(f"{staff_site.url}/staff/admin#profiles")
    catalogue = nils.locator("details.profile-catalogue")
    await catalogue.locator("summary").click()
    await expect(catalogue.locator("#profile-wanders_at_night")).to_contain_text("Walks at night")
    await expect(catalogue).to_contain_text("Out of bed, not back: after 10 min")
    found = await axe_violations(nils)
    assert found == [], [(v["id"], v["help"]) for v in found]
    row = nils.locator(f"#admin-profile-{site}-r1")
    await row.get_by_label(f"Room 101 ({site}-r1)").select_option("wanders_at_night")
    await row.get_by_role("button", name="Save profile").click()
    await expect(nils.locator("p.done")).to_contain_text(f"Rule profile of {site}-r1 saved")
    await expect(nils.locator(f"#admin-profile-{site}-r1 select")).to_have_value("wanders_at_night")
    await expect(nils.locator(f"#admin-profile-{site}-r3")).to_have_count(0)  # unit B is not hers

    await nils.get_by_role("button", name="Svenska").click()
    await expect(nils.locator("h1")).to_have_text("Administration")
    await expect(nils.locator("#profiles")).to_have_text("Regelprofiler")
    row = nils.locator(f"#admin-profile-{site}-r2")
    await row.get_by_label(f"Rum 102 ({site}-r2)").select_option("feels_the_cold")
    await row.get_by_role("button", name="Spara profil").click()
    await expect(nils.locator(f"#admin-profile-{site}-r2 select")).to_have_value("feels_the_cold")
    await nils.locator("details.profile-catalogue summary").click()
    await expect(nils.locator("details.profile-catalogue")).to_contain_text(
        "Kallt i rummet: gräns 18, normalt igen vid 19"
    )
    found = await axe_violations(nils)
    assert found == [], [(v["id"], v["help"]) for v in found]
    async with staff_site.db.acquire() as conn:
        audit = [(r["action"], r["target"]) for r in await conn.fetch("SELECT action, target FROM admin_audit_log")]
    assert audit == [("resident_profile", f"{site}-r1"), ("resident_profile", f"{site}-r2")]


async def test_the_night_log_counts_onward_rings_names_who_did_it_and_says_one_time_in_swedish(
    browser: Browser, staff_site: StaffSite
) -> None:
    """Finding 6: the first ring is not "larmade vidare"; one onward ring is "1 gång"; a resident's own press is
    "Boende", the desk's "Larmet når ingen" is "Vaka", a door is "Enhet"."""
    staff_site.clock.t = NIGHT
    page = await open_page(browser, staff_site, "anna")
    await pages_connected(staff_site, 1)
    press = staff_site.desk.lane.apply(
        decision(staff_site.site, rule_id="alarm_button", device="button1", reason="alarm button pressed")
    )
    assert press is not None
    staff_site.clock.advance(61)  # nobody took it: the second tier rings on
    staff_site.desk.lane.escalate_due()
    taken_at_once = staff_site.desk.lane.apply(door(staff_site))
    assert taken_at_once is not None
    for alarm in (press, taken_at_once):
        card = page.locator(f"#alarm-{alarm.id}")
        await card.get_by_role("button", name="Accept").click()
        await expect(card.locator(".state")).to_have_text("Accepted")
    staff_site.desk.directory.set_duty({})  # everyone went home: the next alarm reaches nobody
    staff_site.desk.lane.apply(decision(staff_site.site, subject="r2", resident="r2"))
    await staff_site.desk.lane.store.flushed()
    await page.get_by_role("link", name="Night log").click()
    one = page.locator(f"#log-{press.id} .log-state")
    await expect(one).to_contain_text("escalated 1 time")
    await expect(one).not_to_contain_text("times")
    await page.get_by_role("button", name="Svenska").click()
    await expect(page.get_by_role("heading", name="Nattlogg", exact=True)).to_be_visible()
    pressed = page.locator(f"#log-{press.id}")
    await expect(pressed.locator(".log-state")).to_contain_text("larmade vidare 1 gång")
    await expect(pressed.locator(".log-state")).not_to_contain_text("gånger")
    await expect(pressed.locator(".step-raised .who")).to_have_text("Boende")
    await expect(page.locator(f"#log-{taken_at_once.id} .log-state")).not_to_contain_text("larmade vidare")
    await expect(page.locator(f"#log-{taken_at_once.id} .step-raised .who")).to_have_text("Enhet")
    nobody = staff_site.desk.machine.get_open_by_key(f"{NOBODY_REACHED}:{staff_site.site}")
    assert nobody is not None
    await expect(page.locator(f"#log-{nobody.id} .step-raised .who")).to_have_text("Vaka")


def contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """WCAG contrast ratio of two sRGB colours (0-255)."""

    def lum(c: tuple[float, ...]) -> float:
        ch = [x / 255 for x in c[:3]]
        lin = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in ch]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def rgb(css: str) -> tuple[float, ...]:
    return tuple(float(x) for x in re.findall(r"[\d.]+", css)[:3])


async def test_the_phone_layout_is_for_work(browser: Browser, staff_site: StaffSite) -> None:
    """Finding 9/10, phone-sized: a compact header with the hub's time and duty; signing out is at the foot and asks
    about the shift; no preset outcome; a focus ring of at least 3:1 on the ringing header; the admin page pages its
    residents and shows one resident's devices, searchable."""
    staff_site.clock.t = NIGHT
    page = await open_page(browser, staff_site, "anna")
    header = page.locator("header.top")
    await expect(header.locator(".now")).to_have_text("02:14")
    await expect(header.locator(".duty-state")).to_contain_text("On duty until")
    box = await header.bounding_box()
    assert box is not None
    assert box["height"] < 150, box  # three short lines (it was 330 px of the 844)
    await expect(header.get_by_role("button", name=re.compile("Sign out"))).to_have_count(0)
    alarm = staff_site.desk.lane.apply(decision(staff_site.site))
    assert alarm is not None
    await expect(page.locator("body")).to_have_class(re.compile(r"\bis-ringing\b"))
    card = page.locator(f"#alarm-{alarm.id}")
    # the focus ring on the red header: keyboard focus on its first link
    link = header.get_by_role("link", name="Night log")
    await link.focus()
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Tab")
    ring = await link.evaluate("e => getComputedStyle(e).outlineColor")
    behind = await header.evaluate("e => getComputedStyle(e).backgroundColor")
    assert contrast(rgb(ring), rgb(behind)) >= 3.0, (ring, behind)

    await card.get_by_role("button", name="Accept").click()
    await card.get_by_role("button", name="On my way").click()
    await card.get_by_role("button", name="On site").click()
    resolve = card.locator("form.act-resolve")
    await expect(resolve.get_by_label("Outcome")).to_have_value("")  # nothing chosen for her
    await resolve.get_by_role("button", name="Resolve").click()
    await expect(card).to_be_visible()  # the form asks for an outcome first
    await resolve.get_by_label("Outcome").select_option("false_alarm")
    await resolve.get_by_role("button", name="Resolve").click()
    await expect(card).to_have_count(0, timeout=2000)

    await page.locator("footer summary").click()
    await expect(page.locator("footer")).to_contain_text("You are on duty until")
    await page.get_by_role("button", name="Sign out but stay on duty").click()
    await page.wait_for_url(f"{staff_site.url}/staff/login")
    assert staff_site.desk.duty.on_duty(staff_site.staff["anna"]) is not None  # she chose to stay on duty

    nils = await open_page(browser, staff_site, "nils")
    await nils.goto(f"{staff_site.url}/staff/admin")
    await expect(nils.locator("li[id^=admin-device-]")).to_have_count(0)  # no device forms until a resident is chosen
    await nils.locator(f"#admin-resident-{staff_site.site}-r1").get_by_role("link", name=re.compile("Devices")).click()
    await expect(nils.locator("li[id^=admin-device-]")).to_have_count(1)
    await nils.get_by_label("Search account, room or resident").fill("102")
    await nils.get_by_role("button", name="Search").click()
    await expect(nils.locator("li[id^=admin-resident-]")).to_have_count(1)
    await expect(nils.locator(f"#admin-resident-{staff_site.site}-r2")).to_be_visible()
    height = await nils.evaluate("document.documentElement.scrollHeight")
    assert height < 3000, height
