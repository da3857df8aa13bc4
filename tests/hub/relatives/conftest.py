"""A migrated schema with the desk tests' site (residents r1, r2 in unit A, r3 in unit B) and staff, and `vaka`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from hub.metrics import Metrics
from hub.settings import Settings
from hub.staff import StaffMember
from hub.store.db import Database
from tests.conftest import PG_DSN
from tests.hub.desk_support import add_inventory_and_staff, migrated_database


@dataclass
class Home:
    """The test's site, its database and staff."""

    site: str
    db: Database
    settings: Settings
    staff: dict[str, StaffMember]

    def resident(self, n: int) -> str:
        return f"{self.site}-r{n}"

    def vaka(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """The `vaka` command on this test's schema."""
        env = {**os.environ, "VAKA_DB__DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": self.settings.db.db_schema}
        env["VAKA_HTTP__PUBLIC_URL"] = self.settings.http.public_url
        return subprocess.run(
            [sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=60, env=env, input=stdin
        )


@pytest.fixture
async def home(settings: Settings, metrics: Metrics, unique: str) -> AsyncIterator[Home]:
    async with migrated_database(settings, metrics) as db:
        staff = await add_inventory_and_staff(db, unique)
        yield Home(unique, db, settings, staff)
