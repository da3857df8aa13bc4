"""The resident's rights: an export of everything Vaka holds, and an erasure that waits for the archive retention."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from hub.relatives.rights import resident_hash
from tests.hub.relatives.conftest import Home


async def _history(
    home: Home, resident: str, at: datetime, *, open_alarm: bool = False, care_ended: bool = False
) -> None:
    """A night of events, one handled alarm (and an open one), a consent and a read, all at `at`."""
    async with home.db.acquire() as conn:
        await conn.execute(
            "INSERT INTO events (ts, site, device_id, resident_id, kind) VALUES ($1, $2, $3, $4, 'motion'),"
            " ($1 + interval '1 minute', $2, $3, $4, 'motion'), ($1 + interval '2 minutes', $2, $3, $4, 'bed_exit')",
            at,
            home.site,
            f"{home.site}-radar1",
            resident,
        )
        for closed in (at + timedelta(minutes=4), None if open_alarm else at + timedelta(minutes=9)):
            await conn.execute(
                "INSERT INTO desk_alarms (id, key, rule_id, category, severity, site, unit, resident_id, state, outcome,"
                " note, raised_at, updated_at, closed_at) VALUES ($1, 'fall_detected:' || $3, 'fall_detected', 'care', 4, $2, 'A', $3,"
                " $4, $5, 'helped back to bed', $6, $6, $7)",
                uuid.uuid4().hex,
                home.site,
                resident,
                "resolved" if closed else "raised",
                "assisted" if closed else None,
                at,
                closed,
            )
        task = f"ci-{resident}-{at:%Y%m%d}-0200"
        await conn.execute(
            "INSERT INTO checkins (id, site, resident_id, mode, state, outcome, due_at, window_start, window_end,"
            " created_at, done_at) VALUES ($1, $2, $3, 'camera', 'done', 'asleep', $4, $4, $4, $4, $4)",
            task,
            home.site,
            resident,
            at,
        )
        await conn.execute(
            "INSERT INTO checkin_log (checkin_id, at, actor, action) VALUES ($1, $2, 'staff:1', 'done')", task, at
        )
        await conn.execute(
            "INSERT INTO resident_directory (resident_id, display_name, address) VALUES ($1, 'Anna Andersson', 'Storgatan 1')",
            resident,
        )
        relative = await conn.fetchval("INSERT INTO relatives (email) VALUES ('son@example.se') RETURNING id")
        await conn.execute(
            "INSERT INTO consents (resident_id, relative_id, scope, given_by, recorded_by, recorded_at, text_version,"
            " revoked_at, revoked_by) VALUES ($1, $2, 'night_summary', 'resident', 'nils', $3, '2026-1', $4, $5)",
            resident,
            relative,
            at,
            at + timedelta(days=2) if care_ended else None,
            "nils" if care_ended else None,
        )
        await conn.execute(
            "INSERT INTO resident_access_log (at, relative_id, role, site, resident_id, purpose, address)"
            " VALUES ($1, $2, 'relative', $3, $4, 'status', '192.0.2.7')",
            at,
            relative,
            home.site,
            resident,
        )


async def test_export_holds_everything_and_is_itself_logged(home: Home, tmp_path: Path) -> None:
    r1 = home.resident(1)
    await _history(home, r1, datetime(2026, 11, 20, 1, 30, tzinfo=UTC))
    out = tmp_path / "r1.json"
    result = home.vaka("resident", "export", r1, "--out", str(out), "--by", f"nils-{home.site}")
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    assert data["inventory"]["room"] == "101"
    assert [d["id"] for d in data["inventory"]["devices"]] == [f"{home.site}-radar1"]
    assert [(c["relative"], c["scope"], c["given_by"]) for c in data["consents"]] == [
        ("son@example.se", "night_summary", "resident")
    ]
    assert [(a["outcome"], a["note"]) for a in data["alarms"]] == [("assisted", "helped back to bed")] * 2
    assert data["events_per_day"] == [
        {"day": "2026-11-20", "kind": "bed_exit", "count": 1},
        {"day": "2026-11-20", "kind": "motion", "count": 2},
    ]
    assert [(r["who"], r["what"], r["from"]) for r in data["access_log"]] == [("son@example.se", "status", "192.0.2.7")]
    assert [c["outcome"] for c in data["other"]["checkins"]] == ["asleep"]
    assert data["other"]["resident_directory"][0]["address"] == "Storgatan 1"
    log = home.vaka("access-log", r1).stdout.splitlines()
    assert len(log) == 2
    assert log[-1].split("\t")[1:4] == [f"nils-{home.site}", "nurse", "export"]


async def test_erase_waits_for_the_archive_retention(home: Home) -> None:
    r2 = home.resident(2)
    await _history(home, r2, datetime.now(UTC) - timedelta(days=30), care_ended=True)
    refused = home.vaka("resident", "erase", r2)
    assert refused.returncode == 1
    assert "within the archive retention of 730 days" in refused.stdout
    async with home.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM consents WHERE resident_id = $1", r2) == 1


async def test_erase_refuses_while_an_alarm_is_open(home: Home) -> None:
    r2 = home.resident(2)
    await _history(home, r2, datetime.now(UTC) - timedelta(days=1000), open_alarm=True, care_ended=True)
    refused = home.vaka("resident", "erase", r2)
    assert refused.returncode == 1
    assert "still open" in refused.stdout


async def test_erase_after_retention_leaves_no_trace_of_the_id_but_an_erasure_record(home: Home) -> None:
    r1, r3 = home.resident(1), home.resident(3)
    await _history(home, r1, datetime.now(UTC) - timedelta(days=1000))
    live_consent = home.vaka("resident", "erase", r1)
    assert live_consent.returncode == 1
    assert "consent for the resident is still live" in live_consent.stdout
    async with home.db.acquire() as conn:
        await conn.execute("UPDATE consents SET revoked_at = recorded_at + interval '2 days', revoked_by = 'nils'")
    erased = home.vaka("resident", "erase", r1, "--by", f"lisa-{home.site}")
    assert erased.returncode == 0, erased.stdout + erased.stderr
    hashed = resident_hash(r1)
    assert hashed in erased.stdout
    async with home.db.acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_type = 'BASE TABLE'"
        )
        holding = [
            t["table_name"]
            for t in tables
            if await conn.fetchval(f'SELECT count(*) FROM "{t["table_name"]}" x WHERE x::text LIKE $1', f"%{r1}%")
        ]
        assert holding == []
        assert await conn.fetchval("SELECT count(*) FROM desk_alarms WHERE resident_id = $1", hashed) == 2
        assert await conn.fetchval("SELECT count(*) FROM events WHERE resident_id = $1", hashed) == 3
        assert (
            await conn.fetchval("SELECT count(*) FROM checkin_log WHERE starts_with(checkin_id, 'ci-' || $1)", hashed)
            == 1
        )
        with pytest.raises(asyncpg.RaiseError):  # the check-in log is append-only again
            await conn.execute("DELETE FROM checkin_log")
        record = await conn.fetchrow("SELECT * FROM resident_erasures")
        assert record["resident_hash"] == hashed
        assert record["erased_by"] == f"lisa-{home.site}"
        assert json.loads(record["counts"])["consents"] == 1
        assert await conn.fetchval("SELECT count(*) FROM residents WHERE id = $1", r3) == 1
    assert home.vaka("resident", "erase", r1).returncode == 1
