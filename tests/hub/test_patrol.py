"""The night patrol's desk rules against the real PostgreSQL: care alarms closed by people only, repeats ring again,
handover is asked and recorded, escalation goes to those on duty, and an alarm that reaches nobody is the loudest
thing in the system (site-wide alarm, fallback number through a real local SMS gateway, metric, one log line)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub.desk.build import DeskParts, build_desk
from hub.desk.lane import NOBODY_REACHED, HandoverError
from hub.metrics import Metrics
from hub.model import AlarmCategory, AlarmDecision, AlarmState, DecisionAction, Outcome, Severity
from hub.notify.sms import SmsNotifier
from hub.people.staff import StaffMember
from hub.runtime.tasks import Spawner
from hub.settings import DeskSettings, EscalationPolicy, EscalationTier, Settings
from hub.store.db import Database
from tests.hub.desk_support import (
    ClosedKeys,
    FakeClock,
    RecordingNotifier,
    add_inventory_and_staff,
    decision,
    migrated_database,
)

POLICY = EscalationPolicy(
    category="care",
    tiers=[EscalationTier(after_s=0, audience="unit"), EscalationTier(after_s=60, audience="nurse")],
    repeat_s=120,
)
FALLBACK = "+46700009999"


@dataclass
class Gateway:
    """A real local HTTP server standing in for the SMS/voice gateway: it keeps what it was asked to send."""

    url: str = ""
    received: list[dict[str, str]] = field(default_factory=list)
    got_one: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(await request.json())
        self.got_one.set()
        return web.json_response({"queued": True})


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    app = web.Application()
    app.router.add_post("/sms", gw.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    gw.url = str(server.make_url("/sms"))
    yield gw
    await server.close()


@dataclass
class Patrol:
    desk: DeskParts
    staff: dict[str, StaffMember]
    clock: FakeClock
    channel: RecordingNotifier
    db: Database
    closed: list[str]

    async def settle(self) -> None:
        await self.desk.lane.dispatcher.drain()
        await self.desk.lane.store.flushed()

    async def log(self, alarm_id: str) -> list[tuple[str, str, str]]:
        await self.settle()
        async with self.db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT actor, action, detail FROM desk_alarm_log WHERE alarm_id = $1 ORDER BY seq", alarm_id
            )
        return [(r["actor"], r["action"], r["detail"]) for r in rows]


async def _patrol(
    settings: Settings, metrics: Metrics, unique: str, gateway: Gateway, spawner: Spawner, *, on_duty: bool
) -> AsyncIterator[Patrol]:
    settings.desk = DeskSettings(policies=[POLICY])
    settings.notify.sms_gateway_url = gateway.url
    settings.patrol.fallback_phones = {"*": FALLBACK}
    async with migrated_database(settings, metrics) as db:
        staff = await add_inventory_and_staff(db, unique, on_duty=on_duty)
        channel = RecordingNotifier()
        closed: list[str] = []
        desk = build_desk(
            settings,
            db,
            metrics,
            publish=lambda topic, payload, *, qos=1, retain=False: None,
            clock=FakeClock(),
            spawner=spawner,
            engine=ClosedKeys(closed),
            notifiers=[channel, SmsNotifier(settings.notify)],
        )
        await desk.restorer.restore()
        task = asyncio.create_task(desk.run_loop())
        clock = desk.clock
        assert isinstance(clock, FakeClock)
        try:
            yield Patrol(desk, staff, clock, channel, db, closed)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def patrol(
    settings: Settings, metrics: Metrics, unique: str, gateway: Gateway, spawner: Spawner
) -> AsyncIterator[Patrol]:
    async for p in _patrol(settings, metrics, unique, gateway, spawner, on_duty=True):
        yield p


@pytest.fixture
async def empty_night(
    settings: Settings, metrics: Metrics, unique: str, gateway: Gateway, spawner: Spawner
) -> AsyncIterator[Patrol]:
    async for p in _patrol(settings, metrics, unique, gateway, spawner, on_duty=False):
        yield p


async def test_a_wandering_night_keeps_the_alarm_until_a_person_resolves_it(patrol: Patrol, unique: str) -> None:
    """The door closes again after nine minutes: "condition ended" on the card, the alarm stays and keeps ringing."""
    desk = patrol.desk
    alarm = desk.lane.apply(decision(unique, rule_id="entrance_door_night", severity=Severity.HIGH))
    assert alarm is not None
    patrol.clock.advance(9 * 60)
    desk.lane.apply(
        decision(unique, DecisionAction.CLEAR, rule_id="entrance_door_night", reason="entrance door closed")
    )
    patrol.clock.advance(30)
    desk.lane.escalate_due()
    assert desk.machine.get(alarm.id) is alarm
    view = desk.view(alarm)
    assert view["ring"] is True
    assert view["condition_ended_hm"] == "13:09"  # 12:09 UTC in Stockholm (CET)
    assert view["condition_note"] == "entrance door closed"
    assert view["raised_hm"] == "13:00"
    desk.actions.resolve(alarm.id, patrol.staff["anna"], Outcome.ASSISTED, "found in the garden, brought in")
    assert desk.machine.get(alarm.id) is None
    assert patrol.closed == [f"entrance_door_night:{unique}-r1"]
    actions = [a for _, a, _ in await patrol.log(alarm.id)]
    assert actions[0] == "raised"
    assert "condition_ended" in actions
    assert actions[-1] == "resolved"


async def test_a_technical_alarm_closes_itself_only_when_its_rule_allows_and_nobody_took_it(
    patrol: Patrol, unique: str
) -> None:
    desk = patrol.desk

    def battery(action: DecisionAction, *, auto_close: bool) -> AlarmDecision:
        d = decision(
            unique, action, rule_id="battery_low", subject="plug2", category=AlarmCategory.TECHNICAL, device="plug2"
        )
        return replace(d, auto_close=auto_close)

    kept = desk.lane.apply(battery(DecisionAction.RAISE, auto_close=False))
    assert kept is not None
    desk.lane.apply(battery(DecisionAction.CLEAR, auto_close=False))
    assert desk.machine.get(kept.id) is kept
    desk.actions.resolve(kept.id, patrol.staff["lisa"], Outcome.TECHNICAL)
    closing = desk.lane.apply(battery(DecisionAction.RAISE, auto_close=True))
    assert closing is not None
    desk.lane.apply(battery(DecisionAction.CLEAR, auto_close=True))
    assert desk.machine.get(closing.id) is None
    assert closing.state is AlarmState.CANCELLED
    care = desk.lane.apply(decision(unique))
    assert care is not None
    desk.lane.apply(replace(decision(unique, DecisionAction.CANCEL), auto_close=True))
    assert desk.machine.get(care.id) is care  # never for a care alarm, whatever the decision says


async def test_a_repeat_rings_again_even_on_an_alarm_held_on_site(patrol: Patrol, unique: str) -> None:
    """Three missed doses: each rings; the one left "On site" rings again for Anna, who keeps it (issue 28)."""
    desk = patrol.desk
    anna = patrol.staff["anna"]
    med = {"rule_id": "medication_missed", "severity": Severity.MEDIUM, "device": "plug2", "resident": "r2"}
    alarm = desk.lane.apply(decision(unique, subject="r2", **med))  # type: ignore[arg-type]
    assert alarm is not None
    desk.actions.accept(alarm.id, anna)
    desk.actions.on_site(alarm.id, anna)
    assert desk.view(alarm)["ring"] is False
    patrol.clock.advance(2 * 86400)
    for n in (2, 3):
        desk.lane.apply(decision(unique, DecisionAction.UPDATE, subject="r2", **med))  # type: ignore[arg-type]
        assert alarm.incidents == n - 1  # a plain update (the same incident) does not ring
        desk.lane.apply(replace(decision(unique, DecisionAction.UPDATE, subject="r2", **med), repeat=True))  # type: ignore[arg-type]
        assert alarm.incidents == n
        view = desk.view(alarm)
        assert (view["ring"], view["repeat_pending"]) == (True, True)
        assert view["state"] == "on_site"  # still hers, still where she is
        assert view["accepted_by"] == "Anna"
        desk.actions.on_site(alarm.id, anna)  # "Got it": her own step again
        assert desk.view(alarm)["ring"] is False
    await patrol.settle()
    rings = [(t, audience) for t, audience, _ in patrol.channel.escalations()]
    assert rings == [(0, "unit"), (0, "holder"), (0, "holder")]  # raised for the unit, each repeat for Anna
    assert desk.lane.metrics.alarm_repeats.labels("care")._value.get() == 2


async def test_acting_on_a_colleagues_alarm_asks_to_take_over_and_records_it(patrol: Patrol, unique: str) -> None:
    desk = patrol.desk
    karin, bo = patrol.staff["anna"], patrol.staff["bo"]
    alarm = desk.lane.apply(decision(unique))
    assert alarm is not None
    desk.actions.accept(alarm.id, karin)
    with pytest.raises(HandoverError) as asked:
        desk.actions.on_site(alarm.id, bo)
    assert asked.value.holder == "Anna"
    assert alarm.state is AlarmState.ACCEPTED
    desk.actions.on_site(alarm.id, bo, take_over=True)
    assert desk.view(alarm)["accepted_by"] == "Bo"
    assert desk.lane.metrics.alarm_handovers._value.get() == 1
    log = await patrol.log(alarm.id)
    assert (f"staff:{bo.id}", "taken_over", f"from=staff:{karin.id}") in log
    with pytest.raises(HandoverError):
        desk.actions.resolve(alarm.id, karin, Outcome.ASSISTED)


async def test_escalation_reaches_only_those_on_duty(
    empty_night: Patrol, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    desk = empty_night.desk
    desk.duty.sign_on(empty_night.staff["bo"])
    alarm = desk.lane.apply(decision(unique))
    assert alarm is not None
    await empty_night.settle()
    assert empty_night.channel.escalations() == [(0, "unit", [f"bo-{unique}"])]
    assert desk.machine.get_open_by_key(f"{NOBODY_REACHED}:{unique}") is None
    async with empty_night.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM staff_duty") == 1


async def test_an_alarm_with_nobody_on_duty_reaches_everyone_of_the_site_and_the_fallback_number(
    empty_night: Patrol, unique: str, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    desk = empty_night.desk
    caplog.set_level(logging.INFO, logger="hub.desk")
    first = desk.lane.apply(decision(unique))
    second = desk.lane.apply(decision(unique, subject="r2", resident="r2", device="plug2", rule_id="alarm_button"))
    assert first is not None
    assert second is not None
    nobody = desk.machine.get_open_by_key(f"{NOBODY_REACHED}:{unique}")
    assert nobody is not None
    assert nobody.unit is None  # site-level: on every page of the site
    assert {s.username for s in desk.directory.who_sees(nobody.site, nobody.unit)} == {
        f"{n}-{unique}" for n in ("anna", "bo", "nils", "lisa", "carl")
    }
    assert nobody.incidents == 2  # the second alarm rang it again
    await asyncio.wait_for(gateway.got_one.wait(), 5)
    await empty_night.settle()
    assert FALLBACK in {m["to"] for m in gateway.received}
    assert all("Anna" not in json.dumps(m) and "r1" not in m["message"] for m in gateway.received)
    assert desk.lane.metrics.nobody_reached._value.get() == 2
    assert desk.lane.metrics.escalations_unreached.labels("care")._value.get() == 2
    zero_lines = [r for r in caplog.records if "recipients=0" in r.getMessage()]
    assert len(zero_lines) == 1  # rate limited: the second is held back and counted in the next line
    assert "nobody_reached" in [a for _, a, _ in await empty_night.log(first.id)]
