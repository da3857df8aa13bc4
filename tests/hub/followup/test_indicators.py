"""Every indicator computed from the known month (tests/hub/followup/conftest.py) and compared with hand counts."""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg
import pytest

from hub.followup.indicators import (
    INDICATORS,
    PeriodError,
    Result,
    Scope,
    compute,
    last_tiers,
    month,
    parse_period,
    quarter,
)
from hub.model import AlarmCategory
from hub.settings import DbSettings, DeskSettings
from hub.store import rollup
from tests.hub.followup.conftest import SITE

NOVEMBER = month("2026-11")
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


async def test_every_indicator_matches_the_hand_count(known_month: asyncpg.Connection) -> None:
    await rollup.refresh(known_month, NOW)
    r = await compute(known_month, Scope(SITE), NOVEMBER, accept_policy_s=300)

    # technology in use, per device class
    assert {cls: r.get("tech.devices_installed", device_class=cls) for cls in ("fall_radar", "alarm_button", "medication_robot", "door_sensor")} == {
        "fall_radar": 2, "alarm_button": 2, "medication_robot": 1, "door_sensor": 1
    }  # fmt: skip
    assert r.get("tech.devices_reporting", device_class="fall_radar") == 2
    # the drawer button reported only on 31 October and 1 December local time: not in November
    assert r.get("tech.devices_reporting", device_class="alarm_button") == 1
    assert r.get("tech.devices_active", device_class="fall_radar") == 1  # radar2 sent heartbeats only
    assert r.get("tech.devices_active", device_class="alarm_button") == 1  # btn1 raised a care alarm
    assert r.get("tech.devices_active", device_class="door_sensor") == 1
    assert r.get("tech.devices_alarming", device_class="alarm_button") == 1
    assert r.get("tech.devices_alarming", device_class="door_sensor") == 1
    assert r.get("tech.devices_silent", device_class="alarm_button") == 1
    assert r.get("tech.devices_silent", device_class="fall_radar") == 0
    assert r.get("tech.unused_share", device_class="alarm_button") == 0.5
    assert r.get("tech.unused_share", device_class="fall_radar") == 0.0

    # alarms: a6 (23:30 local on 31 October) and a7 (00:30 local on 1 December) are outside November
    assert r.get("alarms.count", category="care", rule="fall", severity=4) == 2
    assert r.get("alarms.count", category="care", rule="alarm_button", severity=3) == 1
    assert r.total("alarms.count") == 7
    # the check-in not done in time and the alarm that reached nobody are about the staff's process, not care
    assert r.get("alarms.count", category="staff_process", rule="checkin_overdue", severity=3) == 1
    assert r.get("alarms.count", category="staff_process", rule="nobody_reached", severity=4) == 1
    assert sum(v or 0 for k, v in r.values["alarms.count"].items() if dict(k)["category"] == "care") == 3
    assert r.get("alarms.outcome", category="care", outcome="assisted") == 1
    assert r.get("alarms.outcome", category="care", outcome="false_alarm") == 1
    assert r.get("alarms.outcome", category="care", outcome="open") == 1
    assert r.get("alarms.outcome", category="technical", outcome="cancelled") == 1
    assert r.get("alarms.unregistered") == 1
    assert r.get("alarms.false_per_resident_night") == pytest.approx(1 / (3 * 30))

    # response, care alarms only: first staff action after 60 s and 600 s; a5 never
    assert r.get("response.accept_s", stat="p50") == pytest.approx(330)
    assert r.get("response.accept_s", stat="p90") == pytest.approx(546)
    assert r.get("response.accept_s", stat="max") == pytest.approx(600)
    assert r.get("response.on_site_s", stat="p50") == pytest.approx(600)
    assert r.get("response.resolve_s", stat="p50") == pytest.approx(1500)
    assert r.get("response.resolve_s", stat="max") == pytest.approx(1800)
    assert r.get("response.not_accepted_in_policy") == 2

    # technical: repair 4 h and 24 h; one battery replaced
    assert r.get("technical.repair_s", rule="device_silent") == pytest.approx(4 * 3600)
    assert r.get("technical.repair_s", rule="battery_low") == pytest.approx(24 * 3600)
    assert r.get("technical.battery_replacements") == 1

    # medication: the robot announces no doses, so due = taken + missed
    assert [r.get("medication.doses", status=s) for s in ("due", "taken", "missed", "late")] == [23, 20, 3, 2]


async def test_a_unit_counts_only_its_residents_devices_and_alarms(known_month: asyncpg.Connection) -> None:
    await rollup.refresh(known_month, NOW)
    r = await compute(known_month, Scope(SITE, "A"), NOVEMBER)
    assert r.get("tech.devices_installed", device_class="door_sensor") is None
    assert r.get("tech.devices_installed", device_class="fall_radar") == 2
    assert r.total("alarms.count") == 5  # a1, a2, a3 and the two staff-process alarms a8, a9
    assert r.get("alarms.unregistered") == 0
    assert r.get("alarms.false_per_resident_night") == pytest.approx(1 / (2 * 30))


async def test_refresh_is_incremental_and_keeps_days_whose_events_are_gone(known_month: asyncpg.Connection) -> None:
    await rollup.refresh(known_month, NOW)
    before = await compute(known_month, Scope(SITE), NOVEMBER)
    # events past retention are dropped; the rollup keeps what they said
    await known_month.execute("DELETE FROM events WHERE ts < '2026-11-20'")
    await rollup.refresh(known_month, NOW, since=NOVEMBER.start)
    after = await compute(known_month, Scope(SITE), NOVEMBER)
    assert after.values == before.values
    # a new event on a day not yet final is counted by the next refresh
    await known_month.execute(
        "INSERT INTO events (ts, site, device_id, resident_id, kind) VALUES ('2026-12-02T10:00Z', $1, 'drawer', 'r-3', 'alarm_button')",
        SITE,
    )
    await rollup.refresh(known_month, NOW)
    december = await compute(known_month, Scope(SITE), month("2026-12"))
    assert december.get("tech.devices_reporting", device_class="alarm_button") == 1


async def test_timescaledb_gives_the_same_numbers(
    known_month: asyncpg.Connection, known_month_timescale: asyncpg.Connection
) -> None:
    assert await rollup.mode(known_month_timescale) == "timescaledb"
    assert await rollup.mode(known_month) == "native"
    await rollup.refresh(known_month, NOW)
    await rollup.refresh(known_month_timescale, NOW)
    native = await compute(known_month, Scope(SITE), NOVEMBER)
    timescale = await compute(known_month_timescale, Scope(SITE), NOVEMBER)
    assert timescale.values == native.values


def test_periods() -> None:
    assert (month("2026-11").start.isoformat(), month("2026-11").end.isoformat()) == ("2026-11-01", "2026-12-01")
    assert month("2026-01").previous().label == "2025-12"
    assert quarter("2026-Q4").days == 92
    assert parse_period("2026-Q1").previous().label == "2025-Q4"
    assert [p.label for p in month("2026-11").split("week")][:2] == ["2026-W44", "2026-W45"]
    with pytest.raises(PeriodError, match="YYYY-MM"):
        month("2026-13")


def test_every_indicator_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "docs" / "indicators.md").read_text(encoding="utf-8")
    missing = [i.id for i in INDICATORS if f"`{i.id}`" not in doc]
    assert not missing, f"indicators without a definition in docs/indicators.md: {missing}"


async def test_the_hub_keeps_the_rollup_current(known_month: asyncpg.Connection, db_settings: DbSettings) -> None:
    import asyncio
    import contextlib

    task = asyncio.create_task(
        rollup.refresh_loop(db_settings.dsn.get_secret_value(), db_settings.db_schema, 0.05, lambda: NOW)
    )
    try:
        async with asyncio.timeout(20):
            while not await known_month.fetchval("SELECT count(*) FROM followup_device_month"):  # noqa: ASYNC110  (the database has nothing to wait on)
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    r = await compute(known_month, Scope(SITE), NOVEMBER)
    assert r.get("tech.devices_reporting", device_class="fall_radar") == 2


async def test_a_period_of_days_reads_the_day_rollup(known_month: asyncpg.Connection) -> None:
    from hub.followup.indicators import Period

    await rollup.refresh(known_month, NOW)
    ten_days = Period(date(2026, 11, 10), date(2026, 11, 20), "10-20 Nov")
    r = await compute(known_month, Scope(SITE), ten_days)
    assert r.get("tech.devices_reporting", device_class="fall_radar") == 1  # radar2 reported on 2 November only
    weeks = list(NOVEMBER.split("week"))
    by_week = [await compute(known_month, Scope(SITE), w) for w in weeks]
    assert sum(w.get("medication.doses", status="taken") or 0 for w in by_week) == 20


async def _november(conn: asyncpg.Connection, unit: str | None = None) -> Result:
    await rollup.refresh(conn, NOW)
    return await compute(conn, Scope(SITE, unit), NOVEMBER, last_tiers=last_tiers(DeskSettings()))


async def test_escalation_counts_the_tier_each_alarm_reached(known_month: asyncpg.Connection) -> None:
    r = await _november(known_month)
    # a1 reached tier 1; a2 went 0, 1, 2, 3 and then tier 3 twice more (logged as 4 by an older hub, and as 3 repeat=2)
    assert {dict(k)["tier"]: v for k, v in r.values["response.escalation_tier_reached"].items()} == {"1": 1, "3": 1}
    assert r.get("response.escalation_repeats") == 2
    # tiers sort as numbers, not text
    rows = [row["tier"] for row in r.rows() if row["indicator"] == "response.escalation_tier_reached"]
    assert rows == ["1", "3"]


def test_tier_numbers_sort_as_numbers() -> None:
    res = Result(Scope(SITE), NOVEMBER)
    for tier in (10, 2, 1, 100):
        res.add("response.escalation_tier_reached", 1, tier=tier)
    assert [row["tier"] for row in res.rows()] == ["1", "2", "10", "100"]


def test_the_desk_logs_a_repeat_of_the_last_tier_as_that_tier() -> None:
    from hub.desk.escalation import escalation_detail

    settings = DeskSettings()
    alarm = type("A", (), {"site": SITE, "category": AlarmCategory.CARE})()
    assert escalation_detail(settings, alarm, 2, "nurse", 1) == "tier=2 audience=nurse n=1"  # type: ignore[arg-type]
    assert escalation_detail(settings, alarm, 5, "lead", 1) == "tier=3 audience=lead n=1 repeat=2"  # type: ignore[arg-type]


async def test_staff_process_alarms_stay_out_of_care_counts_and_times(known_month: asyncpg.Connection) -> None:
    r = await _november(known_month)
    by_category: dict[str, float] = {}
    for key, v in r.values["alarms.outcome"].items():
        by_category[dict(key)["category"]] = by_category.get(dict(key)["category"], 0) + (v or 0)
    assert by_category == {"care": 3, "technical": 2, "staff_process": 2}
    # a8 was answered after 60 s and a9 after 35 min: counted as care they would make the longest 2100 s
    assert r.get("response.accept_s", stat="max") == pytest.approx(600)
    assert r.get("response.accept_s", stat="p50") == pytest.approx(330)
    assert r.get("response.care_alarms_answered", rule="checkin_overdue", status="answered") is None


async def test_installed_devices_follow_the_inventory_history(known_month: asyncpg.Connection) -> None:
    await rollup.refresh(known_month, NOW)
    nov = await compute(known_month, Scope(SITE), NOVEMBER)
    octo = await compute(known_month, Scope(SITE), month("2026-10"))
    before = await compute(known_month, Scope(SITE), month("2025-12"))
    # bed2 came on 16 November; oldbtn left on 20 October
    assert nov.get("tech.devices_installed", device_class="bed_sensor") == 1
    assert octo.get("tech.devices_installed", device_class="bed_sensor") is None
    assert nov.get("tech.devices_installed", device_class="alarm_button") == 2
    assert octo.get("tech.devices_installed", device_class="alarm_button") == 3
    # before anything was installed there is nothing to call unused
    assert before.values.get("tech.devices_installed", {}) == {}
    assert before.values.get("tech.unused_share", {}) == {}


async def test_a_device_that_reported_before_its_recorded_installation_counts_as_installed(
    known_month: asyncpg.Connection,
) -> None:
    # the inventory was loaded after the device had been in use (e.g. a hub set up later than the devices)
    await known_month.execute("UPDATE devices SET installed_on = '2026-12-01' WHERE id = 'radar1'")
    await rollup.refresh(known_month, NOW)
    r = await compute(known_month, Scope(SITE), NOVEMBER)
    assert r.get("tech.devices_installed", device_class="fall_radar") == 2


async def test_response_times_per_alarm_type(known_month: asyncpg.Connection) -> None:
    r = await _november(known_month)
    # fall: a1 answered after 60 s, a5 (unregistered radar) never; alarm button: a2 after 600 s
    assert r.get("response.accept_by_rule_s", rule="fall", stat="p50") == pytest.approx(60)
    assert r.get("response.accept_by_rule_s", rule="alarm_button", stat="max") == pytest.approx(600)
    assert r.get("response.care_alarms_answered", rule="fall", status="answered") == 1
    assert r.get("response.care_alarms_answered", rule="fall", status="unanswered") == 1
    assert r.get("response.care_alarms_answered", rule="alarm_button", status="answered") == 1


async def test_planned_checkins_done_as_a_rate(known_month: asyncpg.Connection) -> None:
    r = await _november(known_month)
    # c1 looked at; c2's look failed and the visit c2b was made; c3 never done
    assert r.get("checkins.planned") == 3
    assert r.get("checkins.planned_done") == 2
    assert r.get("checkins.done_rate") == pytest.approx(2 / 3)
    assert r.get("checkins.done", mode="camera") == 1
    assert r.get("checkins.done", mode="physical") == 1
    assert r.get("checkins.overdue") == 1
    a = await _november(known_month, "A")
    assert (a.get("checkins.planned"), a.get("checkins.done_rate")) == (2, 1.0)


async def test_residents_per_technology(known_month: asyncpg.Connection) -> None:
    r = await _november(known_month)
    assert {dict(k)["device_class"]: v for k, v in r.values["tech.residents_with"].items()} == {
        "alarm_button": 2, "bed_sensor": 1, "door_sensor": 1, "fall_radar": 2, "medication_robot": 1
    }  # fmt: skip
