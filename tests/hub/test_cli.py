"""The `vaka` command as a user meets it: one clear line for a wrong setting, schemas, idempotent site loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.conftest import PG_DSN


def vaka(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
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
