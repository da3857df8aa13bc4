"""End-to-end benchmark: broker ceiling, durable ingest, alarm latency under load, and recall against ground truth.

Prints exactly one JSON object on stdout; progress goes to stderr. All figures come from one run on this machine:
a private Mosquitto (deploy/mosquitto/mosquitto.conf's queue settings, so nothing is dropped) on a free port, the local
PostgreSQL (`VAKA_BENCH_DSN`, default the `test` database) in throwaway schemas dropped at the end, and the hub as
its own process (`python -m hub.cli serve`), as in production. docs/performance.md explains the method.

1. `raw_receive_per_s`: simulated traffic (ordinary days) queued in the broker for a bare paho 2.x subscriber
   (MQTT 5, QoS 1, auto-ack, no processing, the hub's Receive Maximum), then drained; rate between 5 % and 95 %.
2. `sustained_events_per_s`: the same traffic queued for the hub's persistent session (the hub is paused with
   SIGSTOP while it is published), then drained with acks only after commit; rate of events durable in PostgreSQL
   between 5 % and 95 %. `ratio` = 2 / 1. Neither figure is limited by the publisher's speed.
3. `alarm_latency_ms`: background traffic at 50 % and 90 % of (2) from two publisher processes, alarm-button
   probes from residents not yet alarmed at known wall times; publish → the alarm's `raised` message on
   `vaka/v1/{site}/alarms/#`. `load_alarms_unexpected`: anything else raised for the load (should be nothing).
4. `recall` / `false_alarms_per_resident_night`: a second hub in simulated-clock mode follows an accelerated
   simulated run; each ground-truth incident with an expected rule must have that alarm raised (for the same
   resident, or the same device for technical rules) by its `must_raise_by`, in simulated time.

    .venv/bin/python bench/e2e.py            # full run, about 3 minutes
    .venv/bin/python bench/e2e.py --quick    # about 45 s, smaller everything
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.checkin_score import score_checkins  # noqa: E402
from bench.e2e_score import collect_alarms, score  # noqa: E402
from bench.e2e_services import (  # noqa: E402
    HubProcess,
    Receiver,
    background_worker,
    drop_schema,
    fetch_checkins,
    load_checkin_plans,
    load_config,
    load_messages,
    prepare_schema,
    publish_all,
)
from hub.checkins.plan import PlanFile  # noqa: E402
from hub.model import Inventory  # noqa: E402
from hub.simulation import IncidentRates, Publisher, SimConfig, Simulation  # noqa: E402
from hub.simulation import run as run_simulation  # noqa: E402
from tests.services import PrivateMosquitto as Broker  # noqa: E402

PROBE_SEQ_BASE = 1_000_000_000
BACKGROUND_WORKERS = 2  # one Python publisher tops out near 7k msg/s here, below 90 % of the hub's rate


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run does."""

    backlog: int  # messages queued for the ceiling and for the hub
    load_residents: int  # residents whose traffic is the load (and whose alarm buttons are the probes)
    level_s: float  # seconds of background load per latency level
    probe_interval_s: float
    residents: int  # recall run
    nights: int
    hours: float | None
    speed: float
    seed: int
    incident_scale: float
    checkin_share: float = 0.0  # residents of the recall run with a night check-in plan (scored when > 0)
    camera_failure_rate: float = 0.1


FULL = Plan(60_000, 5000, 12.0, 0.1, 40, 1, None, 1200.0, 1, 1.0)
QUICK = Plan(10_000, 2000, 3.0, 0.05, 20, 1, 6.0, 1800.0, 1, 3.0)


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[bench/e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- traffic -------------------------------------------------------------------------------------------------------


def load_inventory(sim: Simulation) -> Inventory:
    """The load site's inventory with a day's supervision interval on every device.

    To make ten thousand messages a second from a few thousand residents, the load's simulated time runs about a
    hundred times faster than the wall clock; a lag of a few seconds between the hub's two connections (heartbeats
    come on the telemetry one) then looks like minutes of silence. Every other rule sees the load as it is.
    """
    inventory = sim.inventory()
    sites = [
        site.model_copy(
            update={"devices": [d.model_copy(update={"supervision_interval_s": 86400}) for d in site.devices]}
        )
        for site in inventory.sites
    ]
    return inventory.model_copy(update={"sites": sites})


def next_evening(zone_now: datetime) -> datetime:
    """The first 20:00 local at least an hour ahead: a simulated clock must start later than the wall clock."""
    start = datetime.combine(zone_now.date(), dtime(20, 0), tzinfo=zone_now.tzinfo)
    return start if start - zone_now >= timedelta(hours=1) else start + timedelta(days=1)


def percentiles_ms(values_s: list[float]) -> dict[str, float | None]:
    """p50, p99 and max in milliseconds."""
    if not values_s:
        return {"p50": None, "p99": None, "max": None}
    arr = np.array(values_s) * 1000
    return {
        "p50": round(float(np.percentile(arr, 50)), 2),
        "p99": round(float(np.percentile(arr, 99)), 2),
        "max": round(float(arr.max()), 2),
    }


def rate_between(samples: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Events per second between the moments the count passed `lo` and `hi` (interpolated samples)."""

    def when(level: float) -> float:
        for (t0, c0), (t1, c1) in itertools.pairwise(samples):
            if c0 < level <= c1:
                return t0 + (t1 - t0) * (level - c0) / (c1 - c0)
        msg = f"count never reached {level}"
        raise RuntimeError(msg)

    return (hi - lo) / (when(hi) - when(lo))


# --- phases --------------------------------------------------------------------------------------------------------


async def measure_raw(broker: Broker, token: str, site: str, backlog: list[tuple[str, bytes]]) -> float:
    """The ceiling: a bare subscriber drains the backlog the broker queued for its session."""
    n = len(backlog)
    lo, hi = max(1, n * 5 // 100), n * 95 // 100
    rx = Receiver(broker.port, f"e2e-raw-{token}", f"vaka/v1/{site}/#")
    rx.watch = {lo, hi}
    rx.connect()
    rx.disconnect()
    log(f"raw: queueing {n:,} messages for a bare paho subscriber")
    await publish_all(broker.port, f"e2e-pub-raw-{token}", backlog)
    rx.connect()
    deadline = time.monotonic() + 120
    while rx.count < n and time.monotonic() < deadline:  # noqa: ASYNC110 (paho's thread counts)
        await asyncio.sleep(0.05)
    rx.disconnect(forget=True)
    if hi not in rx.marks or lo not in rx.marks:
        msg = f"raw subscriber received {rx.count} of {n}"
        raise RuntimeError(msg)
    rate = (hi - lo) / (rx.marks[hi] - rx.marks[lo])
    log(f"raw: {rate:,.0f} msg/s")
    return rate


async def measure_sustained(hub: HubProcess, broker: Broker, token: str, backlog: list[tuple[str, bytes]]) -> float:
    """The hub drains the same backlog from its persistent session; rows committed per second."""
    n = len(backlog)
    base = await hub.durable_events()
    hub.pause()
    try:
        log(f"sustained: queueing {n:,} messages for the paused hub")
        await publish_all(broker.port, f"e2e-pub-hub-{token}", backlog)
    finally:
        hub.resume()
    samples = [(time.perf_counter(), 0.0)]
    stalled_since = time.monotonic()
    while samples[-1][1] < n:
        await asyncio.sleep(0.25)
        written = await hub.durable_events() - base
        if written > samples[-1][1]:
            stalled_since = time.monotonic()
        elif time.monotonic() - stalled_since > 20:
            msg = f"hub stalled at {written:,.0f} of {n:,} events: {hub.log_tail()}"
            raise RuntimeError(msg)
        samples.append((time.perf_counter(), written))
    rate = rate_between(samples, n * 0.05, n * 0.95)
    log(f"sustained: {rate:,.0f} events/s committed")
    return rate


async def measure_level(
    hub: HubProcess,
    broker: Broker,
    token: str,
    site: str,
    pct: int,
    rate_per_s: float,
    background: SimConfig,
    after: float,
    density_per_s: float,
    probes: list[tuple[str, str]],
    probe_pub: Publisher,
    watcher: Receiver,
    plan: Plan,
) -> tuple[dict[str, Any], float]:
    """Background traffic at `rate_per_s` from child processes (each generates its share of `background` after `after`); alarm-button probes; publish → alarm message."""
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    workers = []
    per_worker = int(rate_per_s * plan.level_s * 0.75) + 100  # a shard may carry more than its half
    speedup = rate_per_s / density_per_s
    lasts = []
    for k in range(BACKGROUND_WORKERS):  # by device: each device's messages stay in order on one connection
        ready, sent, last = ctx.Event(), ctx.Value("q", 0), ctx.Value("d", after)
        args = (broker.port, f"e2e-bg-{token}-{pct}-{k}", background.model_dump_json(), after, (k, BACKGROUND_WORKERS),
                per_worker, speedup, plan.level_s, ready, go, sent, last)  # fmt: skip
        proc = ctx.Process(target=background_worker, args=args, name=f"e2e-background-{pct}-{k}", daemon=True)
        proc.start()
        workers.append((proc, ready, sent))
        lasts.append(last)
    try:
        for _proc, ready, _sent in workers:
            if not await asyncio.to_thread(ready.wait, 120):
                raise RuntimeError("background publisher did not start")
        written0 = await hub.durable_events()
        interval_s = max(plan.probe_interval_s, plan.level_s / max(1, len(probes)))  # each probe alarms a new resident
        log(f"latency at {pct} %: {rate_per_s:,.0f} msg/s background for {plan.level_s:.0f} s, probes every "
            f"{interval_s * 1000:.0f} ms")  # fmt: skip
        go.set()
        started = time.perf_counter()
        published: dict[str, float] = {}
        while time.perf_counter() - started < plan.level_s and probes:
            resident_id, device_id = probes.pop(0)
            body = {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "kind": "alarm_button",
                "value": 1,
                "seq": PROBE_SEQ_BASE + len(published),
            }
            published[resident_id] = time.perf_counter()
            probe_pub.publish(f"vaka/v1/{site}/{device_id}/event", json.dumps(body).encode())
            await asyncio.sleep(interval_s)
        for proc, _ready, _sent in workers:
            await asyncio.to_thread(proc.join, 60)
        load_s = time.perf_counter() - started
    finally:
        for proc, _ready, _sent in workers:
            if proc.is_alive():
                proc.kill()
    background_sent = sum(sent.value for _proc, _ready, sent in workers)
    expected = background_sent + len(published)
    caught_up_s: float | None = None
    arrived: dict[str, float] = {}
    deadline = time.perf_counter() + max(5.0, plan.level_s / 2)
    while time.perf_counter() < deadline:
        for t, payload in list(watcher.kept):
            alarm = json.loads(payload)
            rid = alarm.get("resident_id")
            if alarm.get("rule_id") == "alarm_button" and alarm.get("state") == "raised" and rid in published:
                arrived.setdefault(rid, t)
        if caught_up_s is None and await hub.durable_events() - written0 >= expected:
            caught_up_s = max(0.0, time.perf_counter() - started - load_s)
        if caught_up_s is not None and len(arrived) == len(published):
            break
        await asyncio.sleep(0.1)
    committed = await hub.durable_events() - written0
    latencies = [arrived[rid] - t for rid, t in published.items() if rid in arrived]
    result: dict[str, Any] = percentiles_ms(latencies)
    result.update(
        probes=len(published),
        unanswered=len(published) - len(latencies),
        target_per_s=round(rate_per_s),
        offered_per_s=round(background_sent / plan.level_s),
        hub_caught_up_s=None if caught_up_s is None else round(caught_up_s, 2),
        messages_published=expected,
        events_committed=round(committed),
    )
    log(f"latency at {pct} %: {result}")
    return result, max(last.value for last in lasts)


async def wait_settled(hub: HubProcess, quiet_s: float = 1.5, timeout_s: float = 60.0) -> None:
    """Wait until the hub's committed-event count stops moving for `quiet_s`."""
    last, since = -1.0, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        written = await hub.durable_events()
        if written != last:
            last, since = written, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        await asyncio.sleep(0.25)


async def measure_recall(broker: Broker, token: str, plan: Plan, workdir: Path, schemas: list[str]) -> dict[str, Any]:
    """An accelerated simulated run against a hub on the simulation's clock, scored against the ground truth."""
    site = f"e2er{token}"
    zone_now = datetime.now(SimConfig().zone)
    rates = IncidentRates(**{k: v * plan.incident_scale for k, v in IncidentRates().model_dump().items()})
    config = SimConfig(
        site=site,
        residents=plan.residents,
        nights=plan.nights,
        hours=plan.hours,
        seed=plan.seed,
        speed=plan.speed,
        start=next_evening(zone_now),
        rates=rates,
        checkin_share=plan.checkin_share,
        camera_failure_rate=plan.camera_failure_rate,
    )
    sim = Simulation(config)
    schema = f"e2e_r_{token}"
    schemas.append(schema)
    await prepare_schema(schema, sim.inventory())
    checkin_truth = sim.checkin_truth()
    if checkin_truth:
        # the hub ticks its check-ins at least every simulated minute (hub.checkins.service.run_loop)
        await load_checkin_plans(schema, PlanFile.model_validate(sim.checkin_plans()).plans)
    hub = HubProcess(
        schema=schema,
        broker_port=broker.port,
        client_id=f"e2e-hub-r-{token}",
        workdir=workdir,
        clock_mode="simulated",
    )
    watcher = Receiver(broker.port, f"e2e-alarms-r-{token}", f"vaka/v1/{site}/alarms/#", keep=True)
    try:
        await hub.start()
        watcher.connect()
        sim_hours = (sim.end - sim.start).total_seconds() / 3600
        log(f"recall: {plan.residents} residents, {sim_hours:.1f} simulated hours at {plan.speed:g}x, seed {plan.seed}")
        stats = await run_simulation(sim, port=broker.port, client_id=f"e2e-sim-{token}", progress=sys.stderr)
        await wait_settled(hub)
        await asyncio.sleep(1.0)  # timers due at the simulation's end fire on the next engine ticks
    finally:
        await hub.stop()
        watcher.disconnect(forget=True)
    resident_nights = plan.residents * (plan.nights if plan.hours is None else plan.hours / 24)
    result = score(sim.truth(), collect_alarms(watcher.kept), resident_nights, sim.start.timestamp())
    if checkin_truth:
        result["checkins"] = score_checkins(checkin_truth, await fetch_checkins(schema)) | {
            "checkin_share": plan.checkin_share,
            "camera_failure_rate": plan.camera_failure_rate,
        }
    result["run"] = {
        "residents": plan.residents,
        "nights": plan.nights if plan.hours is None else None,
        "hours": round(sim_hours, 2),
        "speed": plan.speed,
        "seed": plan.seed,
        "incident_rate_scale": plan.incident_scale,
        "start": sim.start.isoformat(),
        "messages": stats.messages,
        "wall_s": round(stats.elapsed_s, 1),
    }
    return result


# --- the run -------------------------------------------------------------------------------------------------------


async def bench(plan: Plan) -> dict[str, Any]:
    """All phases, one after the other; everything made here is removed at the end."""
    token = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="vaka-e2e-"))
    broker = Broker()
    schemas: list[str] = []
    hub: HubProcess | None = None
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        broker.start()
        site = f"e2el{token}"
        log(f"generating {plan.backlog:,} messages of {plan.load_residents} simulated residents")
        load = load_config(site, plan.load_residents, plan.seed)
        backlog, times = load_messages(load, plan.backlog)
        after = times[-1]
        density_per_s = len(times) / max(1.0, times[-1] - times[0])  # messages per simulated second
        raw = await measure_raw(broker, token, site, backlog)

        schema = f"e2e_l_{token}"
        schemas.append(schema)
        await prepare_schema(schema, load_inventory(Simulation(load)))
        hub = HubProcess(
            schema=schema, broker_port=broker.port, client_id=f"e2e-hub-{token}", workdir=workdir, clock_mode="wall"
        )
        await hub.start()
        watcher = Receiver(broker.port, f"e2e-alarms-{token}", f"vaka/v1/{site}/alarms/#", keep=True)
        watcher.connect()
        sustained = await measure_sustained(hub, broker, token, backlog)
        await asyncio.sleep(0.5)
        seen_in_drain = len(watcher.kept)
        del backlog

        probes = [(r.id, r.devices["alarm_button"].id) for r in Simulation(load).residents]
        latency: dict[str, Any] = {}
        try:
            async with Publisher("127.0.0.1", broker.port, client_id=f"e2e-probe-{token}") as probe_pub:
                for level, pct in enumerate((50, 90)):
                    level_probes = probes[level::2]
                    rate = sustained * pct / 100
                    latency[f"at_{pct}pct"], after = await measure_level(
                        hub,
                        broker,
                        token,
                        site,
                        pct,
                        rate,
                        load,
                        after,
                        density_per_s,
                        level_probes,
                        probe_pub,
                        watcher,
                        plan,
                    )
        finally:
            watcher.disconnect(forget=True)
        await hub.stop()
        # ordinary days raise nothing: anything but the probes' alarm_button alarms is the hub's (or the load's) doing;
        # the bench has no staff, so the desk's site-wide "nobody reached" alarm for the probes is expected too
        unexpected = {
            phase: dict(
                Counter(
                    alarm["rule_id"]
                    for alarm in (json.loads(payload) for _t, payload in kept)
                    if alarm["state"] == "raised" and alarm["rule_id"] not in ("alarm_button", "nobody_reached")
                )
            )
            for phase, kept in (
                ("sustained", watcher.kept[:seen_in_drain]),
                ("latency", watcher.kept[seen_in_drain:]),
            )
        }

        recall = await measure_recall(broker, token, plan, workdir, schemas)
    except BaseException:
        if hub is not None:
            log(f"hub log tail: {hub.log_tail()}")
        raise
    finally:
        if hub is not None:
            await hub.stop()
        broker.cleanup()
        for schema in schemas:
            await drop_schema(schema)
        shutil.rmtree(workdir, ignore_errors=True)
    for m in recall["missed"]:
        log(f"MISSED {m['incident']} (expected {m['expected']}) {m['resident_id']} {m['device_id']} at {m['at']}: "
            f"{m['seen']}")  # fmt: skip
    return {
        "raw_receive_per_s": round(raw),
        "sustained_events_per_s": round(sustained),
        "ratio": round(sustained / raw, 3),
        "alarm_latency_ms": latency,
        "load_alarms_unexpected": unexpected,
        "recall": recall.pop("recall"),
        "false_alarms_per_resident_night": recall.pop("false_alarms_per_resident_night"),
        "missed": recall.pop("missed"),
        "run": recall.pop("run") | {"backlog_messages": plan.backlog, "load_residents": plan.load_residents},
        **({"checkins": recall.pop("checkins")} if "checkins" in recall else {}),
        "recall_detail": recall,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        },
        "duration_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a ~45 s run with smaller figures")
    parser.add_argument("--residents", type=int, help="residents in the recall run")
    parser.add_argument("--nights", type=int, help="nights in the recall run")
    parser.add_argument("--hours", type=float, help="simulated hours in the recall run (instead of nights)")
    parser.add_argument("--speed", type=float, help="simulated seconds per wall second in the recall run")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--incident-scale", type=float, help="multiply the simulator's default incident rates")
    parser.add_argument("--backlog", type=int, help="messages queued for the ceiling and the sustained rate")
    parser.add_argument("--load-residents", type=int, help="simulated residents whose traffic is the load")
    parser.add_argument("--level-s", type=float, help="seconds of background load per latency level")
    parser.add_argument(
        "--checkin-share", type=float, help="residents of the recall run with night check-ins, scored (default 0)"
    )
    parser.add_argument("--camera-failure-rate", type=float, help="chance a check-in camera is down at a slot (0.1)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides = {
        "residents": args.residents,
        "nights": args.nights,
        "hours": args.hours,
        "speed": args.speed,
        "seed": args.seed,
        "incident_scale": args.incident_scale,
        "backlog": args.backlog,
        "load_residents": args.load_residents,
        "level_s": args.level_s,
        "checkin_share": args.checkin_share,
        "camera_failure_rate": args.camera_failure_rate,
    }
    plan = dataclasses.replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    if args.nights is not None and args.hours is None:
        plan = dataclasses.replace(plan, hours=None)
    result = asyncio.run(bench(plan))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
