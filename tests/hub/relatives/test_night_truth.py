"""What the relative's status says about alarms is true (issue 26): never "calm" or "handled" while an alarm of the
resident is open; "handled" only when a person closed it; a technical alarm the device ended itself is handled by
nobody. Every combination of open/closed, care/technical, person/device ending, at the API and on the page in all
four languages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape

from hub.relatives.consent import Scope
from hub.texts.catalogue import RELATIVE_LANGS, translations
from tests.hub.relatives.conftest import DAUGHTER, Relative, RelativesSite

ZONE = ZoneInfo("Europe/Stockholm")


@dataclass(frozen=True)
class Alarm:
    """One desk alarm, times as (days before the morning, "HH:MM") in the site's zone."""

    category: str
    raised: tuple[int, str]
    state: str = "raised"  # raised / accepted (open), resolved (a person), cancelled (the device or rule)
    closed: tuple[int, str] | None = None
    condition_ended: tuple[int, str] | None = None
    device_only: bool = False  # a device's technical alarm naming no resident: hers through her device


@dataclass(frozen=True)
class Case:
    alarms: list[Alarm]
    state: str
    handled: list[tuple[str, str]] = field(default_factory=list)  # (HH:MM, category) in the night and the notices
    open: bool = False


CASES = {
    "nothing happened": Case([], "calm"),
    "care alarm open (fall at 00:47, never handled)": Case([Alarm("care", (0, "00:47"))], "open", open=True),
    "care alarm open, the device ended the condition (button cancelled)": Case(
        [Alarm("care", (1, "22:42"), condition_ended=(1, "22:43"))], "open", open=True
    ),
    "care alarm open since before the night": Case([Alarm("care", (1, "20:10"), "accepted")], "open", open=True),
    "care alarm closed by a person": Case(
        [Alarm("care", (0, "00:47"), "resolved", (0, "01:02"))], "alarms", [("01:02", "care")]
    ),
    "one fall handled at 23:06, a second at 02:56 still open": Case(
        [Alarm("care", (1, "22:58"), "resolved", (1, "23:06")), Alarm("care", (0, "02:56"), "accepted")],
        "open",
        [("23:06", "care")],
        open=True,
    ),
    "technical alarm open": Case([Alarm("technical", (0, "01:00"))], "open", open=True),
    "technical alarm of her radar, naming no resident, open": Case(
        [Alarm("technical", (0, "01:00"), device_only=True)], "open", open=True
    ),
    "technical alarm of her radar, naming no resident, closed by a person": Case(
        [Alarm("technical", (0, "01:00"), "resolved", (0, "01:40"), device_only=True)],
        "alarms",
        [("01:40", "technical")],
    ),
    "technical alarm the device ended itself": Case(
        [Alarm("technical", (0, "01:00"), "cancelled", (0, "01:20"))], "calm"
    ),
    "technical alarm closed by a person": Case(
        [Alarm("technical", (0, "01:00"), "resolved", (0, "01:30"))], "alarms", [("01:30", "technical")]
    ),
    "technical alarm the device ended, a care alarm handled": Case(
        [
            Alarm("technical", (0, "01:00"), "cancelled", (0, "01:20")),
            Alarm("care", (0, "03:00"), "resolved", (0, "03:12")),
        ],
        "alarms",
        [("03:12", "care")],
    ),
}


def _morning(site: RelativesSite) -> datetime:
    """Move the page's clock to 10:30 in the site's zone, the morning after the night under test."""
    real = site.clock()
    morning = real.astimezone(ZONE).replace(hour=10, minute=30, second=0, microsecond=0)
    if morning > real:
        morning -= timedelta(days=1)
    site.clock.advance((morning - real).total_seconds())
    return morning


def _at(morning: datetime, when: tuple[int, str]) -> datetime:
    days, hhmm = when
    hour, minute = map(int, hhmm.split(":"))
    return (morning - timedelta(days=days)).replace(hour=hour, minute=minute)


async def _store(site: RelativesSite, resident: str, morning: datetime, alarm: Alarm) -> None:
    raised = _at(morning, alarm.raised)
    closed = _at(morning, alarm.closed) if alarm.closed else None
    ended = _at(morning, alarm.condition_ended) if alarm.condition_ended else None
    rule = "fall_detected" if alarm.category == "care" else "device_silent"
    async with site.home.db.acquire() as conn:
        await conn.execute(
            "INSERT INTO desk_alarms (id, key, rule_id, category, severity, site, unit, resident_id, device_id,"
            " reason, state, outcome, raised_at, updated_at, accepted_by, closed_at, condition_ended_at)"
            " VALUES ($1, $2, $3, $4, 4, $5, 'A', $6, $7, 'x', $8, $9, $10, $10, $11, $12, $13)",
            uuid.uuid4().hex,
            f"{rule}:{resident}:{uuid.uuid4().hex}",
            rule,
            alarm.category,
            site.home.site,
            None if alarm.device_only else resident,
            f"{site.home.site}-radar1",
            alarm.state,
            "assisted" if alarm.state == "resolved" else None,
            raised,
            "Anna" if alarm.state in ("accepted", "resolved") else None,
            closed,
            ended,
        )


@pytest.mark.parametrize("name", list(CASES))
async def test_the_status_never_says_calm_or_handled_untruly(
    name: str, daughter: Relative, relatives_site: RelativesSite
) -> None:
    case = CASES[name]
    r1 = relatives_site.home.resident(1)
    morning = _morning(relatives_site)
    for alarm in case.alarms:
        await _store(relatives_site, r1, morning, alarm)
    await relatives_site.grant(DAUGHTER, r1, Scope.NIGHT_SUMMARY, Scope.ALARM_NOTICE, Scope.DEVICE_HEALTH)

    status, body = await daughter.get_json(f"/relative/api/v1/residents/{r1}/status")
    assert status == 200, body
    night = body["night_summary"]
    assert isinstance(night, dict)
    assert night["state"] == case.state
    assert night["night"] == (morning - timedelta(days=1)).date().isoformat()
    assert night["alarms_handled"] == [{"handled_at": hhmm, "category": c} for hhmm, c in case.handled]
    assert body["alarm_open"] is case.open
    expected_notices = [
        {"handled_at": _at(morning, (0 if hhmm < "12:00" else 1, hhmm)).isoformat(timespec="minutes"), "category": c}
        for hhmm, c in reversed(case.handled)
    ]
    assert body["alarm_notices"] == expected_notices
    if case.open:
        assert night["state"] not in ("calm", "restless", "alarms")

    for lang in RELATIVE_LANGS:
        t = translations(lang).gettext
        page = await daughter.http.get(f"/relative/residents/{r1}?lang={lang}")
        assert page.status == 200
        html = await page.text()
        assert str(escape(t(f"relatives.night.{case.state}"))) in html, (lang, name)
        assert html.count(str(escape(t("relatives.alarm.handled_at")))) == 2 * len(case.handled), (lang, name)
        says_open = str(escape(t("relatives.alarm.open"))) in html
        assert says_open is case.open, (lang, name)
        if case.open:
            for untrue in ("relatives.night.calm", "relatives.night.alarms", "relatives.notices.none"):
                assert str(escape(t(untrue))) not in html, (lang, name, untrue)
        if lang == "sv" and case.open:
            assert "En lugn natt" not in html
            assert "personalen tog hand om dem" not in html
            assert "Personalen har fått ett larm och tar hand om det just nu" in html
        if lang == "en" and name == "technical alarm the device ended itself":
            assert "A calm night." in html
            assert "An alarm was handled at" not in html
