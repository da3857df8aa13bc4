"""How the hub container starts, for real but without Docker: the database image's role script, then the image's
entrypoint — migrations as the owner role, `vaka serve` as the runtime role — against a PostgreSQL that checks
passwords (scram-sha-256), with the passwords only in secret files. Grafana's role reads and cannot write."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import paho.mqtt.publish as publish
import pytest
import yaml

from tests.conftest import MQTT_HOST, MQTT_PORT
from tests.services import PG_BIN, PrivatePostgres, _as_postgres, free_port

REPO = Path(__file__).resolve().parents[2]
ROLES_SCRIPT = REPO / "deploy" / "timescaledb" / "vaka-init.sh"
ENTRYPOINT = REPO / "deploy" / "docker" / "entrypoint.sh"
PASSWORDS = {"owner": "owner-Secret-1", "hub": "hub-Secret-2", "grafana": "grafana-Secret-3", "monitor": "mon-Secret-4"}


@pytest.fixture
def scram_postgres() -> Iterator[PrivatePostgres]:
    """A private cluster where every role but the superuser must give its password over TCP."""
    pg = PrivatePostgres()
    pg.start()
    try:
        (pg.data_dir / "pg_hba.conf").write_text(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        subprocess.run(_as_postgres(PG_BIN / "pg_ctl", "reload", "-D", pg.data_dir), check=True, capture_output=True)
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-c", "CREATE DATABASE vaka"],
            check=True,
            capture_output=True,
        )
        yield pg
    finally:
        pg.cleanup()


def secret_files(directory: Path) -> dict[str, Path]:
    files = {}
    for role, password in PASSWORDS.items():
        path = directory / f"db_{role}_password"
        path.write_text(password + "\n")
        path.chmod(0o600)
        files[role] = path
    token = directory / "metrics_token"
    token.write_text("test-metrics-token\n")
    token.chmod(0o600)
    files["metrics_token"] = token
    return files


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def run_init(port: int, secrets: dict[str, Path]) -> None:
    """The database image's init script (deploy/timescaledb/vaka-init.sh) against the private cluster."""
    roles = subprocess.run(
        ["sh", str(ROLES_SCRIPT)],
        env={
            **os.environ,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(port),
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": "vaka",
            # plain PostgreSQL here: the init without the extension (tests/deploy/test_timescale_init.py runs it
            # with TimescaleDB)
            "VAKA_STORAGE": "native",
            "VAKA_OWNER_PASSWORD_FILE": str(secrets["owner"]),
            "VAKA_HUB_PASSWORD_FILE": str(secrets["hub"]),
            "VAKA_GRAFANA_PASSWORD_FILE": str(secrets["grafana"]),
            "VAKA_MONITOR_PASSWORD_FILE": str(secrets["monitor"]),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert roles.returncode == 0, roles.stderr


def compose_hub_env(port: int, secrets: dict[str, Path], tmp_path: Path, unique: str, http_port: int) -> dict[str, str]:
    """The hub service's environment from docker-compose.yml, pointed at this machine's services."""
    hub_service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["hub"]
    secret_paths = {
        "db_hub_password": secrets["hub"],
        "db_owner_password": secrets["owner"],
        "metrics_token": secrets["metrics_token"],
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAKA_", "PG"))}
    for key, value in hub_service["environment"].items():
        value = str(value).replace("timescaledb:5432/vaka", f"127.0.0.1:{port}/vaka")
        if value.startswith("/run/secrets/"):
            value = str(secret_paths.get(value.removeprefix("/run/secrets/"), value))
        if not key.startswith("VAKA_MQTT__") and "${" not in value:
            env[key] = value
    assert env["VAKA_DB__REQUIRE_LEAST_PRIVILEGE"] == "true"
    assert env["VAKA_DB__STORAGE"] == "timescaledb"
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        VAKA_DB__RETENTION_DAYS="90",
        VAKA_MQTT__HOST=MQTT_HOST,
        VAKA_MQTT__PORT=str(MQTT_PORT),
        VAKA_MQTT__CLIENT_ID=f"vaka-test-{unique}",
        VAKA_MQTT__TELEMETRY_CONNECTION="false",
        VAKA_MQTT__HUB_STATUS="false",  # no retained status of this site left on the shared broker
        VAKA_SPOOL__DIRECTORY=str(tmp_path / "spool"),
        VAKA_HTTP__HOST="127.0.0.1",
        VAKA_HTTP__PORT=str(http_port),
        VAKA_HTTP__COOKIE_SECURE="false",
    )
    return env


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_the_hub_refuses_plain_postgresql_when_the_stack_intends_timescaledb(
    scram_postgres: PrivatePostgres, tmp_path: Path, unique: str
) -> None:
    port = scram_postgres.port
    secrets = secret_files(tmp_path)
    await asyncio.to_thread(run_init, port, secrets)
    env = compose_hub_env(port, secrets, tmp_path, unique, free_port())
    log = (tmp_path / "hub.log").open("w")
    hub = subprocess.Popen(["sh", str(ENTRYPOINT), "serve"], env=env, stdout=log, stderr=log, cwd=tmp_path)  # noqa: ASYNC220
    try:
        returncode = await asyncio.to_thread(hub.wait, 90)
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait(timeout=10)
        log.close()
    output = (tmp_path / "hub.log").read_text()
    assert returncode != 0, output[-3000:]
    assert "db.storage is timescaledb but this database has no timescaledb extension" in output
    owner = await asyncpg.connect(f"postgresql://vaka_owner@127.0.0.1:{port}/vaka", password=PASSWORDS["owner"])
    try:
        # nothing made that would later stand in TimescaleDB's way
        assert await owner.fetchval("SELECT to_regclass('public.events')") is None
    finally:
        await owner.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_migrations_run_as_owner_and_the_hub_serves_as_the_runtime_role(
    scram_postgres: PrivatePostgres, tmp_path: Path, unique: str
) -> None:
    port = scram_postgres.port
    secrets = secret_files(tmp_path)
    await asyncio.to_thread(run_init, port, secrets)
    http_port = free_port()
    env = compose_hub_env(port, secrets, tmp_path, unique, http_port)
    env["VAKA_DB__STORAGE"] = "auto"  # plain PostgreSQL: native partitions (the refusal is the test above)
    log = (tmp_path / "hub.log").open("w")
    hub = subprocess.Popen(["sh", str(ENTRYPOINT), "serve"], env=env, stdout=log, stderr=log, cwd=tmp_path)  # noqa: ASYNC220
    try:
        deadline = time.monotonic() + 60
        status = 0
        while time.monotonic() < deadline and hub.poll() is None:
            status, body = await asyncio.to_thread(get, f"http://127.0.0.1:{http_port}/readyz")
            if status == 200 and '"ready"' in body:
                break
            await asyncio.sleep(0.3)
        output = (tmp_path / "hub.log").read_text()
        assert status == 200, output[-3000:]
        assert "migrating as the owner role" in output
        assert "migration failed" not in output, output[:4000]

        # a device event goes all the way into the database, written by the runtime role
        device = f"{unique}-button"
        payload = {"ts": datetime.now(UTC).isoformat(), "kind": "heartbeat", "seq": 1}
        await asyncio.to_thread(
            publish.single, f"vaka/v1/{unique}/{device}/event", json.dumps(payload), qos=1, hostname=MQTT_HOST,
            port=MQTT_PORT,
        )  # fmt: skip
        owner = await asyncpg.connect(f"postgresql://vaka_owner@127.0.0.1:{port}/vaka", password=PASSWORDS["owner"])
        try:
            for _ in range(100):
                if await owner.fetchval("SELECT count(*) FROM events WHERE device_id = $1", device):
                    break
                await asyncio.sleep(0.1)
            assert await owner.fetchval("SELECT count(*) FROM events WHERE device_id = $1", device) == 1
            owners = {
                r["tableowner"]
                for r in await owner.fetch("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
            }
            users = {
                r["usename"]
                for r in await owner.fetch(
                    "SELECT usename FROM pg_stat_activity WHERE datname = 'vaka' AND pid <> pg_backend_pid()"
                )
            }
        finally:
            await owner.close()
        assert owners == {"vaka_owner"}
        assert users == {"vaka_hub"}  # the migration's owner connection is gone; the hub holds no more than it needs
    finally:
        hub.terminate()
        hub.wait(timeout=30)
        log.close()

    grafana = await asyncpg.connect(f"postgresql://vaka_grafana@127.0.0.1:{port}/vaka", password=PASSWORDS["grafana"])
    try:
        assert await grafana.fetchval("SELECT count(*) FROM events WHERE device_id = $1", device) == 1
        assert await grafana.fetchval("SELECT count(*) FROM desk_alarms") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await grafana.fetch("SELECT password_hash FROM staff")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await grafana.fetch("SELECT note FROM desk_alarms")
        with pytest.raises((asyncpg.ReadOnlySQLTransactionError, asyncpg.InsufficientPrivilegeError)):
            await grafana.execute("DELETE FROM events")
    finally:
        await grafana.close()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(f"postgresql://vaka_hub@127.0.0.1:{port}/vaka", password="wrong")
