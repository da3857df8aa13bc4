"""Relatives as the hub runs in production: the page and API as the least-privileged runtime role, whose access-log
rows it can add but never change; erasure, which must rewrite pseudonyms, only on the owner's connection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from hub.metrics import Metrics
from hub.model import Inventory
from hub.relatives.accounts import accept_invitation, invite
from hub.relatives.consent import GivenBy, Scope, grant, revoke
from hub.runtime.tasks import Spawner
from hub.settings import Settings
from hub.store.db import Database
from hub.store.inventory import load_inventory
from hub.web.relatives import setup_relatives
from tests.conftest import DbRoles
from tests.hub.desk_support import sites_for
from tests.hub.relatives.conftest import _free_port
from tests.hub.store.test_roles import migrated, role_env, role_settings, vaka

__all__ = ["migrated"]  # the fixture, used by name below

PASSWORD = "mammas natt 2026"


async def test_relatives_run_as_the_runtime_role_and_cannot_rewrite_their_reads(
    migrated: DbRoles, db_schema: str, unique: str, settings: Settings, spawner: Spawner
) -> None:
    site, r1 = unique, f"{unique}-r1"
    runtime = await asyncpg.connect(migrated.runtime_dsn, server_settings={"search_path": db_schema})
    try:
        await load_inventory(runtime, Inventory(sites=sites_for(site)))
        await grant(
            runtime, resident_id=r1, relative_email="dotter@example.se", scopes=[Scope.NIGHT_SUMMARY],
            given_by=GivenBy.RESIDENT, recorded_by="nils", text_version="2026-1", at=datetime.now(UTC),
        )  # fmt: skip
        token, _ = await invite(
            runtime, email="dotter@example.se", resident_id=r1, created_by="nils", at=datetime.now(UTC)
        )
        await accept_invitation(runtime, token, PASSWORD, datetime.now(UTC))
    finally:
        await runtime.close()

    port = _free_port()
    settings.db = role_settings(migrated, db_schema)
    settings.http.public_url = f"http://localhost:{port}"
    db = Database(settings.db, Metrics(), spawner=spawner)
    await db.open()
    app = web.Application()
    setup_relatives(app, db=db, settings=settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = settings.http.public_url
    try:
        async with aiohttp.ClientSession(
            base_url=url, cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": url}
        ) as http:
            login = await http.get("/relative/login")
            csrf = (await login.text()).split('name="csrf" value="')[1].split('"')[0]
            signed_in = await http.post(
                "/relative/login",
                data={"csrf": csrf, "email": "dotter@example.se", "password": PASSWORD},
                allow_redirects=False,
            )
            assert signed_in.status == 303
            status = await http.get(f"/relative/api/v1/residents/{r1}/status")
            assert status.status == 200, await status.text()
    finally:
        await runner.cleanup()
        await db.close()

    runtime = await asyncpg.connect(migrated.runtime_dsn, server_settings={"search_path": db_schema})
    try:
        assert await runtime.fetchval("SELECT count(*) FROM resident_access_log WHERE relative_id IS NOT NULL") == 1
        for statement in (
            "UPDATE resident_access_log SET resident_id = 'someone else'",
            "DELETE FROM resident_access_log WHERE relative_id IS NOT NULL",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await runtime.execute(statement)
        assert await runtime.fetchval("SELECT count(*) FROM resident_access_log") == 1
        # a stay that ended long ago, so that only the privilege stands between r2 and erasure
        await runtime.execute(
            "INSERT INTO resident_access_log (at, staff_id, role, site, resident_id, purpose)"
            " VALUES ($1, 1, 'staff', $2, $3, 'resident_list')",
            datetime.now(UTC) - timedelta(days=1000),
            site,
            f"{site}-r2",
        )
    finally:
        await runtime.close()

    refused = vaka("resident", "erase", f"{site}-r2", env=role_env(migrated, db_schema, owner=False))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "db.owner_dsn" in refused.stdout
    erased = vaka("resident", "erase", f"{site}-r2", env=role_env(migrated, db_schema))
    assert erased.returncode == 0, erased.stdout + erased.stderr


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE consents SET revoked_at = NULL, revoked_by = NULL",  # un-revoke: the reproduction
        "UPDATE consents SET valid_until = now() + interval '10 years'",
        "UPDATE consents SET relative_id = relative_id, scope = 'device_health' WHERE revoked_at IS NULL",
        "DELETE FROM consents",
        "UPDATE relative_invitations SET used_at = NULL",
        "UPDATE relative_invitations SET expires_at = now() + interval '1 year'",
        "DELETE FROM relative_invitations",
        "UPDATE resident_erasures SET erased_by = 'someone else'",
        "DELETE FROM resident_erasures",
        "UPDATE archive_exports SET rows_exported = '{}'::jsonb",
        "DELETE FROM archive_exports",
    ],
)
async def test_the_runtime_role_keeps_consents_invitations_erasures_and_exports(
    migrated: DbRoles, db_schema: str, unique: str, statement: str
) -> None:
    """The runtime role adds these records and makes their one-way changes (revoke, use a link); it rewrites nothing."""
    site, r1 = unique, f"{unique}-r1"
    now = datetime.now(UTC)
    runtime = await asyncpg.connect(migrated.runtime_dsn, server_settings={"search_path": db_schema})
    try:
        await load_inventory(runtime, Inventory(sites=sites_for(site)))
        for scope in (Scope.NIGHT_SUMMARY, Scope.ALARM_NOTICE):
            await grant(
                runtime, resident_id=r1, relative_email="dotter@example.se", scopes=[scope],
                given_by=GivenBy.RESIDENT, recorded_by="nils", text_version="2026-1", at=now,
            )  # fmt: skip
        await revoke(
            runtime, resident_id=r1, relative_email="dotter@example.se", scopes=[Scope.NIGHT_SUMMARY],
            recorded_by="nils", at=now,
        )  # fmt: skip
        token, _ = await invite(runtime, email="dotter@example.se", resident_id=r1, created_by="nils", at=now)
        await accept_invitation(runtime, token, PASSWORD, now)  # the one-way changes the hub makes still work
        await runtime.execute(
            "INSERT INTO resident_erasures (resident_hash, erased_at, erased_by, counts) VALUES ('h', now(), 'x', '{}')"
        )
        await runtime.execute(
            "INSERT INTO archive_exports (package_id, before, mets_sha256, rows_exported)"
            " VALUES ('p', '2026-12-01', 's', '{\"events\": 5}')"
        )
        before = await _records(runtime)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute(statement)
        assert await _records(runtime) == before
        assert await runtime.fetchval("SELECT count(*) FROM consents WHERE revoked_at IS NULL") == 1
    finally:
        await runtime.close()


async def _records(conn: asyncpg.Connection) -> list[object]:
    return [
        [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1")]
        for table in ("consents", "relative_invitations", "resident_erasures", "archive_exports")
    ]
