"""The nightly backup and the periodic test restore (deploy/backup/), run for real, and the metrics they leave for
Prometheus (node-exporter's textfile collector): a success moves the timestamps, a failure says so and keeps the last
success's time, so VakaBackupStale and VakaBackupRestoreTestFailing fire on what a person would want to know.

On the test cluster (plain PostgreSQL) always; on TimescaleDB too when VAKA_TEST_TIMESCALE_DSN is set (the restore
then goes through timescaledb_pre_restore/post_restore as docs/operations.md says).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import PG_DSN

REPO = Path(__file__).resolve().parents[2]
BACKUP = REPO / "deploy" / "backup" / "vaka-backup.sh"
RESTORE_TEST = REPO / "deploy" / "backup" / "vaka-restore-test.sh"
TIMESCALE_DSN = os.environ.get("VAKA_TEST_TIMESCALE_DSN", "")

SERVERS = [pytest.param(PG_DSN, id="postgresql")]
if TIMESCALE_DSN:
    SERVERS.append(pytest.param(TIMESCALE_DSN, id="timescaledb"))


def on(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def psql(dsn: str, sql: str) -> str:
    result = subprocess.run(["psql", "-X", "-tA", "-v", "ON_ERROR_STOP=1", dsn, "-c", sql], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def metrics(path: Path) -> dict[str, float]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()
            values[name] = float(value)
    return values


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest, unique: str) -> Iterator[tuple[str, str]]:
    """(server DSN, name of a fresh database there migrated by `vaka migrate` with a few events in it)."""
    dsn, name = request.param, f"vaka_bk_{unique}"
    psql(dsn, f"CREATE DATABASE {name}")
    try:
        if dsn == TIMESCALE_DSN:
            psql(on(dsn, name), "CREATE EXTENSION timescaledb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAKA_")}
        migrate = subprocess.run([sys.executable, "-m", "hub.cli", "migrate"], env={**env, "VAKA_DB__DSN": on(dsn, name)},
                                 capture_output=True, text=True, timeout=120, check=False, cwd=REPO)  # fmt: skip
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        psql(on(dsn, name), "INSERT INTO events (ts, site, device_id, kind, seq) "
             "SELECT now() - make_interval(mins => i), 's', 'd', 'heartbeat', i FROM generate_series(1, 25) i")  # fmt: skip
        yield dsn, name
    finally:
        psql(dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        psql(dsn, f"DROP DATABASE IF EXISTS {name}_rt WITH (FORCE)")


def run(script: Path, dsn: str, database: str, backups: Path) -> subprocess.CompletedProcess[str]:
    parts = urlsplit(dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAKA_", "PG"))}
    env.update(
        PGHOST=parts.hostname or "127.0.0.1", PGPORT=str(parts.port or 5432), PGUSER=parts.username or "postgres",
        VAKA_DB=database, BACKUP_DIR=str(backups), VAKA_RESTORE_TEST_DB=f"{database}_rt",
        VAKA_RESTORE_ROLE=parts.username or "postgres",
    )  # fmt: skip
    return subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_backup_then_restore_test_and_their_metrics(server: tuple[str, str], tmp_path: Path) -> None:
    dsn, database = server
    backups = tmp_path / "backups"
    before = time.time()
    backup = run(BACKUP, dsn, database, backups)
    assert backup.returncode == 0, backup.stdout + backup.stderr
    (dump,) = backups.glob("vaka-*.dump")
    assert list(backups.glob("roles-*.sql"))
    done = metrics(backups / "metrics" / "vaka_backup.prom")
    assert done["vaka_backup_last_success_timestamp_seconds"] >= int(before)
    assert done["vaka_backup_size_bytes"] == dump.stat().st_size > 0
    assert done["vaka_backup_last_run_failed"] == 0

    restored = run(RESTORE_TEST, dsn, database, backups)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "restored and checked" in restored.stdout
    check = metrics(backups / "metrics" / "vaka_restore_test.prom")
    assert check["vaka_backup_restore_test_events"] == 25
    assert check["vaka_backup_restore_test_last_run_failed"] == 0
    assert check["vaka_backup_restore_test_last_success_timestamp_seconds"] >= int(before)
    assert psql(dsn, f"SELECT count(*) FROM pg_database WHERE datname = '{database}_rt'") == "0"  # dropped after

    if shutil.which("promtool"):  # the files as Prometheus' text format, as the collector reads them
        lint = subprocess.run(["promtool", "check", "metrics"], input=(backups / "metrics" / "vaka_backup.prom")
                              .read_text() + (backups / "metrics" / "vaka_restore_test.prom").read_text(),
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert lint.returncode == 0, lint.stdout + lint.stderr

    # a damaged dump: the test restore fails, says so, and keeps the last success's time
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    broken = run(RESTORE_TEST, dsn, database, backups)
    assert broken.returncode != 0
    after = metrics(backups / "metrics" / "vaka_restore_test.prom")
    assert after["vaka_backup_restore_test_last_run_failed"] == 1
    assert (after["vaka_backup_restore_test_last_success_timestamp_seconds"]
            == check["vaka_backup_restore_test_last_success_timestamp_seconds"])  # fmt: skip

    # a backup that cannot run (no such database): failed, the last success kept
    failed = run(BACKUP, dsn, f"{database}_missing", backups)
    assert failed.returncode != 0
    kept = metrics(backups / "metrics" / "vaka_backup.prom")
    assert kept["vaka_backup_last_run_failed"] == 1
    assert kept["vaka_backup_last_success_timestamp_seconds"] == done["vaka_backup_last_success_timestamp_seconds"]
