"""The SCAIP receiver against a real SIP peer (Debian's sipp running tests/hub/scaip/scenarios/*.xml).

Each scenario checks what the unit sees (SIP status, SCAIP status number); the test checks what Vaka did: the
alarm raised or withdrawn on the desk, the events stored once, the refusals kept with their reasons.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from alarms.instant import ABORT_REASON
from hub.app import Hub
from hub.metrics import Metrics
from hub.model import Device, Inventory, Site
from hub.settings import Settings
from hub.store.inventory import load_inventory
from tests.conftest import PG_DSN
from tests.hub.desk_support import migrated_database

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP = shutil.which("sipp")
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (Debian package sip-tester) is not installed")


def sipp(
    scenario: str, port: int, transport: str, workdir: Path, calls: int = 1, **keys: str
) -> subprocess.CompletedProcess[str]:
    """Run `calls` calls of a scenario against the receiver (all at once); exit code 0 means every check passed."""
    assert SIPP is not None
    cmd = [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-m", str(calls), "-i", "127.0.0.1"]
    cmd += ["-r", str(max(calls, 1)), "-l", str(calls)]
    cmd += ["-t", "u1" if transport == "udp" else "t1", "-nostdin", "-timeout", "20s", "-timeout_error"]
    cmd += ["-recv_timeout", "8000", "-trace_err", "-error_file", str(workdir / f"{scenario}.errors.log")]
    cmd += ["-trace_msg", "-message_file", str(workdir / f"{scenario}.messages.log")]
    # sipp answers a response it already had by resending its last request; our identical answer to that would
    # start a ping-pong: without sipp's own retransmissions the scenario sends the retransmission itself, once
    cmd += ["-nr"] if scenario == "retransmission.xml" else []
    for name, value in keys.items():
        cmd += ["-key", name, value]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


async def run_sipp(scenario: str, hub: Hub, transport: str, workdir: Path, calls: int = 1, **keys: str) -> None:
    assert hub.scaip is not None
    port = hub.scaip.udp_port if transport == "udp" else hub.scaip.tcp_port
    done = await asyncio.to_thread(sipp, scenario, port, transport, workdir, calls, **keys)
    errors = workdir / f"{scenario}.errors.log"
    detail = errors.read_text(errors="replace")[-2000:] if errors.exists() else done.stdout[-2000:]
    assert done.returncode == 0, f"sipp {scenario} over {transport} failed:\n{detail}"


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def scaip_inventory(unique: str) -> Inventory:
    """The receiving site with two SCAIP units (u…, v…) and an MQTT-native radar (n…); another site's SCAIP unit."""
    return Inventory(
        sites=[
            Site(
                id=f"s{unique}",
                devices=[
                    Device(id=f"u{unique}", kind="alarm_button", vendor="scaip"),
                    Device(id=f"v{unique}", kind="alarm_button", vendor="scaip"),
                    Device(id=f"n{unique}", kind="fall_radar"),
                ],
            ),
            Site(id=f"t{unique}", devices=[Device(id=f"o{unique}", kind="alarm_button", vendor="scaip")]),
        ]
    )


def scaip_settings(settings: Settings, unique: str, **update: object) -> Settings:
    scaip = settings.scaip.model_copy(
        update={"enabled": True, "port": 0, "site": f"s{unique}", "senders": {"127.0.0.1/32": ["*"]}, **update}
    )
    return settings.model_copy(update={"scaip": scaip})


@pytest.fixture
async def inventory(settings: Settings, metrics: Metrics, unique: str) -> None:
    async with migrated_database(settings, metrics) as db, db.acquire() as conn:
        await load_inventory(conn, scaip_inventory(unique))


@pytest.fixture
async def hub(settings: Settings, unique: str, inventory: None) -> AsyncIterator[Hub]:
    async with Hub(scaip_settings(settings, unique)) as running:
        await running.wait_connected()
        yield running


async def fetch(schema: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": schema})
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def open_alarm_of(hub: Hub, device_id: str) -> list[str]:
    return [a.rule_id for a in hub.desk.machine.open_alarms() if a.device_id == device_id]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_an_alarm_is_acknowledged_once_durable_an_abort_leaves_it_with_staff_and_a_check_out_closes_it(
    hub: Hub, settings: Settings, unique: str, transport: str, tmp_path: Path
) -> None:
    cid, ref = f"u{unique}", f"r{unique}"
    await run_sipp("alarm.xml", hub, transport, tmp_path, cid=cid, ref=ref)
    # snu 0 was sent only after the event was durable: it is in the database when sipp has its answer
    rows = await fetch(settings.db.db_schema, "SELECT kind, site, ref FROM events WHERE device_id = $1", cid)
    assert [(r["kind"], r["site"], r["ref"]) for r in rows] == [("alarm_button", f"s{unique}", ref)]
    assert await wait_until(lambda: open_alarm_of(hub, cid) == ["alarm_button"])
    [alarm] = [a for a in hub.desk.machine.open_alarms() if a.device_id == cid]

    await run_sipp("reset.xml", hub, transport, tmp_path, cid=cid, ref=ref)
    # RE: the unit gave up on Vaka for this alarm (SS 91100:2014 4.4); nobody ended it, so it stays with staff
    assert await wait_until(lambda: alarm.condition_ended_at is not None)
    assert (alarm.condition_note, alarm.state.value) == (ABORT_REASON, "raised")

    # the resident presses again (a new session), and the carer checks out at the unit when done: closed by a person
    await run_sipp("alarm.xml", hub, transport, tmp_path, cid=cid, ref=f"{ref}b")
    assert await wait_until(lambda: alarm.incidents == 2)
    await run_sipp("check_out.xml", hub, transport, tmp_path, cid=cid, ref=f"{ref}b")
    assert await wait_until(lambda: not alarm.is_open)
    assert (alarm.condition_note, alarm.state.value) == ("reset at the alarm unit", "cancelled")
    kinds = await fetch(settings.db.db_schema, "SELECT kind FROM events WHERE device_id = $1 ORDER BY ts", cid)
    assert [r["kind"] for r in kinds] == ["alarm_button", "alarm_aborted", "alarm_button", "alarm_reset"]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_retransmissions_are_answered_alike_and_raise_one_alarm(
    hub: Hub, settings: Settings, unique: str, transport: str, tmp_path: Path
) -> None:
    cid, ref = f"u{unique}", f"r{unique}"
    await run_sipp("retransmission.xml", hub, transport, tmp_path, cid=cid, ref=ref)
    rows = await fetch(settings.db.db_schema, "SELECT kind FROM events WHERE device_id = $1", cid)
    assert [r["kind"] for r in rows] == ["alarm_button"], "stored once"
    assert await wait_until(lambda: open_alarm_of(hub, cid) == ["alarm_button"])
    # sipp's trace holds every response: the retransmission's answer is byte for byte the first one
    trace = (tmp_path / "retransmission.xml.messages.log").read_text(errors="replace")
    answers = re.findall(r"SIP/2\.0 200 OK.*?</mrs>", trace, flags=re.DOTALL)
    cseq1 = [a for a in answers if "CSeq: 1 MESSAGE" in a]
    assert len(cseq1) >= 2
    assert len(set(cseq1)) == 1
    assert len([a for a in answers if "CSeq: 2 MESSAGE" in a]) >= 1
    assert hub.metrics.scaip_requests.labels("retransmission")._value.get() >= 1


async def test_heartbeats_are_device_events_and_the_answer_asks_the_interval(
    hub: Hub, settings: Settings, unique: str, tmp_path: Path
) -> None:
    cid = f"u{unique}"
    await run_sipp("heartbeat.xml", hub, "udp", tmp_path, cid=cid, ref=f"p{unique}")
    rows = await fetch(settings.db.db_schema, "SELECT kind, attrs->>'hbo' AS hbo FROM events WHERE device_id = $1", cid)
    assert [(r["kind"], r["hbo"]) for r in rows] == [("heartbeat", "001")]
    assert open_alarm_of(hub, cid) == []


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_malformed_requests_get_the_status_that_says_why_and_are_kept(
    hub: Hub, settings: Settings, unique: str, transport: str, tmp_path: Path
) -> None:
    await run_sipp("malformed.xml", hub, transport, tmp_path, cid=f"u{unique}", ref=f"r{unique}")
    # only the receiver's own: the shared broker may replay other retained messages to the hub (a demo's)
    rows = await fetch(
        settings.db.db_schema, "SELECT reason FROM rejected_messages WHERE topic LIKE 'scaip/%' ORDER BY id"
    )
    reasons = [r["reason"].split(":")[0] for r in rows]
    assert reasons == [
        "format_error",
        "mandatory_missing",
        "content_error",
        "content_error",
        "format_error",
        "unsupported_media_type",
    ]
    assert hub.desk.machine.open_alarms() == []


@pytest.mark.parametrize("who", ["native", "other-site", "reserved", "made-up"])
async def test_only_the_sites_scaip_units_are_heard(
    hub: Hub, settings: Settings, unique: str, who: str, tmp_path: Path
) -> None:
    """A cid that is an MQTT-native device, another site's unit, the reserved `hub` or a made-up id raises nothing:
    status 3, kept as `unknown_device`, no event stored, no alarm."""
    cid = {"native": f"n{unique}", "other-site": f"o{unique}", "reserved": "hub", "made-up": f"x{unique}"}[who]
    await run_sipp("refused.xml", hub, "udp", tmp_path, cid=cid, ref=f"r{unique}")
    assert await fetch(settings.db.db_schema, "SELECT 1 FROM events WHERE ref = $1", f"r{unique}") == []
    rows = await fetch(settings.db.db_schema, "SELECT reason FROM rejected_messages WHERE topic LIKE 'scaip/%'")
    assert [r["reason"].split(":")[0] for r in rows] == ["unknown_device"]
    assert hub.desk.machine.open_alarms() == []


async def test_a_reset_for_another_units_alarm_does_not_end_it(
    hub: Hub, settings: Settings, unique: str, tmp_path: Path
) -> None:
    """Unit v sends RE under unit u's ref: refused unless it is u's own; u's alarm stays as it is."""
    cid, ref = f"u{unique}", f"r{unique}"
    await run_sipp("alarm.xml", hub, "udp", tmp_path, cid=cid, ref=ref)
    assert await wait_until(lambda: open_alarm_of(hub, cid) == ["alarm_button"])
    [alarm] = [a for a in hub.desk.machine.open_alarms() if a.device_id == cid]
    await run_sipp("reset.xml", hub, "udp", tmp_path, cid=f"v{unique}", ref=ref)
    await run_sipp("refused.xml", hub, "udp", tmp_path, cid=f"n{unique}", ref=ref)
    await run_sipp("heartbeat.xml", hub, "udp", tmp_path, cid=cid, ref=f"p{unique}")  # a marker: all before it handled
    assert alarm.condition_ended_at is None


async def test_a_source_not_on_the_list_is_refused(
    settings: Settings, unique: str, inventory: None, tmp_path: Path
) -> None:
    async with Hub(scaip_settings(settings, unique, senders={"192.0.2.10/32": ["*"]})) as running:
        await running.wait_connected()
        await run_sipp("forbidden.xml", running, "udp", tmp_path, cid=f"u{unique}", ref=f"r{unique}")
        await run_sipp("forbidden.xml", running, "tcp", tmp_path, cid=f"u{unique}", ref=f"r{unique}")
        assert await fetch(settings.db.db_schema, "SELECT 1 FROM events WHERE device_id = $1", f"u{unique}") == []
        assert running.desk.machine.open_alarms() == []


async def test_a_flood_from_one_source_is_held_to_its_allowance(
    settings: Settings, unique: str, inventory: None, tmp_path: Path
) -> None:
    """100 alarms at once from one source: the first `burst_per_source` are taken, the rest get 503 (sent again
    later by a real unit), and the store holds only what was taken."""
    update = {"burst_per_source": 5, "rate_per_source_s": 0.1}
    async with Hub(scaip_settings(settings, unique, **update)) as running:
        await running.wait_connected()
        await run_sipp("flood.xml", running, "udp", tmp_path, calls=100, cid=f"u{unique}", ref=f"r{unique}")
        rows = await fetch(settings.db.db_schema, "SELECT ref FROM events WHERE device_id = $1", f"u{unique}")
        assert 5 <= len(rows) <= 6
        assert running.metrics.scaip_requests.labels("rate_limited")._value.get() >= 94


async def test_a_resend_after_a_restart_is_stored_once_and_rings_no_second_time(
    settings: Settings, unique: str, inventory: None, tmp_path: Path
) -> None:
    cid, ref = f"u{unique}", f"r{unique}"
    async with Hub(scaip_settings(settings, unique)) as first:
        await first.wait_connected()
        await run_sipp("alarm.xml", first, "udp", tmp_path, cid=cid, ref=ref)
        assert await wait_until(lambda: open_alarm_of(first, cid) == ["alarm_button"])
    async with Hub(scaip_settings(settings, unique)) as second:
        await second.wait_connected()
        await run_sipp("alarm.xml", second, "udp", tmp_path, cid=cid, ref=ref)  # a new transaction, the same alarm
        rows = await fetch(settings.db.db_schema, "SELECT ts FROM events WHERE device_id = $1", cid)
        assert len(rows) == 1, "stored once"
        assert await wait_until(lambda: open_alarm_of(second, cid) == ["alarm_button"])
        [alarm] = [a for a in second.desk.machine.open_alarms() if a.device_id == cid]
        assert alarm.count == 1, "rang no second time"
