"""The alarm lane isolates every item: a failure in the engine, a tick, one escalation or one delivery is logged with
its alarm, counted, raised to operations as a technical alarm, and the lane goes on with the next item."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from alarms.engine import Engine
from alarms.gate import CARE_FRESHNESS_S, TECHNICAL_FRESHNESS_S, Gate, GateLimits, freshness_by_kind, rule_freshness
from alarms.rules import default_pack_path, load_rules
from hub.desk import machine as desk_machine
from hub.desk.alarm import Alarm
from hub.desk.build import DeskParts, build_desk
from hub.desk.fanout import Output
from hub.desk.lane import FAILURE_RULE, LATE_CARE_RULE, OUTPUT_FAILURE_RULE, TASK_FAILURE_RULE
from hub.desk.machine import Change
from hub.devices.inventory import build_directory
from hub.metrics import Metrics
from hub.model import AlarmDecision, AlarmState, Event, EventKind
from hub.people.staff import Role, StaffMember
from hub.runtime.tasks import Spawner
from hub.settings import Settings
from hub.web.reasons import reason_text
from tests.hub.desk_support import FakeClock, RecordingNotifier, sites_for

SITE = "s1"
ANNA = StaffMember(id=1, username="anna", role=Role.STAFF, units=frozenset({(SITE, "*")}))


class FlakyEngine:
    """The real rule engine, made to fail on events from one device and on ticks while `tick_fails` is set."""

    def __init__(self, now: datetime) -> None:
        self.engine = Engine(load_rules([default_pack_path()]), build_directory(sites_for(SITE)))
        self.engine.set_directory(build_directory(sites_for(SITE)), now)
        self.bad_device = f"{SITE}-radar1"
        self.tick_fails = False
        self.closed: list[str] = []

    def feed(self, event: Event, now: datetime, *, late_s: float = 0.0) -> Sequence[AlarmDecision]:
        if event.device_id == self.bad_device:
            msg = "a rule blew up"
            raise ZeroDivisionError(msg)
        return self.engine.feed(event, now, late_s=late_s)

    def tick(self, now: datetime) -> Sequence[AlarmDecision]:
        if self.tick_fails:
            msg = "a timer blew up"
            raise RuntimeError(msg)
        return self.engine.tick(now)

    def alarm_closed(self, key: str, at: datetime) -> None:
        self.closed.append(key)
        self.engine.alarm_closed(key, at)

    def next_deadline(self) -> datetime | None:
        return self.engine.next_deadline()

    @property
    def pending_timers(self) -> int:
        return self.engine.pending_timers


class Lane:
    def __init__(self, desk: DeskParts, engine: FlakyEngine, clock: FakeClock, metrics: Metrics) -> None:
        self.desk, self.engine, self.clock, self.metrics = desk, engine, clock, metrics

    def event(self, device: str, kind: EventKind) -> None:
        self.desk.lane.feed(Event(ts=self.clock.now(), site=SITE, device_id=f"{SITE}-{device}", kind=kind))

    def failures(self, step: str) -> float:
        return self.metrics.alarm_lane_failures.labels(step)._value.get()  # type: ignore[no-any-return]

    def open(self, rule_id: str) -> list[Alarm]:
        return [a for a in self.desk.machine.open_alarms() if a.rule_id == rule_id]


@pytest.fixture
async def lane(settings: Settings, metrics: Metrics, spawner: Spawner) -> AsyncIterator[Lane]:
    clock = FakeClock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    engine = FlakyEngine(clock.now())
    desk = build_desk(
        settings,
        None,  # type: ignore[arg-type]  # no database: nothing here waits for persistence
        metrics,
        publish=lambda topic, payload, *, qos=1, retain=False: None,
        clock=clock,
        spawner=spawner,
        engine=engine,
        notifiers=[RecordingNotifier()],
    )
    desk.restorer.set_sites(sites_for(SITE))
    desk.restorer.set_staff([ANNA])
    desk.duty.sign_on(ANNA)
    yield Lane(desk, engine, clock, metrics)
    await desk.lane.dispatcher.aclose()


async def test_an_engine_failure_on_one_event_still_raises_the_fall_and_tells_operations(
    lane: Lane, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        lane.event("radar1", EventKind.FALL_DETECTED)
    assert [a.device_id for a in lane.open("fallback")] == [f"{SITE}-radar1"]  # the fall still goes out
    assert lane.failures("engine") == 1
    (failure,) = lane.open(FAILURE_RULE)
    assert failure.category.value == "technical"
    assert "rule engine failed on a fall_detected event" in caplog.text
    lane.event("button3", EventKind.ALARM_BUTTON)  # the next item is evaluated as usual
    assert [a.device_id for a in lane.open("alarm_button")] == [f"{SITE}-button3"]
    lane.event("radar1", EventKind.FALL_DETECTED)
    assert lane.open(FAILURE_RULE)[0].count == 2  # one technical alarm per site, counting


async def test_a_failing_tick_is_counted_and_escalations_still_fire(lane: Lane) -> None:
    lane.event("button3", EventKind.ALARM_BUTTON)
    (button,) = lane.open("alarm_button")
    lane.engine.tick_fails = True
    lane.clock.advance(3600)
    tier = button.next_tier
    lane.desk.lane.tick()
    assert lane.failures("engine_tick") == 1
    assert button.next_tier == tier + 1  # its next tier went out on the same tick


async def test_one_alarm_whose_escalation_fails_does_not_hold_up_the_others(
    lane: Lane, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lane.event("button3", EventKind.ALARM_BUTTON)
    lane.event("plug2", EventKind.ALARM_BUTTON)
    broken, healthy = sorted(lane.open("alarm_button"), key=lambda a: a.device_id != f"{SITE}-button3")
    real_step = desk_machine.escalation_step

    def step(settings, directory, alarm, now, **kwargs):  # type: ignore[no-untyped-def]
        if alarm.id == broken.id:
            msg = "no tier for you"
            raise LookupError(msg)
        return real_step(settings, directory, alarm, now, **kwargs)

    monkeypatch.setattr(desk_machine, "escalation_step", step)
    lane.clock.advance(3600)
    tier = healthy.next_tier
    with caplog.at_level(logging.ERROR):
        assert lane.desk.lane.escalate_due() == 1
    assert healthy.next_tier == tier + 1
    assert lane.failures("escalation") == 1
    assert f"alarm lane step=escalation failed for {broken.id}" in caplog.text
    assert lane.open(FAILURE_RULE)
    broken_tier = broken.next_tier
    lane.desk.lane.escalate_due()
    assert lane.failures("escalation") == 1  # the broken one is retried later, not on every tick
    assert (broken.next_tier, broken.next_escalation_at) == (broken_tier, lane.clock.now() + timedelta(seconds=30))


async def test_a_closed_alarm_reaches_the_engine_even_when_a_delivery_fails(
    lane: Lane, monkeypatch: pytest.MonkeyPatch
) -> None:
    lane.event("button3", EventKind.ALARM_BUTTON)
    (button,) = lane.open("alarm_button")
    (pages,) = [o for o in lane.desk.lane.fanout.outputs if o.name == "pages"]

    def broken_pages(*args: object, **kwargs: object) -> None:
        msg = "page view broke"
        raise ValueError(msg)

    monkeypatch.setattr(pages, "show", broken_pages)
    lane.desk.actions.accept(button.id, ANNA)
    assert button.state is AlarmState.ACCEPTED
    lane.desk.actions.resolve(button.id, ANNA, desk_machine.Outcome.ASSISTED)
    assert lane.engine.closed == [button.key]  # the engine starts the rule's cooldown: no back edge, one call
    # accept, resolve, and the technical alarm about the failure (its own page delivery failed too, uncounted loop)
    assert lane.metrics.alarm_output_failures.labels("pages")._value.get() == 3


class Recorder:
    """Wraps one output: records every change it took (alarm id, rule), or fails every time when `broken`."""

    def __init__(self, inner: Output, taken: dict[str, list[tuple[str, str]]], broken: bool) -> None:
        self.inner, self.name, self.broken = inner, inner.name, broken
        self.taken = taken.setdefault(inner.name, [])

    def deliver(self, change: Change) -> None:
        if self.broken:
            msg = f"{self.name} broke"
            raise RuntimeError(msg)
        self.inner.deliver(change)
        self.taken.append((change.alarm.id, change.alarm.rule_id))


OUTPUTS = ["persistence", "pages", "mqtt", "channels", "log", "gauges"]


@pytest.mark.parametrize("broken", OUTPUTS)
async def test_one_failing_output_never_silences_the_others(
    broken: str, settings: Settings, metrics: Metrics, spawner: Spawner
) -> None:
    """Issue 23.1: only the MQTT publish had its own guard; a failing page output silenced MQTT, the channels and the
    alarm log, and the technical alarm about the failure broke on the same output."""
    taken: dict[str, list[tuple[str, str]]] = {}
    clock = FakeClock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    published: list[str] = []
    notifier = RecordingNotifier()
    desk = build_desk(
        settings,
        None,  # type: ignore[arg-type]  # persistence only queues here
        metrics,
        publish=lambda topic, payload, *, qos=1, retain=False: published.append(topic),
        clock=clock,
        spawner=spawner,
        engine=FlakyEngine(clock.now()),
        notifiers=[notifier],
        outputs=lambda standard: [Recorder(o, taken, o.name == broken) for o in standard],
    )
    desk.restorer.set_sites(sites_for(SITE))
    desk.restorer.set_staff([ANNA])
    desk.duty.sign_on(ANNA)
    try:
        desk.lane.feed(Event(ts=clock.now(), site=SITE, device_id=f"{SITE}-button3", kind=EventKind.ALARM_BUTTON))
        (button,) = [a for a in desk.machine.open_alarms() if a.rule_id == "alarm_button"]
        (failure,) = [a for a in desk.machine.open_alarms() if a.rule_id == OUTPUT_FAILURE_RULE]
        assert failure.category.value == "technical"
        for name in OUTPUTS:
            if name == broken:
                assert taken[name] == []
                continue
            rules = {rule for alarm_id, rule in taken[name] if alarm_id in (button.id, failure.id)}
            assert rules == {"alarm_button", OUTPUT_FAILURE_RULE}, f"{name} missed a change when {broken} failed"
        other = next(name for name in OUTPUTS if name != broken)
        # it failed on every change the others took: the press, its escalation, the report and its escalation
        assert metrics.alarm_output_failures.labels(broken)._value.get() == len(taken[other]) >= 2
        desk.lane.feed(Event(ts=clock.now(), site=SITE, device_id=f"{SITE}-radar1", kind=EventKind.FALL_DETECTED))
        assert len([a for a in desk.machine.open_alarms() if a.rule_id == OUTPUT_FAILURE_RULE]) == 1  # once while open
        if broken != "mqtt":
            assert f"vaka/v1/{SITE}/alarms/{failure.id}" in published
        if broken != "persistence":
            assert desk.lane.store.backlog >= 4  # rows of both alarms queued for the database
    finally:
        await desk.lane.dispatcher.aclose()


async def test_a_failed_background_task_raises_one_technical_alarm_per_site_for_operations(lane: Lane) -> None:
    spawner = lane.desk.spawner
    spawner.on_failure = lane.desk.lane.background_task_failed  # as the hub wires it

    async def broken() -> None:
        msg = "a bug in a background task"
        raise KeyError(msg)

    for _ in range(2):
        await asyncio.gather(spawner.spawn(broken(), name="vaka.test.broken"), return_exceptions=True)
        await asyncio.sleep(0)  # the spawner hears of it one turn later
    (alarm,) = lane.open(TASK_FAILURE_RULE)
    assert (alarm.site, alarm.category.value, alarm.state) == (SITE, "technical", AlarmState.RAISED)
    assert "vaka.test.broken" in alarm.reason
    assert alarm.incidents == 1  # raised once while it is open: a task failing again does not ring it again
    assert lane.metrics.background_task_failures.labels("vaka.test.broken")._value.get() == 2


@pytest.fixture
async def gated_lane(settings: Settings, metrics: Metrics, spawner: Spawner) -> AsyncIterator[Lane]:
    """A lane with the real engine behind the gate, freshness windows as `vaka serve` sets them."""
    clock = FakeClock(datetime(2026, 11, 26, 4, 14, tzinfo=UTC))
    rules = load_rules([default_pack_path()])
    engine = Engine(rules, build_directory(sites_for(SITE)))
    limits = GateLimits(CARE_FRESHNESS_S, TECHNICAL_FRESHNESS_S, {})
    engine.freshness_s = rule_freshness(rules, limits)
    desk = build_desk(
        settings,
        None,  # type: ignore[arg-type]  # no database: nothing here waits for persistence
        metrics,
        publish=lambda topic, payload, *, qos=1, retain=False: None,
        clock=clock,
        spawner=spawner,
        engine=engine,
        gate=Gate(freshness_by_kind(rules, limits)),
        notifiers=[RecordingNotifier()],
    )
    desk.restorer.set_sites(sites_for(SITE))
    desk.restorer.set_staff([ANNA])
    desk.duty.sign_on(ANNA)
    yield Lane(desk, engine, clock, metrics)  # type: ignore[arg-type]
    await desk.lane.dispatcher.aclose()


async def test_a_care_event_that_arrives_hours_late_still_reaches_a_person(gated_lane: Lane) -> None:
    """Issue 22.8: a press buffered in a gateway for 3 h was stored, counted `late`, and shown to nobody."""
    pressed = gated_lane.clock.now() - timedelta(hours=3)
    gated_lane.desk.lane.feed(
        Event(ts=pressed, site=SITE, device_id=f"{SITE}-button3", kind=EventKind.ALARM_BUTTON, seq=7)
    )
    (late,) = gated_lane.open(LATE_CARE_RULE)
    assert late.resident_id == f"{SITE}-r3"
    assert late.category.value == "care"
    assert late.reason == "late: alarm_button at 02:14, arrived 05:14"  # the site's zone (Stockholm, UTC+1)
    assert reason_text("sv", LATE_CARE_RULE, late.reason) == "Sent larm: Larmknapp kl. 02:14, kom fram kl. 05:14"


async def test_a_late_care_event_older_than_what_the_device_said_since_raises_nothing(gated_lane: Lane) -> None:
    """The situation has moved on: the device spoke after it (a cancel at the button), so the old press is news."""
    now = gated_lane.clock.now()
    button = f"{SITE}-button3"
    gated_lane.desk.lane.feed(
        Event(ts=now - timedelta(minutes=170), site=SITE, device_id=button, kind=EventKind.ALARM_BUTTON_CANCEL, seq=8)
    )
    gated_lane.desk.lane.feed(
        Event(ts=now - timedelta(hours=3), site=SITE, device_id=button, kind=EventKind.ALARM_BUTTON, seq=7)
    )
    assert gated_lane.open(LATE_CARE_RULE) == []
    assert gated_lane.open("alarm_button") == []


async def test_a_care_event_from_a_clock_years_off_raises_no_late_alarm(gated_lane: Lane) -> None:
    """Past `reliability.late_care_window_s` (a day) a care event is a clock fault, not a buffered press."""
    gated_lane.desk.lane.feed(
        Event(
            ts=datetime(2001, 1, 1, 3, tzinfo=UTC),
            site=SITE,
            device_id=f"{SITE}-button3",
            kind=EventKind.ALARM_BUTTON,
            seq=1,
        )
    )
    assert gated_lane.open(LATE_CARE_RULE) == []
