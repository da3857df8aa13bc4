"""Fixtures for the store tests: an open, migrated Database in the test's own schema, a spool, a writer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.metrics import Metrics
from hub.model import Event, EventKind
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings, SpoolSettings
from hub.store.db import Database
from hub.store.migrate import migrate
from hub.store.spool import Spool
from hub.store.writer import Writer
from tests.services import private_mosquitto, private_postgres  # noqa: F401  (fixtures for this package)

BASE_TS = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)


def make_events(
    site: str, count: int, *, start: int = 0, kind: EventKind = EventKind.TEMPERATURE, devices: int = 10
) -> list[Event]:
    """`count` distinct events: device `d{i % devices}`, seq i, one millisecond apart."""
    return [
        Event(
            ts=BASE_TS + timedelta(milliseconds=i),
            site=site,
            device_id=f"{site}-d{i % devices}",
            kind=kind,
            value=20.0 + i % 7,
            unit="Cel" if kind is EventKind.TEMPERATURE else None,
            attrs={"i": i} if i % 3 == 0 else {},
            seq=i,
            topic=f"vaka/v1/{site}/{site}-d{i % devices}/event",
        )
        for i in range(start, start + count)
    ]


class Acks:
    """Counts on_durable calls per submission, to prove each is called exactly once."""

    def __init__(self) -> None:
        self.calls: dict[int, int] = {}

    def callback(self, key: int) -> Callable[[], None]:
        """An on_durable callback for submission `key`."""
        self.calls.setdefault(key, 0)

        def on_durable() -> None:
            self.calls[key] += 1

        return on_durable

    def all_once(self) -> bool:
        """True when every submission was acknowledged exactly once."""
        return bool(self.calls) and all(n == 1 for n in self.calls.values())


@pytest.fixture
async def database(db_settings: DbSettings, metrics: Metrics, spawner: Spawner) -> AsyncIterator[Database]:
    """An open Database on the shared PostgreSQL, migrated, in the test's own schema."""
    db = Database(db_settings, metrics, spawner=spawner)
    await db.open()
    async with db.acquire() as conn:
        await migrate(conn, db_settings)
    yield db
    await db.close()


@pytest.fixture
def spool_settings(tmp_path: Path) -> SpoolSettings:
    """A spool in the test's tmp dir, fsync window 5 ms."""
    return SpoolSettings(directory=tmp_path / "spool", fsync_interval_s=0.005)


@pytest.fixture
async def spool(spool_settings: SpoolSettings, metrics: Metrics, spawner: Spawner) -> AsyncIterator[Spool]:
    """An open spool, closed afterwards."""
    s = Spool(spool_settings, metrics, spawner=spawner)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def writer(database: Database, spool: Spool, db_settings: DbSettings, metrics: Metrics, spawner: Spawner) -> Writer:
    """A writer on the test's database and spool (run_loop not started)."""
    return Writer(database, spool, db_settings, metrics, spawner=spawner)


def segment_files(directory: Path) -> list[Path]:
    """The spool segment files in `directory`, oldest first."""
    return sorted(Path(directory).glob("*.seg"))


def damage_file(path: Path, *, cut: int = 0, flip_from_end: int = 0) -> None:
    """Cut `cut` bytes off the end of a file, or flip the byte `flip_from_end` from the end."""
    data = bytearray(path.read_bytes())
    if flip_from_end:
        data[-flip_from_end] ^= 0xFF
    path.write_bytes(bytes(data[: len(data) - cut]))
