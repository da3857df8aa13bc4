"""The compose stack's database on TimescaleDB, started the way the timescale/timescaledb image starts it.

docker-compose.yml mounts deploy/timescaledb/vaka-init.sh as one file beside the image's own init scripts; the
image's entrypoint runs it (executable: run, else sourced) once, as the superuser, with POSTGRES_USER and
POSTGRES_DB set. Here: a fresh database on the TimescaleDB server of VAKA_TEST_TIMESCALE_DSN (a PostgreSQL with
timescaledb in shared_preload_libraries), the script run as that entrypoint runs it, then the hub container's
migration as the owner role with the compose file's hub settings; `events` must be a hypertable with its columnstore
and retention policies, owned by the owner, written by the runtime role.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "deploy" / "timescaledb" / "vaka-init.sh"
TIMESCALE_DSN = os.environ.get("VAKA_TEST_TIMESCALE_DSN", "")
# the image's own scripts (timescale/timescaledb-docker, docker-entrypoint-initdb.d), run before ours
IMAGE_SCRIPTS = ("000_install_timescaledb.sh", "001_timescaledb_tune.sh")
ROLES = ("vaka_monitor", "vaka_grafana", "vaka_readonly", "vaka_hub", "vaka_owner")

needs_timescale = pytest.mark.skipif(
    not TIMESCALE_DSN,
    reason="VAKA_TEST_TIMESCALE_DSN is not set: no TimescaleDB server to run the image's init against "
    "(a superuser DSN of a PostgreSQL with timescaledb in shared_preload_libraries)",
)


def init_mount() -> tuple[str, str]:
    """(source, target) of the init script's mount in the compose file's timescaledb service."""
    volumes = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["timescaledb"]["volumes"]
    found = [v.split(":") for v in volumes if "docker-entrypoint-initdb.d" in v]
    assert len(found) == 1, volumes
    source, target, *_ = found[0]
    return source, target


def test_the_init_is_one_file_beside_the_images_own_scripts() -> None:
    source, target = init_mount()
    assert (REPO / source).resolve() == INIT
    directory, name = target.rsplit("/", 1)
    assert directory == "/docker-entrypoint-initdb.d", "a file in the directory, never over it"
    assert name.endswith(".sh")
    assert sorted([*IMAGE_SCRIPTS, name])[-1] == name, "ours must run after the image's"
    # the entrypoint runs an executable .sh and sources any other (then its `exit` would end the entrypoint)
    assert os.access(INIT, os.X_OK)
    environment = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert environment["timescaledb"]["environment"]["VAKA_STORAGE"] == "timescaledb"
    assert environment["hub"]["environment"]["VAKA_DB__STORAGE"] == "timescaledb"


def with_database(dsn: str, database: str, user: str | None = None) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{netloc.rsplit('@', 1)[-1]}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture
async def fresh_database(unique: str) -> AsyncIterator[str]:
    """A new database on the TimescaleDB server, as the image's entrypoint has just made it; dropped afterwards with
    the stack's roles (cluster-wide: the test's server must not hold a real Vaka)."""
    name = f"vaka_init_{unique}"
    admin = await asyncpg.connect(TIMESCALE_DSN)
    try:
        for role in ROLES:
            assert not await admin.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", role), (
                f"the server of VAKA_TEST_TIMESCALE_DSN already has role {role}: use a server of the tests' own"
            )
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    try:
        yield name
    finally:
        admin = await asyncpg.connect(TIMESCALE_DSN)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            for role in ROLES:
                await admin.execute(f"DROP ROLE IF EXISTS {role}")
        finally:
            await admin.close()


def run_init(database: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The script as docker-entrypoint.sh's docker_process_init_files runs it: executed, superuser, no password."""
    parts = urlsplit(TIMESCALE_DSN)
    secrets = {}
    for role in ("owner", "hub", "grafana", "monitor"):
        secrets[role] = tmp_path / f"db_{role}_password"
        secrets[role].write_text(f"{role}-Secret-{database}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAKA_", "PG"))}
    env.update(
        POSTGRES_USER=parts.username or "postgres",
        POSTGRES_DB=database,
        PGHOST=parts.hostname or "127.0.0.1",
        PGPORT=str(parts.port or 5432),
        VAKA_STORAGE="timescaledb",
        VAKA_OWNER_PASSWORD_FILE=str(secrets["owner"]),
        VAKA_HUB_PASSWORD_FILE=str(secrets["hub"]),
        VAKA_GRAFANA_PASSWORD_FILE=str(secrets["grafana"]),
        VAKA_MONITOR_PASSWORD_FILE=str(secrets["monitor"]),
    )
    if parts.password:
        env["PGPASSWORD"] = parts.password
    return subprocess.run([str(INIT)], env=env, capture_output=True, text=True, timeout=60, check=False)


@needs_timescale
@pytest.mark.timeout(180)
async def test_the_image_init_and_the_hub_migration_make_events_a_hypertable_with_its_policies(
    fresh_database: str, tmp_path: Path
) -> None:
    init = await asyncio.to_thread(run_init, fresh_database, tmp_path)
    assert init.returncode == 0, init.stdout + init.stderr
    assert "vaka: timescaledb 2." in init.stdout
    assert "vaka roles created" in init.stdout

    # the hub container's migration: the compose file's hub settings, as the owner role (deploy/docker/entrypoint.sh)
    hub_env = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["hub"]["environment"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAKA_", "PG"))}
    for key in ("VAKA_DB__RUNTIME_ROLE", "VAKA_DB__READONLY_ROLE", "VAKA_DB__STORAGE"):
        env[key] = str(hub_env[key])
    env["VAKA_DB__RETENTION_DAYS"] = "90"
    env["VAKA_DB__DSN"] = with_database(TIMESCALE_DSN, fresh_database, user="vaka_owner")
    env["PGPASSWORD"] = f"owner-Secret-{fresh_database}"
    migrate = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "hub.cli", "migrate"], env=env, capture_output=True, text=True,
        timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    conn = await asyncpg.connect(with_database(TIMESCALE_DSN, fresh_database))
    try:
        hypertable = await conn.fetchrow(
            "SELECT h.owner, d.time_interval FROM timescaledb_information.hypertables h "
            "JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name) "
            "WHERE h.hypertable_schema = 'public' AND h.hypertable_name = 'events'"
        )
        assert hypertable is not None, "events is not a hypertable"
        assert hypertable["owner"] == "vaka_owner"
        assert str(hypertable["time_interval"]) == "1 day, 0:00:00"
        jobs = {
            r["proc_name"]: r["config"]
            for r in await conn.fetch(
                "SELECT proc_name, config::text AS config FROM timescaledb_information.jobs "
                "WHERE hypertable_schema = 'public' AND hypertable_name = 'events'"
            )
        }
        compression = jobs.get("policy_columnstore") or jobs.get("policy_compression")
        assert compression is not None, jobs
        assert '"7 days"' in compression, jobs
        assert '"drop_after": "90 days"' in jobs["policy_retention"], jobs
        # the runtime role writes events and owns nothing
        await conn.execute("SET ROLE vaka_hub")
        await conn.execute(
            "INSERT INTO events (ts, site, device_id, kind, seq) VALUES (now(), 's', 'd', 'heartbeat', 1)"
        )
        assert await conn.fetchval("SELECT count(*) FROM events") == 1
    finally:
        await conn.close()


async def test_the_init_fails_loudly_where_timescaledb_is_not_preloaded(tmp_path: Path) -> None:
    # the shared test cluster is plain PostgreSQL: CREATE EXTENSION fails there, and so does the first start
    from tests.conftest import PG_DSN

    parts = urlsplit(PG_DSN)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAKA_", "PG"))}
    env.update(
        POSTGRES_USER=parts.username or "postgres",
        POSTGRES_DB=(parts.path or "/test").lstrip("/"),
        PGHOST=parts.hostname or "127.0.0.1",
        PGPORT=str(parts.port or 5432),
        VAKA_STORAGE="timescaledb",
        VAKA_OWNER_PASSWORD_FILE=os.devnull,
        VAKA_HUB_PASSWORD_FILE=os.devnull,
        VAKA_GRAFANA_PASSWORD_FILE=os.devnull,
        VAKA_MONITOR_PASSWORD_FILE=os.devnull,
    )
    result = await asyncio.to_thread(
        subprocess.run, [str(INIT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "timescaledb" in result.stderr
    assert "vaka roles created" not in result.stdout
