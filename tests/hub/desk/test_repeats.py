"""Repeats at the desk: a continuing technical fault is one incident that rings once; a care repeat rings again.

Real vendor payloads (Frigate's stats, every 60 s by default) through the Frigate adapter, the real rule engine with
the default pack and the desk; the channel is the test's own recorder.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from adapters import frigate
from alarms.engine import Engine
from alarms.rules import default_pack_path, load_rules
from hub.desk.alarm import Alarm
from hub.desk.build import DeskParts, build_desk
from hub.devices.inventory import build_directory
from hub.metrics import Metrics
from hub.model import AlarmState, Device, Event, EventKind, Resident, Site
from hub.people.staff import Role, StaffMember
from hub.runtime.tasks import Spawner
from hub.settings import Settings
from tests.adapters.support import fixture
from tests.hub.desk_support import FakeClock, RecordingNotifier

SITE = "s1"
CAMERA = "entre"  # the camera in Frigate's stats fixture
ANNA = StaffMember(id=1, username="anna", role=Role.STAFF, units=frozenset({(SITE, "*")}))
START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def sites() -> list[Site]:
    return [
        Site(
            id=SITE,
            residents=[Resident(id="r1", room="101", unit="A")],
            devices=[
                Device(id=CAMERA, kind="camera", vendor="frigate"),
                Device(id="button1", kind="alarm_button", resident="r1", safety=True),
            ],
        )
    ]


def stats(camera_fps: float) -> bytes:
    """Frigate's `frigate/stats` as it publishes it, with the entrance camera's frame rate set."""
    msg = json.loads(fixture("frigate", "stats.json"))
    msg["cameras"][CAMERA]["camera_fps"] = camera_fps
    return json.dumps(msg).encode()


@dataclass
class Unit:
    desk: DeskParts
    clock: FakeClock
    channel: RecordingNotifier

    def frigate_stats(self, camera_fps: float) -> None:
        """One stats message, routed to the site as the hub's route would."""
        for event in frigate.parse("frigate/stats", stats(camera_fps), self.clock.now()):
            if event.device_id == CAMERA:
                self.desk.lane.feed(replace(event, site=SITE))

    def press(self) -> None:
        self.desk.lane.feed(Event(ts=self.clock.now(), site=SITE, device_id="button1", kind=EventKind.ALARM_BUTTON))

    def minute(self) -> None:
        self.clock.advance(60)
        self.desk.lane.tick()

    def open(self, rule_id: str) -> Alarm:
        (alarm,) = [a for a in self.desk.machine.open_alarms() if a.rule_id == rule_id]
        return alarm

    async def rings(self, rule_id: str) -> list[str]:
        """What reached people about alarms of this rule: escalations by tier, and state messages by state."""
        await self.desk.lane.dispatcher.drain()
        out = []
        for n in self.channel.seen:
            if n.alarm["rule_id"] == rule_id:
                out.append(f"tier{n.tier}" if n.event == "escalation" else n.alarm["state"])
        return out


@pytest.fixture
async def unit(settings: Settings, metrics: Metrics, spawner: Spawner) -> AsyncIterator[Unit]:
    clock = FakeClock(START)
    engine = Engine(load_rules([default_pack_path()]), build_directory(sites()))
    engine.set_directory(build_directory(sites()), clock.now())
    channel = RecordingNotifier()
    desk = build_desk(
        settings,
        None,  # type: ignore[arg-type]  # no database: nothing here waits for persistence
        metrics,
        publish=lambda topic, payload, *, qos=1, retain=False: None,
        clock=clock,
        spawner=spawner,
        engine=engine,
        notifiers=[channel],
    )
    desk.restorer.set_sites(sites())
    desk.restorer.set_staff([ANNA])
    desk.duty.sign_on(ANNA)
    yield Unit(desk, clock, channel)
    await desk.lane.dispatcher.aclose()


async def test_a_camera_offline_in_frigate_stats_every_minute_for_ten_minutes_rings_once(unit: Unit) -> None:
    for _ in range(11):  # 0, 1, ... 10 minutes
        unit.frigate_stats(camera_fps=0.0)
        unit.minute()
    alarm = unit.open("camera_offline")
    assert (alarm.state, alarm.incidents, alarm.count) == (AlarmState.RAISED, 1, 11)
    assert await unit.rings("camera_offline") == ["raised", "tier0"]


async def test_an_accepted_camera_fault_stays_accepted_while_frigate_keeps_reporting_it(unit: Unit) -> None:
    unit.frigate_stats(camera_fps=0.0)
    alarm = unit.open("camera_offline")
    unit.desk.actions.accept(alarm.id, ANNA)
    for _ in range(10):
        unit.minute()
        unit.frigate_stats(camera_fps=0.0)
    assert (alarm.state, alarm.accepted_by, alarm.incidents, alarm.count) == (AlarmState.ACCEPTED, ANNA.label, 1, 11)
    assert alarm.updated_at == unit.clock.now()  # the card says when the fault was last reported
    assert await unit.rings("camera_offline") == ["raised", "tier0", "accepted"]


async def test_a_new_camera_fault_after_it_came_back_rings_again(unit: Unit) -> None:
    unit.frigate_stats(camera_fps=0.0)
    alarm = unit.open("camera_offline")
    unit.desk.actions.accept(alarm.id, ANNA)
    unit.minute()
    unit.frigate_stats(camera_fps=5.0)  # back: the condition ended; Anna still holds the alarm
    assert alarm.condition_ended_at == unit.clock.now()
    unit.minute()
    unit.frigate_stats(camera_fps=5.0)  # still fine: nothing new
    unit.minute()
    unit.frigate_stats(camera_fps=0.0)  # a new fault
    assert (alarm.state, alarm.incidents, alarm.condition_ended_at) == (AlarmState.RAISED, 2, None)
    unit.minute()
    unit.frigate_stats(camera_fps=0.0)  # the new fault continuing
    assert alarm.incidents == 2
    # accepted; the condition ended (shown to Anna, still hers); the new fault rings from the first tier
    assert await unit.rings("camera_offline") == ["raised", "tier0", "accepted", "accepted", "raised", "tier0"]


async def test_a_second_press_of_an_alarm_button_rings_again(unit: Unit) -> None:
    unit.press()
    alarm = unit.open("alarm_button")
    unit.desk.actions.accept(alarm.id, ANNA)
    unit.minute()
    unit.press()
    # issue 28: a press while Anna holds it stays hers and rings for her (her own tier), until she answers it
    assert (alarm.state, alarm.incidents, alarm.repeat_pending) == (AlarmState.ACCEPTED, 2, True)
    assert (await unit.rings("alarm_button")).count("tier0") == 2
