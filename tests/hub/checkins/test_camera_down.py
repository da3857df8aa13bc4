"""A camera that is down at its slot makes the slot a physical visit at once, also when the hub's clock runs in big
steps (a simulation at 1200x moves twenty simulated minutes a second): the camera is judged at the instant the task
is stamped, after the rule engine has fired every silence due by then, and a camera task whose camera turns out to
be down while the task is open becomes a visit as soon as that is known.

The alarm lane here is the real one (the default rule pack's `device_silent`, the desk), driven by hand: nothing
ticks it but the test, so each ordering a loaded hub can produce is played exactly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

import pytest

from alarms.engine import Engine
from alarms.rules import default_pack_path, load_rules
from hub.checkins.plan import Plan, Slot
from hub.checkins.service import CheckinService, Task, save_plans
from hub.desk.build import DeskParts, build_desk
from hub.devices.inventory import build_directory
from hub.metrics import Metrics
from hub.model import (
    AlarmCategory,
    AlarmDecision,
    DecisionAction,
    Device,
    Event,
    EventKind,
    Inventory,
    Resident,
    Severity,
)
from hub.runtime.tasks import Spawner
from hub.settings import Settings
from hub.store.db import Database
from hub.store.inventory import load_inventory
from tests.hub.desk_support import FakeClock, RecordingNotifier, add_inventory_and_staff, migrated_database, sites_for

CAMERA_SUPERVISION_S = 1200  # the simulator's cameras: silent after 20 minutes without a heartbeat
# the 23:00 slot (CET) of 26 November 2026, its window ±15 min
DUE = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)
W0, W1 = DUE - timedelta(minutes=15), DUE + timedelta(minutes=15)


@dataclass
class Night:
    """A site whose residents all have a camera and a 23:00 camera slot, the real lane, the check-in service."""

    site: str
    residents: list[str]
    cameras: dict[str, str]  # resident -> camera
    desk: DeskParts
    db: Database
    clock: FakeClock
    service: CheckinService
    published: list[tuple[str, bytes]]
    devices: list[str]
    muted: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)  # camera -> silent from, until
    seq: int = 0

    def heartbeats(self) -> None:
        """Every device that is not muted says it is alive, now (as the simulator's traffic does, in time order)."""
        now = self.clock.now()
        for device in self.devices:
            span = self.muted.get(device)
            if span is not None and span[0] <= now < span[1]:
                continue
            self.seq += 1
            self.desk.lane.feed(Event(ts=now, site=self.site, device_id=device, kind=EventKind.HEARTBEAT, seq=self.seq))

    def task(self, resident: str) -> str:
        return f"ci-{resident}-20261126-2300"

    async def tasks(self) -> dict[str, Task]:
        staff = self.desk.directory.staff
        lisa = next(m for m in staff if m.username.startswith("lisa-"))  # the site's admin sees every unit
        return {t.resident_id: t for t in await self.service.open_for(lisa)}


async def night_lane(
    settings: Settings, metrics: Metrics, unique: str, spawner: Spawner, residents: int
) -> AsyncIterator[Night]:
    async with migrated_database(settings, metrics) as db:
        await add_inventory_and_staff(db, unique)
        base = sites_for(unique)[0]
        people = [f"{unique}-n{i:02d}" for i in range(residents)]
        cameras = {r: f"{unique}-cam{i:02d}" for i, r in enumerate(people)}
        site = base.model_copy(
            update={
                "residents": [*base.residents, *(Resident(id=r, room=f"3{i:02d}", unit="A") for i, r in enumerate(people))],
                "devices": [
                    *base.devices,
                    *(Device(id=c, kind="camera", resident=r, supervision_interval_s=CAMERA_SUPERVISION_S)
                      for r, c in cameras.items()),
                ],
            }
        )  # fmt: skip
        plans = [
            Plan(resident=r, consent_ref="samtycke", care_decision_ref="beslut", camera=c, travel_minutes=10,
                 slots=[Slot(at=time(23, 0)), Slot(at=time(5, 0), mode="physical")])
            for r, c in cameras.items()
        ]  # fmt: skip
        async with db.acquire() as conn:
            await load_inventory(conn, Inventory(sites=[site]))
            await save_plans(conn, plans)
        clock = FakeClock(DUE - timedelta(hours=2))  # 21:00 local: every device supervised from now
        engine = Engine(load_rules([default_pack_path()]), build_directory([site]))
        engine.set_directory(build_directory([site]), clock.now())
        published: list[tuple[str, bytes]] = []

        def publish(topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
            published.append((topic, payload))

        desk = build_desk(
            settings,
            db,
            metrics,
            publish=publish,
            clock=clock,
            spawner=spawner,
            engine=engine,
            notifiers=[RecordingNotifier()],
        )
        await desk.restorer.restore([site])
        service = CheckinService(db, desk, publish, clock, None)
        try:
            yield Night(unique, people, cameras, desk, db, clock, service, published, [d.id for d in site.devices])
        finally:
            await desk.aclose()


@pytest.fixture
async def night(settings: Settings, metrics: Metrics, unique: str, spawner: Spawner) -> AsyncIterator[Night]:
    async for n in night_lane(settings, metrics, unique, spawner, residents=1):
        yield n


@pytest.fixture
async def busy_night(settings: Settings, metrics: Metrics, unique: str, spawner: Spawner) -> AsyncIterator[Night]:
    async for n in night_lane(settings, metrics, unique, spawner, residents=24):
        yield n


def play_until(n: Night, until: datetime, step_s: float) -> None:
    """The hub's clock and its traffic up to `until`, the lane ticking after each step (check-ins not ticked)."""
    while n.clock.now() < until:
        n.clock.advance(step_s)
        n.heartbeats()
        n.desk.lane.tick()


async def test_a_silence_due_before_the_window_makes_a_visit_though_the_lane_has_not_ticked_yet(night: Night) -> None:
    (resident,) = night.residents
    camera = night.cameras[resident]
    # the camera's last heartbeat at 22:20 local: silent from 22:40, five minutes before the window opens
    play_until(night, W0 - timedelta(minutes=25), 60)
    night.muted[camera] = (night.clock.now() + timedelta(seconds=1), W1 + timedelta(minutes=10))
    play_until(night, W0 - timedelta(minutes=10), 60)
    # one big step, as 1200x makes of a loaded second: the check-in tick runs before the lane's tick and with no
    # event since the camera's silence came due
    night.clock.advance(12 * 60)
    created = await night.service.tick()
    assert [(t.id, t.mode, t.reason) for t in created] == [(night.task(resident), "physical", "camera_down")]


async def test_a_camera_down_at_its_slot_makes_a_visit_while_the_clock_runs_on_during_the_tick(
    busy_night: Night,
) -> None:
    n = busy_night
    # every camera silent from 22:00 local (device_silent by 22:20) until 5 minutes after its window closes
    back = W1 + timedelta(minutes=5)
    for camera in n.cameras.values():
        n.muted[camera] = (W0 - timedelta(minutes=45), back)
    play_until(n, W0 + timedelta(minutes=1), 60)
    assert {a.device_id for a in n.desk.machine.open_alarms() if a.rule_id == "device_silent"} >= set(
        n.cameras.values()
    )
    done = asyncio.Event()

    async def simulation() -> None:
        # at 1200x the clock and the traffic move on while the tick writes its tasks: a simulated minute each time
        # the hub's loop comes round, until every camera is back
        while not done.is_set():
            await asyncio.sleep(0)
            n.clock.advance(60)
            n.heartbeats()
            n.desk.lane.tick()

    sim = asyncio.create_task(simulation())
    try:
        created = await n.service.tick()
    finally:
        done.set()
        await sim
    assert n.clock.now() > back, "the tick should have outlasted the cameras' silence (test set-up)"
    assert len(created) == len(n.residents)
    wrong = [(t.resident_id, t.mode) for t in created if (t.mode, t.reason) != ("physical", "camera_down")]
    assert wrong == []


async def test_a_camera_task_becomes_a_visit_once_its_camera_turns_out_silent(night: Night) -> None:
    (resident,) = night.residents
    camera = night.cameras[resident]
    # last heartbeat at 22:41 local: the camera is silent from 23:01, after the task was made for a look
    play_until(night, W0 - timedelta(minutes=4), 60)
    night.muted[camera] = (night.clock.now() + timedelta(seconds=1), W1 + timedelta(minutes=30))
    play_until(night, W0 + timedelta(minutes=1), 60)
    (task,) = await night.service.tick()
    assert (task.mode, task.reason) == ("camera", "")
    play_until(night, DUE + timedelta(minutes=2), 60)
    assert camera in night.desk.machine.device_faults(night.site)
    await night.service.tick()
    visit = (await night.tasks())[resident]
    assert (visit.id, visit.mode, visit.reason, visit.state) == (task.id, "physical", "camera_down", "open")
    topic, payload = night.published[-1]
    assert topic.endswith(f"/checkins/{task.id}")
    assert (json.loads(payload)["mode"], json.loads(payload)["reason"]) == ("physical", "camera_down")
    async with night.db.acquire() as conn:
        steps = [
            r["action"]
            for r in await conn.fetch("SELECT action FROM checkin_log WHERE checkin_id = $1 ORDER BY seq", task.id)
        ]
    assert steps == ["created", "camera_down"]
    assert await night.service.tick() == []  # judged once


async def test_a_restarted_hub_before_its_clock_follows_the_simulation_turns_no_task(night: Night) -> None:
    (resident,) = night.residents
    camera = night.cameras[resident]
    play_until(night, W0 + timedelta(minutes=1), 60)
    (task,) = await night.service.tick()
    # a hub started on a simulation's clock waits at 2000-01-01 for its first clock message; the camera is down
    night.clock.t = datetime(2000, 1, 1, tzinfo=UTC)
    night.desk.lane.apply(AlarmDecision(action=DecisionAction.RAISE, key=f"device_silent:{camera}", rule_id="device_silent",
                                   category=AlarmCategory.TECHNICAL, severity=Severity.MEDIUM, site=night.site,
                                   at=night.clock.now(), reason="silent", device_id=camera))  # fmt: skip
    assert await night.service.tick() == []
    assert ((await night.tasks())[resident].id, (await night.tasks())[resident].mode) == (task.id, "camera")
