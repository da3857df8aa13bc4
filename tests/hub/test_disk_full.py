"""A full disk is a state, not a crash (issue 22.2).

`vaka serve` as a process with its spool on a 3 MiB tmpfs, the database stopped, telemetry at 500 msg/s: the spool
fills in seconds. On the old main the engine snapshot's write then failed with ENOSPC and the process exited; presses
raised nothing until a person restarted it, and a restart on the full disk failed the same way. Now: the spool stops
taking telemetry at the disk reserve (left unacknowledged in the broker), local state writes fail soft (counted,
`hub_disk_failure` raised), a press still raises its alarm at once, the hub starts on a full disk, and after the
outage every message the broker acknowledged is stored once.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.hub.test_crash_recovery import prepare
from tests.hub.test_durability import HubProcess, Ledger, assert_ledger_stored_once
from tests.mqtt_probe import Probe
from tests.services import PrivateMosquitto, PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

DISK = "3m"
RESERVE_BYTES = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs for the spool (the test runs as root, as CI does; otherwise it cannot mount one)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def metric(hub: HubProcess, name: str) -> float:
    """The sum of a metric's samples on the hub's /metrics (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{hub.http_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def press_and_wait_for_alarm(broker: PrivateMosquitto, site: str, seq: int) -> float:
    """Press the alarm button; the seconds until the hub publishes the alarm's state on MQTT."""
    watcher = Probe(broker.port, client_id=f"watch-{site}-{seq}")
    watcher.connect()
    watcher.subscribe(f"vaka/v1/{site}/alarms/#")
    try:
        while not watcher.messages.empty():  # retained states of earlier alarms
            watcher.messages.get_nowait()
        button = Probe(broker.port, client_id=f"button-{site}-{seq}")
        button.connect()
        body = {"ts": datetime.now(UTC).isoformat(), "kind": "alarm_button", "seq": seq}
        started = time.monotonic()
        button.publish(f"vaka/v1/{site}/{site}-button0/event", json.dumps(body).encode())
        button.close()
        deadline = started + 10
        while time.monotonic() < deadline:
            msg = watcher.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            state = json.loads(msg.payload)
            if state.get("rule_id") == "alarm_button" and state.get("state") == "raised":
                return time.monotonic() - started
        raise AssertionError("the press raised no alarm within 10 s")
    finally:
        watcher.close()


def test_a_full_spool_disk_stops_nothing_and_loses_nothing(small_disk: Path, tmp_path: Path, unique: str) -> None:
    site = f"s{unique}"
    with PrivatePostgres() as pg, PrivateMosquitto() as broker:
        asyncio.run(prepare(pg.dsn, site, site))
        hub = HubProcess(pg, broker, tmp_path, site)
        hub.env["VAKA_DB__DB_SCHEMA"] = site
        hub.env["VAKA_SPOOL__DIRECTORY"] = str(small_disk / "spool")
        hub.env["VAKA_SPOOL__DISK_RESERVE_BYTES"] = str(RESERVE_BYTES)
        hub.start()
        hub.wait_status("ready")
        ledger = Ledger(broker, site, channel="telemetry")
        try:
            pg.stop()
            hub.wait_status("degraded")
            # 500 telemetry messages a second until the spool's disk is down to the reserve
            sent = 0
            deadline = time.monotonic() + 120
            while metric(hub, "vaka_events_deferred_total") == 0:
                assert time.monotonic() < deadline, "the spool never filled"
                ledger.publish(sent, sent + 500, 500.0)
                sent += 500
            assert hub.running, f"the hub stopped on a full disk: {hub.log[-2000:]}"
            assert press_and_wait_for_alarm(broker, site, seq=10**6) < 2.0

            # the disk filled to the last byte, and the hub restarted on it
            filler = small_disk / "filler"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
            assert os.statvfs(small_disk).f_bavail == 0
            hub.stop()
            hub.start()
            hub.wait_status("degraded")
            assert press_and_wait_for_alarm(broker, site, seq=10**6 + 1) < 2.0
            ledger.publish(sent, sent + 2000, 500.0)
            sent += 2000
            assert hub.running, f"the hub stopped on a full disk: {hub.log[-2000:]}"
            assert metric(hub, "vaka_local_write_failures_total") > 0, "the refused writes were not counted"

            filler.unlink()
            pg.start()
            ledger.settle()
            assert len(ledger.acked) == sent  # the broker took every message while the hub's disk was full
            assert_ledger_stored_once(pg, ledger, timeout_s=180, schema=site)
            assert "Traceback" not in hub.log, hub.log[-3000:]
        finally:
            ledger.close()
            hub.stop()
