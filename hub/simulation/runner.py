"""Running a simulation against a broker: pacing at a speed or a rate, progress on the terminal, clean stops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO

from hub.simulation.config import SimulationError
from hub.simulation.incidents import Incident
from hub.simulation.publisher import Publisher
from hub.simulation.stream import SimMessage, Simulation

logger = logging.getLogger(__name__)

YIELD_EVERY = 512  # messages between chances for other tasks (progress, Ctrl-C) when running flat out


@dataclass(slots=True)
class RunStats:
    """What a run did: messages published (clock messages included), incidents injected, wall time."""

    messages: int = 0
    device_messages: int = 0
    incidents: int = 0
    incidents_planned: int = 0
    elapsed_s: float = 0.0
    sim_time: datetime | None = None
    completed: bool = False

    @property
    def rate_per_s(self) -> float:
        """Messages per wall second over the whole run."""
        return self.messages / self.elapsed_s if self.elapsed_s > 0 else 0.0


class _TruthWriter:
    """Appends each incident's ground-truth line once the simulation has reached it."""

    def __init__(self, site: str, incidents: list[Incident], out: IO[str] | None) -> None:
        self._site, self._incidents, self._out = site, incidents, out
        self.written = 0

    def advance(self, now: float) -> None:
        while self.written < len(self._incidents) and self._incidents[self.written].at <= now:
            if self._out is not None:
                self._out.write(json.dumps(self._incidents[self.written].truth(self._site)) + "\n")
                self._out.flush()
            self.written += 1


class _Progress:
    """One line a second on a terminal (rewritten in place), a plain line every `plain_every_s` otherwise."""

    def __init__(
        self, stats: RunStats, pending: Callable[[], int], out: IO[str], zone: tzinfo, plain_every_s: float = 10.0
    ) -> None:
        self.stats, self.pending, self.out, self.zone = stats, pending, out, zone
        self.tty = out.isatty()
        self.every_s = 1.0 if self.tty else plain_every_s
        self._last = (time.monotonic(), 0)

    def line(self) -> str:
        now, sent = time.monotonic(), self.stats.messages
        then, before = self._last
        rate = (sent - before) / (now - then) if now > then else 0.0
        self._last = (now, sent)
        when = self.stats.sim_time
        sim = when.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S %Z") if when else "-"
        return (
            f"sim {sim} | sent {self.stats.device_messages:,} device msgs ({sent:,} incl. clock) | "
            f"incidents {self.stats.incidents}/{self.stats.incidents_planned} | {rate:,.0f} msg/s | "
            f"unacked {self.pending():,}"
        )

    def show(self, final: bool = False) -> None:
        text = self.line()
        if self.tty:
            self.out.write("\r\x1b[2K" + text + ("\n" if final else ""))
        else:
            self.out.write(text + "\n")
        self.out.flush()

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.show()


async def publish_paced(
    messages: Iterable[SimMessage],
    publisher: Publisher,
    stats: RunStats,
    *,
    speed: float,
    rate_limit: float | None = None,
    on_time: _TruthWriter | None = None,
) -> None:
    """Publish in time order: at `speed` simulated seconds per wall second, or flat out (0), at most `rate_limit`/s."""
    loop = asyncio.get_running_loop()
    wall0 = loop.time()
    sim0: float | None = None
    since_yield = 0
    for msg in messages:
        t = msg.time.timestamp()
        if sim0 is None:
            sim0 = t
        if speed > 0:
            delay = wall0 + (t - sim0) / speed - loop.time()
            if delay > 0.001:
                await asyncio.sleep(delay)
                since_yield = 0
        if rate_limit:
            delay = wall0 + stats.messages / rate_limit - loop.time()
            if delay > 0.001:
                await asyncio.sleep(delay)
                since_yield = 0
        publisher.publish(msg.topic, msg.payload, msg.retain)
        stats.messages += 1
        if msg.topic.endswith(("/event", "/telemetry", "/status")):
            stats.device_messages += 1
        stats.sim_time = msg.time
        if on_time is not None:
            on_time.advance(t)
            stats.incidents = on_time.written
        since_yield += 1
        if since_yield >= YIELD_EVERY:
            since_yield = 0
            if publisher.pending > publisher.max_pending:
                await publisher.wait_capacity()
            else:
                await asyncio.sleep(0)


async def run(
    sim: Simulation,
    *,
    host: str = "127.0.0.1",
    port: int = 1883,
    client_id: str = "vaka-simulator",
    mqtt_v311: bool = False,
    rate_limit: float | None = None,
    truth_path: Path | None = None,
    progress: IO[str] | None = sys.stderr,
    drain_timeout_s: float = 30.0,
) -> RunStats:
    """Publish the simulation to the broker at `sim.config.speed`; on cancellation stop cleanly and re-raise.

    Ground-truth lines are appended to `truth_path` as the simulation reaches each incident, so a run stopped early
    leaves only the incidents that happened. On the way out the clock is published once more with speed 0, so a hub
    following it stops where the simulation stopped.
    """
    incidents = sim.incidents()
    stats = RunStats(incidents_planned=len(incidents))
    started = time.monotonic()
    async with Publisher(host, port, client_id=client_id, mqtt_v311=mqtt_v311) as publisher:
        reporter = _Progress(stats, lambda: publisher.pending, progress, sim.zone) if progress is not None else None
        progress_task = asyncio.create_task(reporter.loop(), name="vaka.simulate.progress") if reporter else None
        with truth_path.open("w", encoding="utf-8") if truth_path else contextlib.nullcontext() as truth_out:
            writer = _TruthWriter(sim.config.site, incidents, truth_out)
            try:
                await publish_paced(
                    sim.iter_messages(),
                    publisher,
                    stats,
                    speed=sim.config.speed,
                    rate_limit=rate_limit,
                    on_time=writer,
                )
                stats.completed = True
            finally:
                if progress_task is not None:
                    progress_task.cancel()
                stopped_at = stats.sim_time or sim.start
                with contextlib.suppress(SimulationError):  # the broker may be what stopped us
                    publisher.publish(*_final_clock(sim, stopped_at))
                with contextlib.suppress(asyncio.CancelledError):
                    # shielded: a Ctrl-C still lets what was sent reach the broker before we disconnect
                    await asyncio.shield(publisher.drain(drain_timeout_s))
                stats.elapsed_s = time.monotonic() - started
                if reporter is not None:
                    reporter.show(final=True)
    logger.info(
        "simulation %s: %s messages, %s incidents in %.1f s",
        "completed" if stats.completed else "stopped",
        stats.messages,
        stats.incidents,
        stats.elapsed_s,
    )
    return stats


def _final_clock(sim: Simulation, at: datetime) -> tuple[str, bytes, bool]:
    msg = sim.clock_message(at.astimezone(UTC).timestamp(), speed=0.0)
    return msg.topic, msg.payload, msg.retain
