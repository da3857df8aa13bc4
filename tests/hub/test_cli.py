"""The `vaka` command as a user meets it: one clear line for a wrong setting, schemas, idempotent site loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.conftest import PG_DSN


def vaka(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_a_wrong_setting_stops_start_up_with_one_clear_line() -> None:
    result = vaka("migrate", env={"VAKA_MQTT__PORT": "70000"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("vaka: setting mqtt.port:")


def test_unknown_setting_is_refused() -> None:
    result = vaka("migrate", env={"VAKA_DB__DNS": "postgresql://x"})
    assert result.returncode == 2
    assert "db.dns" in result.stderr


def test_schema_event_is_a_json_schema_with_the_vocabulary() -> None:
    result = vaka("schema", "event")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    text = json.dumps(schema)
    for kind in ("fall_detected", "bed_exit", "camera_check_in", "robot_task", "medication_missed"):
        assert kind in text
    assert schema["$schema"].startswith("https://json-schema.org/")


INVENTORY = """
sites:
  - id: {site}
    name: Test unit
    residents:
      - {{id: r-0001, room: A12, unit: east}}
      - {{id: r-0002, room: A14, unit: east}}
    devices:
      - {{id: {site}-r1-bed, kind: bed_sensor, resident: r-0001, supervision_interval_s: 900}}
      - {{id: {site}-r1-radar, kind: fall_radar, resident: r-0001, supervision_interval_s: 300, safety: true}}
      - {{id: {site}-hall-door, kind: door_entrance}}
"""


async def test_site_load_is_idempotent_and_explains_mistakes(db_schema: str, unique: str, tmp_path: Path) -> None:
    env = {"VAKA_DB__DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": db_schema}
    good = tmp_path / "inventory.yaml"
    good.write_text(INVENTORY.format(site=f"s{unique}"))
    first = vaka("site", "load", str(good), env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    second = vaka("site", "load", str(good), env=env)
    assert second.returncode == 0
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": db_schema})
    try:
        assert await conn.fetchval("SELECT count(*) FROM residents") == 2
        assert await conn.fetchval("SELECT count(*) FROM devices") == 3
    finally:
        await conn.close()

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        INVENTORY.format(site=f"s{unique}").replace("supervision_interval_s: 300", "supervision_interval_s: 1")
    )
    result = vaka("site", "load", str(bad), env=env)
    assert result.returncode == 2
    assert "supervision_interval_s" in result.stdout
    assert str(bad) in result.stdout


async def test_a_nurse_marks_a_resident_away_and_a_device_in_maintenance(
    db_schema: str, unique: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from alarms.engine import Engine
    from alarms.rules import default_pack_path, load_rules
    from hub.devices.inventory import build_directory
    from hub.model import Event, EventKind
    from hub.store.inventory import fetch_sites

    site = f"s{unique}"
    env = {"VAKA_DB__DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": db_schema}
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY.format(site=site))
    assert vaka("site", "load", str(inventory), env=env).returncode == 0
    away = vaka("resident", "away", "r-0001", "on", env=env)
    assert away.returncode == 0, away.stdout + away.stderr
    assert "no care alarms" in away.stdout
    assert vaka("device", "maintenance", f"{site}-hall-door", "on", env=env).returncode == 0
    missing = vaka("resident", "away", "r-9999", "on", env=env)
    assert missing.returncode == 1
    assert "no resident 'r-9999'" in missing.stdout
    # a reload of the site file keeps what the nurse set
    assert vaka("site", "load", str(inventory), env=env).returncode == 0

    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": db_schema})
    try:
        (loaded,) = await fetch_sites(conn)
    finally:
        await conn.close()
    assert {r.id: r.away for r in loaded.residents} == {"r-0001": True, "r-0002": False}
    assert {d.id for d in loaded.devices if d.maintenance} == {f"{site}-hall-door"}

    # what the hub then builds for the rule engine: a fall from the away resident's radar raises nothing
    engine = Engine(load_rules([default_pack_path()]), build_directory([loaded]))
    now = datetime.now(UTC)
    fall = Event(ts=now, site=site, device_id=f"{site}-r1-radar", kind=EventKind.FALL_DETECTED, resident_id="r-0001")
    assert engine.feed(fall, now) == []


async def test_changes_at_the_command_line_are_audited_as_the_admin_pages_are(
    db_schema: str, unique: str, tmp_path: Path
) -> None:
    """Away, maintenance, a rule profile, an account and a duty sign-on changed with `vaka`: each is a row of the
    append-only admin_audit_log with the operator's login as the actor (no staff account), as the admin page's
    changes are; a command that changes nothing writes nothing."""
    import getpass

    site = f"s{unique}"
    env = {"VAKA_DB__DSN": PG_DSN, "VAKA_DB__DB_SCHEMA": db_schema}
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY.format(site=site))
    assert vaka("site", "load", str(inventory), env=env).returncode == 0
    nurse = f"nurse-{unique}"
    steps = [
        ("resident", "away", "r-0001", "on"),
        ("device", "maintenance", f"{site}-hall-door", "on"),
        ("resident", "profile", "r-0002", "wanders_at_night"),
        ("staff", "add", nurse, "--role", "nurse", "--unit", f"{site}/east", "--password-stdin"),
        ("staff", "duty", nurse, "on", "--hours", "8"),
        ("resident", "away", "r-9999", "on"),  # no such resident: refused, not audited
    ]
    for step in steps:
        result = vaka(*step, env=env, stdin="a long enough password\n")
        assert result.returncode == (1 if "r-9999" in step else 0), result.stdout + result.stderr

    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": db_schema})
    try:
        rows = await conn.fetch("SELECT staff_id, actor, action, target, detail FROM admin_audit_log ORDER BY seq")
        set_by = await conn.fetchval("SELECT set_by FROM resident_rule_profiles WHERE resident_id = 'r-0002'")
    finally:
        await conn.close()
    operator = f"cli:{getpass.getuser()}"
    assert [(r["staff_id"], r["actor"], r["action"], r["target"]) for r in rows] == [
        (None, operator, "resident_away", "r-0001"),
        (None, operator, "device_maintenance", f"{site}-hall-door"),
        (None, operator, "resident_profile", "r-0002"),
        (None, operator, "staff_add", nurse),
        (None, operator, "staff_duty", nurse),
    ]
    assert rows[2]["detail"] == "profile=wanders_at_night was=none"
    assert rows[3]["detail"] == "role=nurse units=1"
    assert rows[4]["detail"].startswith("on until ")
    assert set_by == operator
