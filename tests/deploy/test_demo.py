"""Issue 28, findings 1 and 5: `make run` as a new user runs it, twice: each run starts a fresh demo and says so, loads
the fictional resident directory, states the wall time, keeps the hub up after the simulated night until Ctrl-C, and
stops it cleanly (no traceback in var/hub.log). Runs the real Makefile in a scratch directory with its own database,
site, ports and client ids, so it never touches a developer's demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import MQTT_PORT

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_demo(workdir: Path, unique: str, port: int) -> subprocess.Popen[str]:
    args = [
        "make", "-s", "-f", str(ROOT / "Makefile"), "-o", str(ROOT / ".venv" / "bin" / "vaka"), "run",
        f"VENV={ROOT / '.venv'}", "NIGHTS=1", "SPEED=3000",
        f"DEMO_DB=vaka_demo_{unique}", f"SITE=demo{unique}", f"HTTP_PORT={port}", f"MQTT_PORT={MQTT_PORT}",
        f"MQTT_CLIENT_ID=vaka-hub-{unique}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAKA_")}
    env["VAKA_MQTT__HUB_STATUS"] = "false"  # no retained status of this test's site left on the shared broker
    return subprocess.Popen(
        args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def read_until(proc: subprocess.Popen[str], text: str, within_s: float) -> str:
    """The demo's output up to the line that contains `text`."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    pytest.fail(f"no {text!r} within {within_s} s:\n" + "".join(seen[-40:]))


def alarms_of(unique: str) -> list[tuple[str, int]] | None:
    """The demo database's alarms (rule, incidents), None when the database is gone."""
    done = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", f"vaka_demo_{unique}", "-tAF", ",", "-c",
         "SELECT rule_id, incidents FROM desk_alarms ORDER BY raised_at, rule_id"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if done.returncode != 0:
        assert "does not exist" in done.stderr, done.stderr
        return None
    return [(rule, int(n)) for rule, n in (line.split(",") for line in done.stdout.split())]


def database_oid(unique: str) -> str:
    done = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc",
         f"SELECT oid FROM pg_database WHERE datname = 'vaka_demo_{unique}'"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.stdout.strip()


def run_once(workdir: Path, unique: str) -> tuple[str, list[tuple[str, int]], str]:
    port = free_port()
    proc = start_demo(workdir, unique, port)
    try:
        said = read_until(proc, "until you press Ctrl-C.", 240)
        said += read_until(proc, "The simulated nights are over", 120)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.status == 200  # the hub stays up after the night
        await_s = time.monotonic() + 10  # the last changes are persisted in the background
        alarms = alarms_of(unique)
        while not alarms and time.monotonic() < await_s:
            alarms = alarms_of(unique)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        assert proc.stdout is not None
        said += proc.stdout.read()
        assert proc.wait(timeout=30) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    return said, alarms or [], (workdir / "var" / "hub.log").read_text()


def test_make_run_twice_gives_two_fresh_demos_that_say_what_they_do(tmp_path: Path, unique: str) -> None:
    for name in ("deploy", "pyproject.toml", "requirements"):  # what the Makefile reads relative to where it runs
        (tmp_path / name).symlink_to(ROOT / name)
    first, alarms, log = run_once(tmp_path, unique)
    assert "A fresh demo: a new database" in first
    assert "resident directory: 12 entries imported" in first
    assert "about 17 s of wall time" in first  # 14.5 simulated hours at 3000x
    assert "then the hub stays up" in first
    assert "The demo hub stopped." in first
    assert "is taken" not in first
    assert "Traceback" not in log
    assert alarms, "the simulated night raised no alarm"
    first_db = database_oid(unique)
    second, again, log = run_once(tmp_path, unique)
    assert "A fresh demo" in second
    assert database_oid(unique) != first_db  # a new database, not the first run's
    # the same night again, not the first night's alarms with the second's folded in ("3rd time since 01:43")
    assert again
    assert max(n for _, n in again) <= max(n for _, n in alarms)
    assert len(again) < 2 * len(alarms) or len(alarms) < 3
    assert "Traceback" not in log
    proc = subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "demo-clean", f"DEMO_DB=vaka_demo_{unique}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("VAKA_")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "var").exists()
    assert alarms_of(unique) is None
