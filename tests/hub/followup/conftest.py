"""A small, known month of data (November 2026, site `fu`) whose indicators are computed by hand in the tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from hub.model import Device, Inventory, Resident, Site
from hub.settings import DbSettings
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate

SITE = "fu"
PERSONAL = ("r-1", "r-2", "r-3", "Lgh-1101", "Lgh-1102", "Lgh-1201", "Karin", "Lindqvist")
Z = UTC


def ts(text: str) -> datetime:
    """An ISO UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


INSTALLED = date(2026, 1, 15)
INVENTORY = Inventory(
    sites=[
        Site(
            id=SITE,
            residents=[
                Resident(id="r-1", room="Lgh-1101", unit="A"),
                Resident(id="r-2", room="Lgh-1102", unit="A"),
                Resident(id="r-3", room="Lgh-1201", unit="B"),
            ],
            devices=[
                Device(id="radar1", kind="fall_radar", resident="r-1", installed=INSTALLED),
                Device(id="btn1", kind="alarm_button", resident="r-1", installed=INSTALLED),
                Device(id="radar2", kind="fall_radar", resident="r-2", installed=INSTALLED),
                Device(id="robot1", kind="medication_robot", resident="r-2", installed=INSTALLED),
                Device(id="door3", kind="door_sensor", resident="r-3", installed=INSTALLED),
                Device(id="drawer", kind="alarm_button", resident="r-3", installed=INSTALLED),
                # installed half-way through November: not in October's inventory
                Device(id="bed2", kind="bed_sensor", resident="r-2", installed=date(2026, 11, 16)),
                # taken away in October: in October's inventory, not in November's
                Device(
                    id="oldbtn", kind="alarm_button", resident="r-2", installed=INSTALLED, removed=date(2026, 10, 20)
                ),
            ],
        )
    ]
)


def _events() -> list[tuple[datetime, str, str, str | None, str]]:
    out: list[tuple[datetime, str, str, str | None, str]] = []
    for day in range(1, 31):
        out.append((ts(f"2026-11-{day:02d}T12:00:00"), SITE, "radar1", "r-1", "heartbeat"))
    out.append((ts("2026-11-10T02:59:00"), SITE, "radar1", "r-1", "fall_detected"))
    for day in (3, 8, 13, 18, 23):
        out.append((ts(f"2026-11-{day:02d}T12:00:00"), SITE, "btn1", "r-1", "heartbeat"))
    out.append((ts("2026-11-02T12:00:00"), SITE, "radar2", "r-2", "heartbeat"))
    for i in range(20):
        out.append((ts("2026-11-01T08:00:00") + timedelta(days=i), SITE, "robot1", "r-2", "medication_taken"))
    for i in range(3):
        out.append((ts("2026-11-21T08:00:00") + timedelta(days=i), SITE, "robot1", "r-2", "medication_missed"))
    for i in range(2):
        out.append((ts("2026-11-25T09:00:00") + timedelta(days=i), SITE, "robot1", "r-2", "medication_late"))
    for i in range(4):
        out.append((ts("2026-11-15T20:00:00") + timedelta(minutes=i), SITE, "door3", "r-3", "door_open"))
    # 23:30 local on 31 October: October, not November
    out.append((ts("2026-10-31T22:30:00"), SITE, "drawer", "r-3", "alarm_button"))
    # 00:30 local on 1 December: December, not November
    out.append((ts("2026-11-30T23:30:00"), SITE, "drawer", "r-3", "alarm_button"))
    return out


# id, rule, category, severity, unit, resident, device, unregistered, state, outcome, raised, closed
_ALARMS = [
    (
        "a1",
        "fall",
        "care",
        4,
        "A",
        "r-1",
        "radar1",
        False,
        "resolved",
        "assisted",
        "2026-11-10T03:00:00",
        "2026-11-10T03:20:00",
    ),
    (
        "a2",
        "alarm_button",
        "care",
        3,
        "A",
        "r-1",
        "btn1",
        False,
        "resolved",
        "false_alarm",
        "2026-11-12T02:00:00",
        "2026-11-12T02:30:00",
    ),
    (
        "a3",
        "device_silent",
        "technical",
        2,
        "A",
        None,
        "btn1",
        False,
        "resolved",
        "technical",
        "2026-11-20T10:00:00",
        "2026-11-20T14:00:00",
    ),
    (
        "a4",
        "battery_low",
        "technical",
        2,
        "B",
        None,
        "door3",
        False,
        "cancelled",
        None,
        "2026-11-05T10:00:00",
        "2026-11-06T10:00:00",
    ),
    ("a5", "fall", "care", 4, "B", None, "ghost", True, "raised", None, "2026-11-25T01:00:00", None),
    (
        "a6",
        "fall",
        "care",
        4,
        "B",
        "r-3",
        "drawer",
        False,
        "resolved",
        "assisted",
        "2026-10-31T22:30:00",
        "2026-10-31T23:00:00",
    ),
    # staff-process alarms: a check-in not done in its window, and an alarm that reached nobody
    (
        "a8",
        "checkin_overdue",
        "care",
        3,
        "A",
        "r-2",
        None,
        False,
        "resolved",
        "assisted",
        "2026-11-20T22:00:00",
        "2026-11-20T22:30:00",
    ),
    (
        "a9",
        "nobody_reached",
        "care",
        4,
        "A",
        None,
        None,
        False,
        "resolved",
        "no_action",
        "2026-11-20T22:05:00",
        "2026-11-20T22:40:00",
    ),
    (
        "a7",
        "alarm_button",
        "care",
        3,
        "B",
        "r-3",
        "drawer",
        False,
        "resolved",
        "assisted",
        "2026-11-30T23:30:00",
        "2026-11-30T23:50:00",
    ),
]
# alarm, at, actor, action, state, detail
_LOG = [
    ("a1", "2026-11-10T03:00:00", "rule", "raised", "raised", ""),
    ("a1", "2026-11-10T03:00:30", "desk", "escalated", "raised", "tier=1 audience=nurse n=1"),
    ("a1", "2026-11-10T03:01:00", "staff:1", "accepted", "accepted", ""),
    ("a1", "2026-11-10T03:10:00", "staff:1", "on_site", "on_site", ""),
    ("a1", "2026-11-10T03:20:00", "staff:1", "resolved", "resolved", ""),
    ("a2", "2026-11-12T02:00:00", "rule", "raised", "raised", ""),
    # the default care policy has tiers 0-3; the log of an older hub numbered the repeats of tier 3 on (4, 5)
    ("a2", "2026-11-12T02:00:01", "desk", "escalated", "raised", "tier=0 audience=unit n=2"),
    ("a2", "2026-11-12T02:01:00", "desk", "escalated", "raised", "tier=1 audience=unit n=2"),
    ("a2", "2026-11-12T02:03:00", "desk", "escalated", "raised", "tier=2 audience=nurse n=1"),
    ("a2", "2026-11-12T02:05:00", "desk", "escalated", "raised", "tier=3 audience=lead n=1"),
    ("a2", "2026-11-12T02:07:00", "desk", "escalated", "raised", "tier=4 audience=lead n=1"),
    ("a2", "2026-11-12T02:09:00", "desk", "escalated", "raised", "tier=3 audience=lead n=1 repeat=2"),
    ("a2", "2026-11-12T02:10:00", "staff:2", "accepted", "accepted", ""),
    ("a2", "2026-11-12T02:30:00", "staff:2", "resolved", "resolved", ""),
    ("a5", "2026-11-25T01:00:00", "rule", "raised", "raised", ""),
    ("a8", "2026-11-20T22:00:00", "checkins", "raised", "raised", ""),
    ("a8", "2026-11-20T22:01:00", "staff:1", "accepted", "accepted", ""),
    ("a8", "2026-11-20T22:30:00", "staff:1", "resolved", "resolved", ""),
    ("a9", "2026-11-20T22:05:00", "desk", "raised", "raised", ""),
    ("a9", "2026-11-20T22:40:00", "staff:1", "resolved", "resolved", ""),
]
# id, resident, unit, mode, attempt, parent, state, outcome, due, overdue_alarmed: the night of 20 November
_CHECKINS = [
    ("c1", "r-1", "A", "camera", 1, None, "done", "seen_calm", "2026-11-20T21:00:00", False),
    ("c2", "r-2", "A", "camera", 1, None, "open", None, "2026-11-20T21:00:00", False),
    ("c2b", "r-2", "A", "physical", 1, "c2", "done", "visited", "2026-11-20T21:15:00", False),
    ("c3", "r-3", "B", "physical", 1, None, "open", None, "2026-11-20T21:00:00", True),
]


async def load_known_month(conn: asyncpg.Connection) -> None:
    """Write the known month: inventory, events, alarms and their log."""
    await load_inventory(conn, INVENTORY)
    await conn.executemany(
        "INSERT INTO events (ts, site, device_id, resident_id, kind) VALUES ($1, $2, $3, $4, $5)", _events()
    )
    for a in _ALARMS:
        closed = ts(a[11]) if a[11] else None
        await conn.execute(
            "INSERT INTO desk_alarms (id, key, rule_id, category, severity, site, unit, resident_id, device_id, "
            "unregistered, state, outcome, raised_at, updated_at, closed_at) "
            "VALUES ($1, $1, $2, $3, $4, 'fu', $5, $6, $7, $8, $9, $10, $11, $11, $12)",
            a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], ts(a[10]), closed,
        )  # fmt: skip
    # staff names are recorded on the alarm; they must never reach a report or open data
    await conn.execute("UPDATE desk_alarms SET accepted_by = 'Karin Lindqvist' WHERE id IN ('a1', 'a2')")
    await conn.executemany(
        "INSERT INTO resident_access_log (at, staff_id, role, site, resident_id, purpose) VALUES ($1, 1, 'staff', $2, $3, 'alarm')",
        [(ts("2026-11-10T03:01:00"), SITE, "r-1"), (ts("2026-11-12T02:10:00"), SITE, "r-1")],
    )
    await conn.executemany(
        "INSERT INTO desk_alarm_log (alarm_id, at, actor, action, state, detail) VALUES ($1, $2, $3, $4, $5, $6)",
        [(a, ts(at), actor, action, state, detail) for a, at, actor, action, state, detail in _LOG],
    )
    await conn.executemany(
        "INSERT INTO checkins (id, site, unit, resident_id, mode, attempt, parent_id, state, outcome, due_at, "
        "window_start, window_end, created_at, overdue_alarmed) "
        "VALUES ($1, 'fu', $3, $2, $4, $5, $6, $7, $8, $9::timestamptz, $9, $9::timestamptz + interval '30 minutes', $9, $10)",
        [(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], ts(c[8]), c[9]) for c in _CHECKINS],
    )


async def _migrated(dsn: str, schema: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await migrate(conn, DbSettings(dsn=dsn, db_schema=schema))  # type: ignore[arg-type]
    await conn.execute("SELECT set_config('search_path', $1, false)", schema)
    return conn


@pytest.fixture
async def known_month(db_settings: DbSettings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a migrated schema holding the known month (plain PostgreSQL: the rollup is a table)."""
    conn = await _migrated(db_settings.dsn.get_secret_value(), db_settings.db_schema)
    try:
        await load_known_month(conn)
        yield conn
    finally:
        await conn.close()


TIMESCALE_DSN = os.environ.get("VAKA_TEST_TIMESCALE_DSN")


@pytest.fixture
async def known_month_timescale(unique: str) -> AsyncIterator[asyncpg.Connection]:
    """The same month on a real TimescaleDB (the rollup is a continuous aggregate); skipped without one."""
    if not TIMESCALE_DSN:
        pytest.skip("VAKA_TEST_TIMESCALE_DSN is not set: no TimescaleDB server to run the continuous aggregate on")
    schema = f"t_{unique}"
    conn = await _migrated(TIMESCALE_DSN, schema)
    try:
        await load_known_month(conn)
        yield conn
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()
