"""The monthly report as a manager reads it: words for every id, totals, the previous month beside the current one,
every night's bar with the cut nights marked, a preliminary period marked, and a PDF of a few pages."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pypdfium2
import pytest

from hub.followup import labels, report
from hub.followup.indicators import Scope, last_tiers, month
from hub.settings import DeskSettings
from hub.store import rollup
from hub.texts.catalogue import rule_labels
from tests.hub.followup.conftest import SITE

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
NOVEMBER = month("2026-11")


async def _build(conn: asyncpg.Connection, now: datetime = NOW) -> report.Report:
    await rollup.refresh(conn, now)
    return await report.build(conn, Scope(SITE), NOVEMBER, now, last_tiers=last_tiers(DeskSettings()))


async def test_every_night_has_its_bar_and_the_cut_nights_are_marked(known_month: asyncpg.Connection) -> None:
    built = await _build(known_month)
    care = sum(v or 0 for k, v in built.current.values["alarms.count"].items() if dict(k)["category"] == "care")
    # the bars add up to the table: the night of 31 October has its bar (its hours after midnight are November's)
    assert sum(n.alarms for n in built.nights) == care == 3
    assert (built.nights[0].began, built.nights[-1].began) == (date(2026, 10, 31), date(2026, 11, 30))
    assert [n.began for n in built.nights if n.partial] == [date(2026, 10, 31), date(2026, 11, 30)]
    assert len(built.nights) == 31
    # October beside it: a6 at 23:30 local on 31 October, in the night of 31 October
    assert sum(n.alarms for n in built.previous_nights) == 1


async def test_words_for_every_id_and_totals(known_month: asyncpg.Connection, tmp_path: Path) -> None:
    built = await _build(known_month)
    html = report.to_html(built, "sv")
    body = re.sub(r"<svg.*?</svg>", "", html, flags=re.S)
    table = body[body.index("<table>") :]
    for raw in ("alarm_button", "false_alarm", "staff_process", "checkin_overdue", "fall_radar", "care,"):
        assert raw not in table, raw
    assert "Trygghetslarm · Fall" in table
    assert "Personalens process · Tillsyn inte gjord i tid" in table
    # the JSON keeps every breakdown, severity too, with its words
    fall = next(v for v in report.to_json(built)["values"] if v["dims"].get("rule") == "fall")
    assert (fall["breakdown_sv"], fall["breakdown_en"]) == (
        "Trygghetslarm · Fall · Kritisk",
        "Care alarms · Fall · Critical",
    )
    assert "Fallradar" in table
    rows = report._table_rows(built, "sv")
    totals = {r[0]: (r[2], r[3]) for r in rows if r[1] == "Totalt"}
    assert totals["Larm"] == ("7", "1")  # November 7 (a1-a5, a8, a9), October 1 (a6)
    assert ("Larm", "", "", "") in rows  # the section heading
    en = report._table_rows(built, "en")
    assert any(r[1] == "Care alarms · Alarm button" for r in en)
    assert "Doser" not in totals
    assert "Brukare med tekniken" not in totals
    assert [r[1] for r in rows if r[0] == "Tid tills larmet togs"] == ["median", "90:e percentil", "längst"]
    # escalations: tiers in words, as numbers in order
    tiers = [r[1] for r in rows if r[0] == "Larm efter högsta eskaleringsnivå"]
    assert tiers[:2] == ["nivå 2", "nivå 4"]


def test_the_report_says_what_the_staff_page_says() -> None:
    from hub.texts.catalogue import rule_labels

    for lang in ("sv", "en"):
        page = rule_labels(lang)
        assert len(page) > 15
        assert {rule: labels.word("rule", rule, lang) for rule in page} == page
    assert labels.word("rule", "fall", "sv") == "Fall"
    assert labels.word("rule", "alarm_button", "en") == "Alarm button"
    assert labels.word("device_class", "new_gadget", "sv") == "New gadget"  # never raw


async def test_a_month_not_over_is_marked_preliminary(known_month: asyncpg.Connection) -> None:
    built = await _build(known_month, datetime(2026, 11, 20, 12, tzinfo=UTC))
    assert built.partial_until == date(2026, 11, 20)
    assert "2026-11 (preliminär, t.o.m. 2026-11-20)" in report.to_html(built, "sv")
    data = report.to_json(built)
    assert (data["partial"], data["partial_until"]) == (True, "2026-11-20")
    closed = await _build(known_month)
    assert closed.partial_until is None
    assert "preliminär" not in report.to_html(closed, "sv")


async def _busy_month(conn: asyncpg.Connection) -> None:
    """A normal month for a unit: ~8 care alarms a night of every kind and severity, technical alarms, and alarms
    escalated past the last tier many times (the reviewer's night had tiers up to 117)."""
    rules = [r for r in rule_labels("sv") if r not in ("checkin_overdue", "nobody_reached", "late_care_event")]
    rows, log = [], []
    for day in range(30):
        for k in range(8):
            raised = datetime(2026, 11, 1, 21, tzinfo=UTC) + timedelta(days=day, minutes=37 * k)
            rule = rules[(day * 8 + k) % len(rules)]
            technical = rule in ("device_silent", "battery_low", "camera_offline", "device_fault")
            alarm_id = f"b{day}-{k}"
            rows.append((alarm_id, rule, "technical" if technical else "care", 1 + (day + k) % 4, raised,
                         raised + timedelta(minutes=25)))  # fmt: skip
            log.append((alarm_id, raised + timedelta(minutes=2 + k), "staff:1", "accepted", "accepted", ""))
            if k == 0:
                log += [(alarm_id, raised + timedelta(seconds=30 * t), "desk", "escalated", "raised",
                         f"tier={t} audience=lead n=1") for t in range(120)]  # fmt: skip
    await conn.executemany(
        "INSERT INTO desk_alarms (id, key, rule_id, category, severity, site, unit, resident_id, device_id, "
        "unregistered, state, outcome, raised_at, updated_at, closed_at) "
        "VALUES ($1, $1, $2, $3, $4, 'fu', 'A', 'r-1', 'radar1', false, 'resolved', 'assisted', $5, $5, $6)",
        rows,
    )
    await conn.executemany(
        "INSERT INTO desk_alarm_log (alarm_id, at, actor, action, state, detail) VALUES ($1, $2, $3, $4, $5, $6)", log
    )


@pytest.mark.parametrize("lang", ["sv", "en"])
async def test_the_pdf_of_a_normal_month_is_a_few_pages_and_renders(
    known_month: asyncpg.Connection, tmp_path: Path, lang: str
) -> None:
    await _busy_month(known_month)
    built = await _build(known_month)
    # 240 alarms escalated up to "tier 119": four tiers, not 120
    assert len(built.current.values["response.escalation_tier_reached"]) <= 4
    out = tmp_path / f"nov-{lang}.pdf"
    report.write(built, "pdf", lang, out)  # type: ignore[arg-type]
    pdf = pypdfium2.PdfDocument(str(out))
    try:
        assert 2 <= len(pdf) <= 4, f"{len(pdf)} pages"
        for i in range(len(pdf)):
            image = pdf[i].render(scale=1).to_pil()
            image.save(tmp_path / f"nov-{lang}-{i + 1}.png")
            # a page with something on it: dark pixels (text, bars), not a blank sheet
            dark = sum(1 for px in image.convert("L").getdata() if px < 128)
            assert dark > 2000, f"page {i + 1} is nearly blank"
        text = "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    finally:
        pdf.close()
    assert ("Totalt" if lang == "sv" else "Total") in text
    assert "2026-10" in text  # the previous month beside
    data = json.loads(json.dumps(report.to_json(built)))
    assert sum(n["alarms"] for n in data["charts"]["care_alarms_per_night"]) == sum(
        v or 0 for k, v in built.current.values["alarms.count"].items() if dict(k)["category"] == "care"
    )
