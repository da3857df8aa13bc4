"""The alarm desk against the real PostgreSQL: lifecycle, alarm log, escalation with a clock we hold, restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from pydantic import SecretStr

from hub.desk.build import build_desk
from hub.desk.lane import DeskError
from hub.metrics import Metrics
from hub.model import AlarmCategory, AlarmDecision, AlarmState, DecisionAction, Event, Outcome, Severity
from hub.people.staff import StaffMember
from hub.runtime.tasks import Spawner
from hub.settings import DeskSettings, EscalationPolicy, EscalationTier, Settings
from hub.store.db import Database
from tests.hub.desk_support import (
    FakeClock,
    RecordingNotifier,
    add_inventory_and_staff,
    decision,
    migrated_database,
)

TEST_POLICY = EscalationPolicy(
    category="care",
    tiers=[
        EscalationTier(after_s=0, audience="unit"),
        EscalationTier(after_s=10, audience="nurse"),
        EscalationTier(after_s=20, audience="lead"),
    ],
    repeat_s=30,
)


@pytest.fixture
def desk_settings(settings: Settings) -> Settings:
    settings.desk = DeskSettings(
        policies=[
            TEST_POLICY,
            EscalationPolicy(category="technical", tiers=[EscalationTier(after_s=0, audience="unit")], repeat_s=60),
        ]
    )
    return settings


@pytest.fixture
async def db(desk_settings: Settings, metrics: Metrics) -> AsyncIterator[Database]:
    async with migrated_database(desk_settings, metrics) as database:
        yield database


@pytest.fixture
async def staff(db: Database, unique: str) -> dict[str, StaffMember]:
    return await add_inventory_and_staff(db, unique)


class World:
    """A desk with its published messages, closed keys and a recording channel, its loop running."""

    def __init__(self, settings: Settings, db: Database, metrics: Metrics, clock: FakeClock, spawner: Spawner) -> None:
        self.published: list[tuple[str, dict[str, object]]] = []
        self.closed: list[str] = []
        self.channel = RecordingNotifier()
        self.desk = build_desk(
            settings,
            db,
            metrics,
            publish=lambda topic, payload, *, qos=1, retain=False: self.published.append((topic, json.loads(payload))),
            clock=clock,
            spawner=spawner,
            engine=self,
            notifiers=[self.channel],
        )
        self.task: asyncio.Task[None] | None = None

    # the rule engine as the lane sees it: this world's engine decides nothing and records what the desk closed
    def feed(self, event: Event, now: datetime, *, late_s: float = 0.0) -> list[AlarmDecision]:
        return []

    def tick(self, now: datetime) -> list[AlarmDecision]:
        return []

    def alarm_closed(self, key: str, at: datetime) -> None:
        self.closed.append(key)

    def next_deadline(self) -> datetime | None:
        return None

    pending_timers = 0

    async def start(self) -> World:
        await self.desk.restorer.restore()
        self.task = asyncio.create_task(self.desk.run_loop())
        return self

    async def settle(self) -> None:
        await self.desk.lane.dispatcher.drain()
        await self.desk.lane.store.flushed()

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def world(
    desk_settings: Settings, db: Database, metrics: Metrics, staff: dict[str, StaffMember], spawner: Spawner
) -> AsyncIterator[World]:
    w = await World(desk_settings, db, metrics, FakeClock(), spawner).start()
    yield w
    await w.stop()


async def test_lifecycle_is_published_logged_and_persisted(
    world: World, unique: str, staff: dict[str, StaffMember], db: Database
) -> None:
    desk = world.desk
    alarm = desk.lane.apply(decision(unique))
    assert alarm is not None
    assert alarm.unit == "A"
    assert alarm.state is AlarmState.RAISED
    anna = staff["anna"]
    gauge = desk.lane.metrics.alarms_open
    assert gauge.labels("care", "raised")._value.get() == 1
    desk.actions.accept(alarm.id, anna)
    assert gauge.labels("care", "raised")._value.get() == 0
    assert gauge.labels("care", "accepted")._value.get() == 1
    with pytest.raises(DeskError):
        desk.actions.accept(alarm.id, staff["bo"])  # already taken: bo sees who has it instead
    desk.actions.en_route(alarm.id, anna)
    desk.actions.on_site(alarm.id, anna)
    desk.actions.resolve(alarm.id, anna, Outcome.ASSISTED, "helped back to bed")
    assert sum(gauge.labels("care", st)._value.get() for st in ("raised", "accepted", "en_route", "on_site")) == 0
    await world.settle()

    topics = {t for t, _ in world.published}
    assert topics == {f"vaka/v1/{unique}/alarms/{alarm.id}"}
    states = [p["state"] for _, p in world.published]
    assert states == ["raised", "accepted", "en_route", "on_site", "resolved"]
    last = world.published[-1][1]
    assert set(last) == {
        "id",
        "rule_id",
        "category",
        "severity",
        "state",
        "resident_id",
        "device_id",
        "raised_at",
        "updated_at",
        "accepted_by",
        "count",
        "incidents",
        "condition_ended_at",
    }
    assert last["accepted_by"] == "Anna"
    assert last["resident_id"] == f"{unique}-r1"
    assert world.closed == [f"fall_detected:{unique}-r1"]
    assert desk.machine.get(alarm.id) is None

    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM desk_alarms WHERE id = $1", alarm.id)
        log = await conn.fetch("SELECT actor, action FROM desk_alarm_log WHERE alarm_id = $1 ORDER BY seq", alarm.id)
        assert row["state"] == "resolved"
        assert row["outcome"] == "assisted"
        assert row["note"] == "helped back to bed"
        assert [(r["actor"], r["action"]) for r in log] == [
            ("rule", "raised"),
            ("desk", "escalated"),
            (f"staff:{anna.id}", "accepted"),
            (f"staff:{anna.id}", "en_route"),
            (f"staff:{anna.id}", "on_site"),
            (f"staff:{anna.id}", "resolved"),
        ]
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE desk_alarm_log SET actor = 'x' WHERE alarm_id = $1", alarm.id)


async def test_a_clear_or_device_cancel_marks_the_condition_ended_but_the_care_alarm_stays(
    world: World, unique: str, staff: dict[str, StaffMember]
) -> None:
    desk = world.desk
    first = desk.lane.apply(decision(unique))
    assert first is not None
    desk.lane.apply(decision(unique, DecisionAction.CLEAR, reason="resident back in bed"))
    assert desk.machine.get(first.id) is first
    assert first.state is AlarmState.RAISED
    assert first.condition_note == "resident back in bed"
    assert desk.view(first)["ring"] is True  # nobody has seen to the person yet: it keeps ringing
    desk.actions.accept(first.id, staff["anna"])
    desk.lane.apply(decision(unique, DecisionAction.CANCEL, reason="device withdrew"))
    assert desk.machine.get(first.id) is first
    assert first.state is AlarmState.ACCEPTED
    assert world.closed == []
    desk.actions.resolve(first.id, staff["anna"], Outcome.FALSE_ALARM)
    assert world.closed == [f"fall_detected:{unique}-r1"]


async def test_escalation_fires_tiers_in_order_and_stops_on_acceptance(
    world: World, unique: str, staff: dict[str, StaffMember]
) -> None:
    desk = world.desk
    clock = desk.clock
    assert isinstance(clock, FakeClock)
    alarm = desk.lane.apply(decision(unique))
    assert alarm is not None
    for _ in range(4):  # ticks at 9, 18, 27, 36 s: tier 0 fired on raise, 1 at 18 s, 2 at 27 s, repeat due 57 s
        clock.advance(9)
        desk.lane.escalate_due()
    await world.settle()
    unit, nurse, lead = ["anna", "bo", "lisa", "nils"], ["nils"], ["lisa"]
    unit = sorted(f"{n}-{unique}" for n in unit)
    assert world.channel.escalations() == [
        (0, "unit", unit),
        (1, "nurse", [f"{n}-{unique}" for n in nurse]),
        (2, "lead", [f"{n}-{unique}" for n in lead]),
    ]
    clock.advance(22)  # 58 s: the last tier repeats until someone accepts
    desk.lane.escalate_due()
    await world.settle()
    assert [e[:2] for e in world.channel.escalations()][-1] == (3, "lead")
    desk.actions.accept(alarm.id, staff["bo"])
    clock.advance(600)
    assert desk.lane.escalate_due() == 0
    await world.settle()
    assert len(world.channel.escalations()) == 4


async def test_restart_keeps_the_alarm_and_continues_escalation(
    desk_settings: Settings,
    db: Database,
    metrics: Metrics,
    unique: str,
    staff: dict[str, StaffMember],
    spawner: Spawner,
) -> None:
    clock = FakeClock()
    before = await World(desk_settings, db, metrics, clock, spawner).start()
    alarm = before.desk.lane.apply(decision(unique))
    assert alarm is not None
    clock.advance(12)
    before.desk.lane.escalate_due()  # tier 1 (nurse) fired
    await before.settle()
    await before.stop()

    after = await World(desk_settings, db, metrics, clock, spawner).start()
    try:
        restored = after.desk.machine.get(alarm.id)
        assert restored is not None
        assert restored.state is AlarmState.RAISED
        assert restored.unit == "A"
        assert [a.id for a in after.desk.machine.open_alarms_for(staff["anna"])] == [alarm.id]
        clock.advance(5)  # 17 s: nothing due yet; tiers 0 and 1 are not fired again
        assert after.desk.lane.escalate_due() == 0
        clock.advance(5)
        assert after.desk.lane.escalate_due() == 1
        await after.settle()
        assert after.channel.escalations() == [(2, "lead", [f"lisa-{unique}"])]
        after.desk.actions.accept(alarm.id, staff["anna"])
    finally:
        await after.stop()


async def test_unregistered_device_reaches_every_staff_member_of_the_site(
    world: World, unique: str, staff: dict[str, StaffMember]
) -> None:
    desk = world.desk
    alarm = desk.lane.apply(decision(unique, device="mystery-7", resident=None, subject="mystery-7", unregistered=True))
    assert alarm is not None
    assert alarm.unregistered
    assert alarm.unit is None
    for name in ("anna", "bo", "nils", "lisa", "carl"):
        assert [a.id for a in desk.machine.open_alarms_for(staff[name])] == [alarm.id]
    assert desk.view(alarm)["unregistered"] is True
    await world.settle()
    assert world.channel.escalations()[0][2] == sorted(f"{n}-{unique}" for n in ("anna", "bo", "carl", "lisa", "nils"))


async def test_staff_see_only_their_units_most_urgent_first(
    world: World, unique: str, staff: dict[str, StaffMember]
) -> None:
    desk = world.desk
    clock = desk.clock
    assert isinstance(clock, FakeClock)
    low = desk.lane.apply(
        decision(
            unique, rule_id="bed_exit_night", subject="r2", resident="r2", device="plug2", severity=Severity.MEDIUM
        )
    )
    clock.advance(1)
    fall = desk.lane.apply(decision(unique))
    other_unit = desk.lane.apply(
        decision(unique, rule_id="alarm_button", subject="r3", resident="r3", device="button3")
    )
    assert low
    assert fall
    assert other_unit
    assert [a.id for a in desk.machine.open_alarms_for(staff["anna"])] == [fall.id, low.id]
    assert [a.id for a in desk.machine.open_alarms_for(staff["carl"])] == [other_unit.id]
    with pytest.raises(DeskError):
        desk.actions.accept(other_unit.id, staff["anna"])
    desk.actions.accept(fall.id, staff["anna"])
    assert [a.id for a in desk.machine.open_alarms_for(staff["bo"])] == [low.id, fall.id]  # unaccepted first


@pytest.mark.parametrize(
    ("hour_utc", "rule_id", "device", "patrol_notified"),
    [
        (2, "battery_low", "plug2", False),  # 03:00 in Stockholm: a battery waits for the technicians
        (2, "device_silent", "radar1", True),  # a silent fall radar at night wakes the patrol
        (12, "battery_low", "plug2", True),  # by day the unit hears of it too
    ],
)
async def test_technical_alarms_wake_the_patrol_at_night_only_for_silent_safety_devices(
    desk_settings: Settings,
    db: Database,
    metrics: Metrics,
    unique: str,
    staff: dict[str, StaffMember],
    hour_utc: int,
    rule_id: str,
    device: str,
    patrol_notified: bool,
    spawner: Spawner,
) -> None:
    clock = FakeClock(datetime(2026, 11, 26, hour_utc, 0, tzinfo=UTC))
    w = await World(desk_settings, db, metrics, clock, spawner).start()
    try:
        w.desk.lane.apply(
            decision(
                unique,
                rule_id=rule_id,
                category=AlarmCategory.TECHNICAL,
                severity=Severity.LOW,
                device=device,
                resident=None,
                subject=device,
            )
        )
        await w.settle()
        ((_tier, _audience, recipients),) = w.channel.escalations()
        assert (f"anna-{unique}" in recipients) is patrol_notified
    finally:
        await w.stop()


async def test_delivery_never_waits_for_the_database(
    desk_settings: Settings, metrics: Metrics, unique: str, staff: dict[str, StaffMember], spawner: Spawner
) -> None:
    down = Database(
        desk_settings.db.model_copy(update={"dsn": SecretStr("postgresql://postgres@127.0.0.1:1/test")}),
        metrics,
        spawner=spawner,
    )
    await down.open()
    try:
        w = World(desk_settings, down, metrics, FakeClock(), spawner)
        w.desk.restorer.set_staff(staff.values())
        task = asyncio.create_task(w.desk.run_loop())
        loop = asyncio.get_running_loop()
        started = loop.time()
        alarm = w.desk.lane.apply(decision(unique, device="x1", resident=None, subject="x1", unregistered=True))
        assert loop.time() - started < 1.0  # a database wait would take connect_timeout_s (3 s)
        assert alarm is not None
        assert w.published
        assert w.published[0][1]["state"] == "raised"
        await w.desk.lane.dispatcher.drain()
        assert w.channel.escalations()[0][0] == 0
        await asyncio.sleep(0.3)
        assert w.desk.lane.store.backlog > 0  # kept for later, not lost
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await down.close()


async def test_open_alarms_come_back_once_the_database_answers_again(
    desk_settings: Settings,
    db: Database,
    metrics: Metrics,
    unique: str,
    staff: dict[str, StaffMember],
    spawner: Spawner,
) -> None:
    clock = FakeClock()
    before = await World(desk_settings, db, metrics, clock, spawner).start()
    old = before.desk.lane.apply(decision(unique))
    assert old is not None
    await before.settle()
    await before.stop()
    async with db.acquire() as conn:
        await conn.execute("ALTER TABLE desk_alarms RENAME TO desk_alarms_away")  # restore fails at start
    after = await World(desk_settings, db, metrics, clock, spawner).start()
    try:
        assert after.desk.machine.get(old.id) is None
        new = after.desk.lane.apply(
            decision(unique, rule_id="alarm_button", subject="r2", resident="r2", device="plug2")
        )
        assert new is not None  # alarms flow meanwhile
        async with db.acquire() as conn:
            await conn.execute("ALTER TABLE desk_alarms_away RENAME TO desk_alarms")
        for _ in range(60):
            if after.desk.machine.get(old.id) is not None:
                break
            await asyncio.sleep(0.1)
        assert {a.id for a in after.desk.machine.open_alarms_for(staff["anna"])} == {new.id, old.id}
    finally:
        await after.stop()


async def test_a_row_the_database_refuses_is_set_aside_and_the_rows_behind_it_are_written(
    world: World, unique: str, staff: dict[str, StaffMember], db: Database
) -> None:
    """Issue 22.7: a note with NUL (the desk took it; PostgreSQL cannot store it) stopped every later row for good."""
    desk = world.desk
    first = desk.lane.apply(decision(unique))
    assert first is not None
    anna = staff["anna"]
    desk.actions.resolve(first.id, anna, Outcome.ASSISTED, "helped\x00 up")  # as a caller that did not clean the text
    second = desk.lane.apply(decision(unique, rule_id="alarm_button", device="button1"))
    assert second is not None
    await world.settle()

    async with db.acquire() as conn:
        refused = await conn.fetch("SELECT kind, row_text FROM desk_refused_rows")
        raised = await conn.fetchval("SELECT count(*) FROM desk_alarms WHERE id = $1", second.id)
        logged = await conn.fetchval("SELECT count(*) FROM desk_alarm_log WHERE alarm_id = $1", second.id)
    assert raised == 1, "the alarm after the refused row was never stored"
    assert logged >= 1
    assert refused, "the refused row was dropped, not set aside"
    assert all("\\x00" in r["row_text"] for r in refused)
    assert sum(s.samples[0].value for s in desk.lane.metrics.desk_rows_refused.collect() if s.samples) >= 1
    assert desk.machine.has_open(f"desk_row_refused:{unique}")
