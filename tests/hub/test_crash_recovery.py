"""Crash anywhere: a hub SIGKILLed at random points of a scripted night ends with the alarms of one that was not.

Two `vaka serve` processes watch the same night on one private broker, each its own site and schema: the reference
runs undisturbed, the victim is SIGKILLed at random moments and started again at once (the broker queues for it
meanwhile). Afterwards the alarms each raised, and how each ended (cancelled at the device, cleared, still open),
must be identical. On main the victim lost every event acknowledged after its last engine snapshot: presses whose
cancel was ignored, bathroom visits that never alarmed.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.metrics import Metrics
from hub.model import Device, Inventory, Resident, Site
from hub.runtime.tasks import Spawner
from hub.settings import DbSettings
from hub.store.db import Database
from hub.store.inventory import load_inventory
from hub.store.migrate import migrate
from tests.hub.test_durability import HubProcess
from tests.services import PrivateMosquitto, PrivatePostgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

RESIDENTS = 6
BATHROOM_S = 8
PACK = f"""
version: 1
rules:
  - id: fall
    type: instant
    category: care
    severity: critical
    match: {{kinds: [fall_detected, fall_confirmed]}}
    cancel: {{kinds: [fall_cancelled]}}
    reason: fall detected
    cancel_reason: the fall radar withdrew the fall
  - id: alarm_button
    type: instant
    category: care
    severity: critical
    match: {{kinds: [alarm_button]}}
    cancel: {{kinds: [alarm_button_cancel]}}
    reason: alarm button pressed
    cancel_reason: cancelled at the alarm button
  - id: long_bathroom_visit
    type: sequence
    category: care
    severity: high
    first: {{kinds: [presence], device_kinds: [presence_bathroom], value: {{eq: 1}}}}
    then: {{kinds: [presence], device_kinds: [presence_bathroom], value: {{eq: 0}}}}
    within: {BATHROOM_S}s
    reason: in the bathroom too long
    clear_reason: left the bathroom
"""


def inventory(site: str) -> Inventory:
    residents = [Resident(id=f"{site}-r{i}", room=f"{100 + i}") for i in range(RESIDENTS)]
    devices = []
    for i in range(RESIDENTS):
        devices += [
            Device(id=f"{site}-button{i}", kind="alarm_button", resident=f"{site}-r{i}", safety=True),
            Device(id=f"{site}-radar{i}", kind="fall_radar", resident=f"{site}-r{i}", safety=True),
            Device(id=f"{site}-bath{i}", kind="presence_bathroom", resident=f"{site}-r{i}"),
        ]
    return Inventory(sites=[Site(id=site, residents=residents, devices=devices)])


@dataclass(frozen=True)
class Step:
    at_s: float
    device: str
    kind: str
    value: float | None = None
    ref: str | None = None


def night(seed: int, length_s: float) -> list[Step]:
    """A night of presses and cancels, falls and withdrawals, short and long bathroom visits; no near-ties."""
    rng = random.Random(seed)
    steps: list[Step] = []
    for i in range(RESIDENTS):
        t = rng.uniform(0.5, 4.0)
        n = 0
        while t < length_s - BATHROOM_S - 6:
            what = rng.choice(["press", "press_kept", "fall", "fall_kept", "bath_short", "bath_long"])
            n += 1
            if what.startswith("press"):
                steps.append(Step(t, f"button{i}", "alarm_button"))
                if what == "press":
                    steps.append(Step(t + 2.0, f"button{i}", "alarm_button_cancel"))
            elif what.startswith("fall"):
                ref = f"f{i}-{n}"
                steps.append(Step(t, f"radar{i}", "fall_detected", ref=ref))
                steps.append(Step(t + 1.0, f"radar{i}", "fall_confirmed", ref=ref))
                if what == "fall":
                    steps.append(Step(t + 2.5, f"radar{i}", "fall_cancelled", ref=ref))
            else:
                stay = 3.0 if what == "bath_short" else BATHROOM_S + 4.0
                steps.append(Step(t, f"bath{i}", "presence", 1))
                steps.append(Step(t + stay, f"bath{i}", "presence", 0))
                t += stay
            t += rng.uniform(4.0, 7.0)
    return sorted(steps, key=lambda s: s.at_s)


def play(broker: PrivateMosquitto, sites: list[str], steps: list[Step]) -> None:
    """Publish the night in real time to every site (QoS 1, waiting for the broker's acks)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        t0 = time.monotonic()
        for seq, step in enumerate(steps, start=1):
            delay = step.at_s - (time.monotonic() - t0)
            if delay > 0:
                time.sleep(delay)
            ts = datetime.now(UTC).isoformat()
            body: dict[str, object] = {"ts": ts, "kind": step.kind, "seq": seq}
            if step.value is not None:
                body["value"] = step.value
            if step.ref is not None:
                body["ref"] = step.ref
            infos = [
                client.publish(f"vaka/v1/{site}/{site}-{step.device}/event", json.dumps(body).encode(), qos=1)
                for site in sites
            ]
            for info in infos:
                info.wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


async def prepare(dsn: str, schema: str, site: str) -> None:
    settings = DbSettings(dsn=dsn, db_schema=schema)  # type: ignore[arg-type]
    metrics = Metrics()
    async with Spawner(metrics) as spawner:
        db = Database(settings, metrics, spawner=spawner)
        await db.open()
        try:
            async with db.acquire() as conn:
                await migrate(conn, settings)
                await load_inventory(conn, inventory(site))
        finally:
            await db.close()


async def timeline(dsn: str, schema: str, site: str) -> list[str]:
    """Every alarm's log of a site, for the failure message."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch(
            "SELECT l.at, a.key, l.actor, l.action FROM desk_alarm_log l JOIN desk_alarms a ON a.id = l.alarm_id"
            " WHERE a.site = $1 AND l.action NOT IN ('escalated') ORDER BY l.at",
            site,
        )
    finally:
        await conn.close()
    return [f"{r['at']:%H:%M:%S.%f} {r['key'].replace(site + '-', '')} {r['actor']}:{r['action']}" for r in rows]


async def outcomes(dsn: str, schema: str, site: str) -> list[tuple[str, str, str, str]]:
    """Per alarm of the night's rules: (rule, resident, state, what the rules and devices did to it in order),
    sorted (ids and times differ by run; the desk's own escalation steps depend on timing, not on the night)."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch(
            """
            SELECT a.rule_id, coalesce(a.resident_id, a.device_id, a.key) AS subject, a.state,
                   coalesce((SELECT string_agg(l.actor || ':' || l.action, ' ' ORDER BY l.seq) FROM desk_alarm_log l
                             WHERE l.alarm_id = a.id AND l.actor IN ('rule', 'device') AND l.action <> 'updated'),
                            '') AS story
            FROM desk_alarms a WHERE a.site = $1 AND a.rule_id IN ('fall', 'alarm_button', 'long_bathroom_visit')
            """,
            site,
        )
    finally:
        await conn.close()
    return sorted((r["rule_id"], r["subject"].removeprefix(f"{site}-"), r["state"], r["story"]) for r in rows)


def hub_for(pg: PrivatePostgres, broker: PrivateMosquitto, tmp: Path, site: str, pack: Path) -> HubProcess:
    tmp.mkdir()
    hub = HubProcess(pg, broker, tmp, site)
    hub.env.update(
        {
            "VAKA_DB__DB_SCHEMA": site,
            "VAKA_RULES__PACKS": json.dumps([str(pack)]),
            "VAKA_MQTT__TELEMETRY_CONNECTION": "false",
        }
    )
    return hub


@pytest.mark.parametrize("seed", [1, 2])
def test_a_hub_killed_anywhere_in_the_night_ends_with_the_same_alarms(tmp_path: Path, unique: str, seed: int) -> None:
    ref_site, victim_site = f"ref{unique}", f"vic{unique}"
    pack = tmp_path / "pack.yaml"
    pack.write_text(PACK)
    length_s = 45.0
    steps = night(seed, length_s)
    rng = random.Random(seed * 7919)
    kills = sorted(rng.uniform(3.0, length_s - 5.0) for _ in range(3))
    with PrivatePostgres() as pg, PrivateMosquitto() as broker:
        for site in (ref_site, victim_site):
            asyncio.run(prepare(pg.dsn, site, site))
        reference = hub_for(pg, broker, tmp_path / "ref", ref_site, pack)
        victim = hub_for(pg, broker, tmp_path / "victim", victim_site, pack)
        try:
            reference.start()
            victim.start()
            player = threading.Thread(target=play, args=(broker, [ref_site, victim_site], steps))
            t0 = time.monotonic()
            player.start()
            for kill_at in kills:
                time.sleep(max(0.0, kill_at - (time.monotonic() - t0)))
                victim.kill()
                with (tmp_path / "victim" / "hub.log").open("a") as log:
                    log.write(f"{datetime.now(UTC).isoformat()} TEST killed the hub\n")
                victim.start()
            player.join()
            time.sleep(BATHROOM_S + 4)  # the last visits' timers, the victim's backlog
            reference.stop()
            victim.stop()  # a clean stop flushes the desk's writes
            expected = asyncio.run(outcomes(pg.dsn, ref_site, ref_site))
            got = asyncio.run(outcomes(pg.dsn, victim_site, victim_site))
            if got != expected:
                (tmp_path / "timelines.txt").write_text(
                    "\n".join(
                        [
                            "# reference",
                            *asyncio.run(timeline(pg.dsn, ref_site, ref_site)),
                            "# victim",
                            *asyncio.run(timeline(pg.dsn, victim_site, victim_site)),
                        ]
                    )
                )
        finally:
            reference.stop()
            victim.stop()
    assert sum(len(story.split()) for *_, story in expected) >= RESIDENTS * 4, "too quiet a night to prove anything"
    missing = Counter(expected) - Counter(got)
    extra = Counter(got) - Counter(expected)
    killed = [round(k, 1) for k in kills]
    assert got == expected, (
        f"killed at {killed} s; missing {sorted(missing.elements())}; extra {sorted(extra.elements())}"
    )
