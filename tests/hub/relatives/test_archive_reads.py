"""An archive export is a read of every resident it holds (issue 26): `vaka archive export` writes one access-log row
per resident in the package (operator, `archive_export`, from cli:<login>), none for a resident not in it, and the
resident's access log shows it."""

from __future__ import annotations

import asyncio
import getpass
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.hub.relatives.conftest import Home


async def test_an_archive_export_is_in_the_access_log_of_each_resident_it_holds(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (("ARCHIVE_CREATOR", "Exempelkommun"), ("ARCHIVE_OWNER", "Exempelkommun"),
                        ("ARCHIVE_SUBMITTER", "Vaka"), ("SUBMISSION_AGREEMENT", "LÖ 2026:1")):  # fmt: skip
        monkeypatch.setenv(f"VAKA_FOLLOWUP__{name}", value)
    r1, r2, r3 = home.resident(1), home.resident(2), home.resident(3)
    november = datetime(2026, 11, 20, 2, 14, tzinfo=UTC)
    async with home.db.acquire() as conn:
        await conn.execute(
            "INSERT INTO desk_alarms (id, key, rule_id, category, severity, site, unit, resident_id, state, outcome,"
            " raised_at, updated_at, closed_at) VALUES ($1, $2, 'fall_detected', 'care', 4, $3, 'A', $4, 'resolved',"
            " 'assisted', $5, $5, $5::timestamptz + interval '9 minutes')",
            uuid.uuid4().hex, f"fall:{uuid.uuid4().hex}", home.site, r1, november,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO resident_access_log (at, staff_id, role, site, resident_id, purpose, address)"
            " VALUES ($1, $2, 'staff', $3, $4, 'home', '10.0.0.7')",
            november, home.staff["anna"].id, home.site, r2,
        )  # fmt: skip
        await conn.execute(  # after the cut-off: not in the package
            "INSERT INTO desk_alarms (id, key, rule_id, category, severity, site, unit, resident_id, state, outcome,"
            " raised_at, updated_at, closed_at) VALUES ($1, $2, 'fall_detected', 'care', 4, $3, 'B', $4, 'resolved',"
            " 'assisted', '2026-12-02T01:00Z', '2026-12-02T01:00Z', '2026-12-02T01:10Z')",
            uuid.uuid4().hex, f"fall:{uuid.uuid4().hex}", home.site, r3,
        )  # fmt: skip
    done = await asyncio.to_thread(home.vaka, "archive", "export", "--before", "2026-12-01", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    async with home.db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT resident_id, role, address FROM resident_access_log WHERE purpose = 'archive_export' ORDER BY 1"
        )
    who = f"cli:{getpass.getuser()}"
    assert [(r["resident_id"], r["role"], r["address"]) for r in rows] == [
        (r1, "operator", who),
        (r2, "operator", who),
    ]
    shown = await asyncio.to_thread(home.vaka, "access-log", r1)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "archive_export" in shown.stdout
