"""Load generation past one process: n worker processes, each publishing the devices of one shard.

One paho connection tops out at roughly one core's worth of messages; for load tests `run_sharded` splits the
devices over `workers` processes (each device's messages stay in order on one connection; the clock goes with
shard 0). Every worker builds the same deterministic Simulation from the config and publishes its share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import sys
import time
from datetime import UTC, datetime
from multiprocessing.sharedctypes import Synchronized, SynchronizedArray
from pathlib import Path
from typing import IO, Any

from hub.simulation.config import SimConfig, SimulationError
from hub.simulation.publisher import Publisher
from hub.simulation.runner import RunStats, _Progress, _TruthWriter, publish_paced
from hub.simulation.stream import Simulation

logger = logging.getLogger(__name__)


def _worker(
    config_json: str,
    part: int,
    parts: int,
    broker: tuple[str, int, str, bool],
    rate_limit: float | None,
    counts: SynchronizedArray[Any],
    sim_times: SynchronizedArray[Any],
    failed: Synchronized[int],
) -> None:
    """Entry of one worker process: publish shard `part` of `parts`; SIGTERM stops it cleanly."""
    host, port, client_id, mqtt_v311 = broker
    sim = Simulation(SimConfig.model_validate_json(config_json))

    async def publish() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        async with Publisher(host, port, client_id=f"{client_id}-{part}", mqtt_v311=mqtt_v311) as publisher:
            stats = RunStats()

            async def report() -> None:
                while True:
                    counts[part] = stats.messages
                    sim_times[part] = stats.sim_time.timestamp() if stats.sim_time else 0.0
                    await asyncio.sleep(0.1)

            reporter = asyncio.create_task(report(), name="vaka.simulate.shard_report")
            try:
                await publish_paced(
                    sim.iter_messages(shard=(part, parts)),
                    publisher,
                    stats,
                    speed=sim.config.speed,
                    rate_limit=rate_limit,
                )
            finally:
                reporter.cancel()
                if part == 0 and stats.sim_time is not None:
                    final = sim.clock_message(stats.sim_time.timestamp(), speed=0.0)
                    with contextlib.suppress(SimulationError):
                        publisher.publish(final.topic, final.payload, final.retain)
                await publisher.drain(30.0)
                counts[part] = stats.messages
                sim_times[part] = float("inf")

    try:
        asyncio.run(publish())
    except (asyncio.CancelledError, KeyboardInterrupt):
        pass
    except SimulationError as exc:
        print(f"vaka simulate worker {part}: {exc}", file=sys.stderr)
        failed.value = 1


async def run_sharded(
    sim: Simulation,
    workers: int,
    *,
    host: str = "127.0.0.1",
    port: int = 1883,
    client_id: str = "vaka-simulator",
    mqtt_v311: bool = False,
    rate_limit: float | None = None,
    truth_path: Path | None = None,
    progress: IO[str] | None = sys.stderr,
) -> RunStats:
    """Like `run`, over `workers` processes (client ids `{client_id}-{k}`); `rate_limit` is the total."""
    ctx = multiprocessing.get_context("spawn")
    counts = ctx.Array("q", workers)
    sim_times = ctx.Array("d", workers)
    failed = ctx.Value("i", 0)
    per_worker = rate_limit / workers if rate_limit else None
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                sim.config.model_copy(update={"start": sim.start}).model_dump_json(),  # one "tonight" for all
                k,
                workers,
                (host, port, client_id, mqtt_v311),
                per_worker,
                counts,
                sim_times,
                failed,
            ),
            name=f"vaka-simulate-{k}",
            daemon=True,
        )
        for k in range(workers)
    ]
    incidents = sim.incidents()
    stats = RunStats(incidents_planned=len(incidents))
    reporter = _Progress(stats, lambda: 0, progress, sim.zone) if progress is not None else None
    started = time.monotonic()
    next_report = started + (reporter.every_s if reporter else 0)
    for p in procs:
        p.start()
    with truth_path.open("w", encoding="utf-8") if truth_path else contextlib.nullcontext() as truth_out:
        writer = _TruthWriter(sim.config.site, incidents, truth_out)
        try:
            while any(p.is_alive() for p in procs):
                await asyncio.sleep(0.1)
                _collect(stats, counts, sim_times, writer, sim)
                if reporter is not None and time.monotonic() >= next_report:
                    reporter.show()
                    next_report += reporter.every_s
            _collect(stats, counts, sim_times, writer, sim)
            stats.completed = not failed.value and all(p.exitcode == 0 for p in procs)
            if not stats.completed:
                msg = "a simulator worker failed (see above)"
                raise SimulationError(msg)
        finally:
            for p in procs:
                if p.is_alive():
                    p.terminate()  # SIGTERM: the worker stops, sends the final clock and drains
            for p in procs:
                await asyncio.to_thread(p.join, 10.0)
                if p.is_alive():
                    p.kill()
            stats.elapsed_s = time.monotonic() - started
            if reporter is not None:
                reporter.show(final=True)
    return stats


def _collect(
    stats: RunStats,
    counts: SynchronizedArray[Any],
    sim_times: SynchronizedArray[Any],
    writer: _TruthWriter,
    sim: Simulation,
) -> None:
    stats.messages = stats.device_messages = sum(counts[:])
    slowest = min(sim_times[:])
    if slowest > 0:
        now = min(slowest, sim.end.timestamp())
        stats.sim_time = datetime.fromtimestamp(now, UTC)
        writer.advance(now)
        stats.incidents = writer.written
