"""Shared pieces for the desk, notify and staff page tests: a clock you hold, a recording channel, a migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hub.metrics import Metrics
from hub.model import AlarmCategory, AlarmDecision, DecisionAction, Device, Event, Inventory, Resident, Severity, Site
from hub.notify import Notification
from hub.people.staff import Role, StaffMember
from hub.runtime.tasks import Spawner
from hub.settings import Settings
from hub.store.db import Database
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from hub.store.staff import create_staff

PASSWORD = "correct horse battery"


class FakeClock:
    """A clock the test moves by hand (so it does not run on by itself: speed 0, like a paused simulation)."""

    speed = 0.0
    synced = True

    def __init__(self, start: datetime | None = None) -> None:
        self.t = start or datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


class ClosedKeys:
    """The rule engine as the alarm lane sees it, deciding nothing: records the keys of the alarms the desk closed."""

    def __init__(self, keys: list[str] | None = None) -> None:
        self.keys = keys if keys is not None else []

    def feed(self, event: Event, now: datetime, *, late_s: float = 0.0) -> list[AlarmDecision]:
        return []

    def tick(self, now: datetime) -> list[AlarmDecision]:
        return []

    def alarm_closed(self, key: str, at: datetime) -> None:
        self.keys.append(key)

    def next_deadline(self) -> datetime | None:
        return None

    pending_timers = 0


@dataclass
class RecordingNotifier:
    """A channel that keeps what it was asked to deliver (the test's own receiver, not a stand-in for a service)."""

    channel: str = "record"
    seen: list[Notification] = field(default_factory=list)

    def wants(self, notification: Notification) -> bool:
        return True

    async def send(self, notification: Notification) -> None:
        self.seen.append(notification)

    def escalations(self) -> list[tuple[int | None, str | None, list[str]]]:
        return [
            (n.tier, n.audience, sorted(r.username for r in n.recipients)) for n in self.seen if n.event == "escalation"
        ]


def sites_for(site: str) -> list[Site]:
    """One site, two units: residents r1/r2 in unit A, r3 in unit B; a safety radar, a button, a hallway hub."""
    return [
        Site(
            id=site,
            timezone="Europe/Stockholm",
            residents=[
                Resident(id=f"{site}-r1", room="101", unit="A"),
                Resident(id=f"{site}-r2", room="102", unit="A"),
                Resident(id=f"{site}-r3", room="201", unit="B"),
            ],
            devices=[
                Device(id=f"{site}-radar1", kind="fall_radar", resident=f"{site}-r1", safety=True),
                Device(id=f"{site}-button3", kind="alarm_button", resident=f"{site}-r3", safety=True),
                Device(id=f"{site}-plug2", kind="smart_plug", resident=f"{site}-r2"),
            ],
        )
    ]


def decision(
    site: str,
    action: DecisionAction = DecisionAction.RAISE,
    *,
    rule_id: str = "fall_detected",
    subject: str = "r1",
    category: AlarmCategory = AlarmCategory.CARE,
    severity: Severity = Severity.CRITICAL,
    device: str | None = "radar1",
    resident: str | None = "r1",
    at: datetime | None = None,
    unregistered: bool = False,
    reason: str = "fall detected by radar",
) -> AlarmDecision:
    """A rule engine decision for this test's site (ids are prefixed with the site)."""
    return AlarmDecision(
        action=action,
        key=f"{rule_id}:{site}-{subject}",
        rule_id=rule_id,
        category=category,
        severity=severity,
        site=site,
        at=at or datetime.now(UTC),
        reason=reason,
        resident_id=f"{site}-{resident}" if resident else None,
        device_id=(device if unregistered else f"{site}-{device}") if device else None,
        unregistered=unregistered,
    )


@asynccontextmanager
async def migrated_database(settings: Settings, metrics: Metrics) -> AsyncIterator[Database]:
    """The real Database on the test's schema, migrated."""
    async with Spawner(metrics) as spawner:
        db = Database(settings.db, metrics, spawner=spawner)
        await db.open()
        try:
            async with db.acquire() as conn:
                await migrate(conn, settings.db)
            yield db
        finally:
            await db.close()


async def add_inventory_and_staff(db: Database, site: str, *, on_duty: bool = True) -> dict[str, StaffMember]:
    """The test site's inventory and staff: anna+bo (unit A), nils (nurse, A), lisa (admin, site), carl (unit B).

    With `on_duty` everyone is signed on to a long shift (escalation reaches only people on duty).
    """
    people = {
        "anna": (Role.STAFF, [(site, "A")], "+46700000001"),
        "bo": (Role.STAFF, [(site, "A")], None),
        "nils": (Role.NURSE, [(site, "A")], "+46700000003"),
        "lisa": (Role.ADMIN, [(site, "*")], None),
        "carl": (Role.STAFF, [(site, "B")], None),
    }
    members = {}
    async with db.acquire() as conn:
        await load_inventory(conn, Inventory(sites=sites_for(site)))
        for name, (role, units, phone) in people.items():
            members[name] = await create_staff(
                conn,
                username=f"{name}-{site}",
                password=PASSWORD,
                role=role,
                units=units,
                display_name=name.title(),
                phone=phone,
                lang="en",
            )
        if on_duty:
            await conn.executemany(
                "INSERT INTO staff_duty (staff_id, since, until) VALUES ($1, $2, $3)",
                [(m.id, datetime(2020, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)) for m in members.values()],
            )
    return members
