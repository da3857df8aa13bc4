"""A roster signs people on and off duty from the command line: `vaka staff duty USER on|off`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from hub.metrics import Metrics
from hub.people.staff import StaffMember
from hub.settings import Settings
from hub.store.db import Database
from tests.conftest import PG_DSN
from tests.hub.desk_support import add_inventory_and_staff, migrated_database
from tests.hub.test_cli import vaka


@pytest.fixture
async def db(settings: Settings, metrics: Metrics) -> AsyncIterator[Database]:
    async with migrated_database(settings, metrics) as database:
        yield database


async def test_a_roster_signs_the_nurse_on_call_on_for_the_night_and_off_again(
    db: Database, db_schema: str, unique: str
) -> None:
    staff: dict[str, StaffMember] = await add_inventory_and_staff(db, unique, on_duty=False)
    env = {"VAKA_DB__DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": db_schema}
    on = vaka("staff", "duty", f"nils-{unique}", "on", "--hours", "9", "--from", "2026-11-27T22:00+01:00", env=env)
    assert on.returncode == 0, on.stdout + on.stderr
    assert "on duty until 2026-11-28T07:00+01:00" in on.stdout
    async with db.acquire() as conn:
        row = await conn.fetchrow("SELECT since, until FROM staff_duty WHERE staff_id = $1", staff["nils"].id)
    assert row["until"] == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    naive = vaka("staff", "duty", f"nils-{unique}", "on", "--from", "2026-11-27T22:00", env=env)
    assert naive.returncode == 2
    assert "give the offset" in naive.stdout
    unknown = vaka("staff", "duty", "nobody", "on", env=env)
    assert unknown.returncode == 1
    off = vaka("staff", "duty", f"nils-{unique}", "off", env=env)
    assert off.returncode == 0
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM staff_duty") == 0
