"""Sites owned by lease (issue 30, docs/ha.md): one owner per site, a token that fences a hub that lost its site, the
stall check, and the outside watch. Two keepers on the real PostgreSQL, each as one hub of the HA profile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from hub.desk.alarm import Alarm
from hub.desk.persistence import FENCED, DeskStore
from hub.metrics import Metrics
from hub.model import AlarmCategory, Severity
from hub.ownership.keeper import Ownership
from hub.runtime.tasks import Spawner
from hub.settings import HaSettings, Settings
from hub.store.db import Database
from tests.hub.desk_support import migrated_database


@pytest.fixture
async def db(settings: Settings, metrics: Metrics) -> AsyncIterator[Database]:
    async with migrated_database(settings, metrics) as database:
        yield database


class Hub:
    """One hub's keeper with what it was told: sites restored, dropped and raised as unowned."""

    def __init__(self, db: Database, metrics: Metrics, spawner: Spawner, inventory: list[str], **ha: object) -> None:
        self.restored: list[tuple[str, int]] = []
        self.dropped: list[str] = []
        self.unowned: list[str] = []
        self.keeper = Ownership(
            HaSettings(enabled=True, lease_s=2.0, renew_s=0.5, unowned_alarm_after_s=1.0, **ha),  # type: ignore[arg-type]
            db,
            metrics,
            spawner=spawner,
            inventory=lambda: inventory,
            feed=lambda event: None,
            restore=self._restore,
            drop=self.dropped.append,
            unowned=self.unowned.append,
            held_elsewhere=lambda site: None,
        )

    async def _restore(self, site: str, token: int) -> None:
        self.restored.append((site, token))

    def holds(self) -> dict[str, int]:
        return {site: held.token for site, held in self.keeper.held.items()}


def alarm(site: str, alarm_id: str) -> Alarm:
    now = datetime.now(UTC)
    return Alarm(
        id=alarm_id,
        key=f"alarm_button:{alarm_id}",
        rule_id="alarm_button",
        category=AlarmCategory.CARE,
        severity=Severity.HIGH,
        site=site,
        unit=None,
        resident_id=None,
        device_id="button",
        reason="alarm button pressed",
        unregistered=False,
        raised_at=now,
        updated_at=now,
    )


async def settle(spawner: Spawner) -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_each_site_has_one_owner_and_a_stale_owner_is_fenced(
    db: Database, metrics: Metrics, spawner: Spawner, unique: str
) -> None:
    s1, s2 = f"a{unique}", f"b{unique}"
    a = Hub(db, metrics, spawner, [s1, s2], hub_id="a", prefer=[s1])
    b = Hub(db, metrics, spawner, [s1, s2], hub_id="b", prefer=[s2])
    await a.keeper.round()
    await b.keeper.round()
    await a.keeper.round()
    assert a.holds() == {s1: 1}, "each takes the site it prefers, and only that one at first"
    assert b.holds() == {s2: 1}
    await settle(spawner)
    assert a.restored == [(s1, 1)]
    assert b.restored == [(s2, 1)]

    # a's rows of s1 carry its token and are written
    fenced: list[tuple[str, str]] = []
    store = DeskStore(db, fence=a.keeper.fence, on_fenced=lambda site, kind: fenced.append((site, kind)))
    store.save(alarm(s1, f"x1{unique}"), "rule", "raised", "", datetime.now(UTC))
    await store.write_remaining(5.0)
    assert fenced == []

    # a stops (no more rounds); once its lease ran out and b has had the database for a lease, b takes s1 over
    deadline = time.monotonic() + 15
    while s1 not in b.holds():
        assert time.monotonic() < deadline, "b never took the site a stopped renewing"
        await b.keeper.round()
        await asyncio.sleep(0.5)
    assert b.holds()[s1] == 2, "another process took it: the token went up"

    # a wakes up: before any round, the stall check says it acts for nothing; its queued row is refused and dropped
    assert not a.keeper.acts_for(s1), "a hub that stood still past its lease acts before checking"
    store.save(alarm(s1, f"x2{unique}"), "rule", "raised", "", datetime.now(UTC))
    await store.write_remaining(5.0)
    assert (s1, "alarm") in fenced
    assert (s1, "log") in fenced
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM desk_alarms WHERE id = $1", f"x2{unique}") == 0
        assert await conn.fetchval("SELECT count(*) FROM desk_alarm_log WHERE alarm_id = $1", f"x2{unique}") == 0
        assert await conn.fetchval("SELECT count(*) FROM desk_alarms WHERE id = $1", f"x1{unique}") == 1
        # the database refuses a stale token whoever writes it
        with pytest.raises(asyncpg.PostgresError) as refused:
            await conn.execute(
                "INSERT INTO site_engine_state (site, saved_at, replay_from, fence, snapshot)"
                " VALUES ($1, now(), now(), 1, '{}')",
                s1,
            )
        assert refused.value.sqlstate == FENCED
    await a.keeper.round()
    assert a.holds() == {}, "a learns it lost s1 at its first round"
    assert a.dropped == [s1]
    assert a.keeper.acts_for(s2) is False  # never held


async def test_a_hub_that_renews_after_a_stall_nobody_used_keeps_its_token(
    db: Database, metrics: Metrics, spawner: Spawner, unique: str
) -> None:
    s1 = f"a{unique}"
    a = Hub(db, metrics, spawner, [s1], hub_id="a", prefer=[s1])
    await a.keeper.round()
    await asyncio.sleep(2.2)  # past the lease; no other hub
    a.keeper._beat -= 3.0  # the loop stood still as long
    assert not a.keeper.acts_for(s1)
    await a.keeper.round()
    assert a.holds() == {s1: 1}, "renewed under the same token: nobody acted in between"
    assert a.keeper.acts_for(s1)
    assert a.dropped == []


async def test_a_site_no_hub_holds_is_raised_as_supervision_lost_by_one_hub(
    db: Database, metrics: Metrics, spawner: Spawner, unique: str
) -> None:
    s1, s3 = f"a{unique}", f"c{unique}"
    # s3 is in the inventory but neither hub may own it (say its hub is the one that died)
    a = Hub(db, metrics, spawner, [s1, s3], hub_id="a", sites=[s1], prefer=[s1])
    b = Hub(db, metrics, spawner, [s1, s3], hub_id="b", sites=[s1])
    deadline = time.monotonic() + 10
    while not (a.unowned or b.unowned):
        assert time.monotonic() < deadline, "nobody raised the unowned site"
        await a.keeper.round()
        await b.keeper.round()
        await asyncio.sleep(0.3)
    for _ in range(3):
        await a.keeper.round()
        await b.keeper.round()
    assert sorted(a.unowned + b.unowned) == [s3], "raised once, by one hub, for the site nobody holds"


async def test_rows_queued_before_a_site_was_lost_are_not_written_when_it_is_taken_again(
    db: Database, metrics: Metrics, spawner: Spawner, unique: str
) -> None:
    """Hub a queued a row of site 1, lost the site to b, and took it again (b died) under a new token: the old row is
    not written under the new token (it was decided before b's time, which it would overwrite)."""
    s1 = f"a{unique}"
    a = Hub(db, metrics, spawner, [s1], hub_id="a", prefer=[s1])
    b = Hub(db, metrics, spawner, [s1], hub_id="b", prefer=[s1])
    store = DeskStore(db, fence=a.keeper.fence)
    a.keeper._drop = lambda site: (a.dropped.append(site), store.forget_site(site))  # as takeover.SiteKeeping.drop
    await a.keeper.round()
    assert a.holds() == {s1: 1}
    store.save(alarm(s1, f"old{unique}"), "rule", "raised", "", datetime.now(UTC))  # the database is slow: queued

    async def expire() -> None:
        async with db.acquire() as conn:
            await conn.execute("UPDATE site_leases SET expires_at = now() - interval '1 second' WHERE site = $1", s1)

    await expire()
    await b.keeper.round()
    assert b.holds() == {s1: 2}
    await a.keeper.round()
    assert a.dropped == [s1]
    await expire()  # b dies
    await a.keeper.round()
    assert a.holds() == {s1: 3}
    await store.write_remaining(5.0)
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM desk_alarms WHERE id = $1", f"old{unique}") == 0


@pytest.mark.parametrize("act_without_database", [True, False])
async def test_with_the_database_away_a_hub_acts_on_or_stops_as_it_was_told(
    db: Database, metrics: Metrics, spawner: Spawner, unique: str, act_without_database: bool
) -> None:
    """`ha.act_without_database`: on (the default), a hub whose renewals fail goes on ringing for its sites (alarms from
    memory; no other hub can take them without the database); off, it stops once its lease may have run out."""
    s1 = f"a{unique}"
    a = Hub(db, metrics, spawner, [s1], hub_id="a", prefer=[s1], act_without_database=act_without_database)
    await a.keeper.round()
    assert a.keeper.acts_for(s1)
    assert a.keeper._confirmed_at is not None
    a.keeper._confirmed_at -= 2.0  # the last renewal that reached the database was a lease ago; the loop ran on
    assert a.keeper.acts_for(s1) is act_without_database
