"""`vaka simulate`: arguments and the entry point the `vaka` command calls."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from hub.runtime.clock import CLOCK_TOPIC
from hub.simulation.checkins import write_checkin_plans
from hub.simulation.config import IncidentRates, SimConfig, SimulationError
from hub.simulation.devices import write_inventory
from hub.simulation.directory import write_directory
from hub.simulation.runner import run
from hub.simulation.shards import run_sharded
from hub.simulation.stream import Simulation

_RATE_SUFFIX = "-per-resident-night"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `vaka simulate` options to `parser`."""
    parser.add_argument("--host", default="127.0.0.1", help="MQTT broker host (default %(default)s)")
    parser.add_argument("--port", type=int, default=1883, help="MQTT broker port (default %(default)s)")
    parser.add_argument(
        "--clock-topic", default=CLOCK_TOPIC, help="where the simulated clock goes (default %(default)s)"
    )
    parser.add_argument("--client-id", default="vaka-simulator", help="MQTT client id (default %(default)s)")
    parser.add_argument("--site", default="demo", help="site id (default %(default)s)")
    parser.add_argument("--timezone", default="Europe/Stockholm", help="site time zone (default %(default)s)")
    parser.add_argument("--residents", type=int, default=20, help="number of residents (default %(default)s)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--nights", type=int, default=1, help="run until 10:30 on the n-th morning (default 1)")
    length.add_argument("--hours", type=float, help="run this many simulated hours instead")
    parser.add_argument(
        "--start", help="simulated start: ISO 8601 (without offset: site time) or now (default 20:00 today)"
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per second; 0: as fast as possible (default 1)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed: same seed, same run (default 1)")
    parser.add_argument("--rate-limit", type=float, help="at most this many messages per second (load tests)")
    parser.add_argument("--truth", type=Path, help="write the ground truth here, as JSON lines")
    parser.add_argument("--inventory", type=Path, help="write the site inventory here, as YAML")
    parser.add_argument(
        "--directory",
        type=Path,
        help="write a fictional resident directory here (names, homes, access) for `vaka resident import-csv`",
    )
    parser.add_argument(
        "--checkin-share", type=float, default=0.0, help="share of residents with a night check-in plan (default 0)"
    )
    parser.add_argument(
        "--camera-failure-rate",
        type=float,
        default=0.1,
        help="chance a check-in camera is silent at a camera slot (default %(default)s)",
    )
    parser.add_argument("--checkin-plans", type=Path, help="write the check-in plans here (for `vaka checkin plan`)")
    parser.add_argument("--checkin-truth", type=Path, help="write the check-in ground truth here, as JSON lines")
    parser.add_argument(
        "--write-only", action="store_true", help="only write --inventory and the full --truth; publish nothing"
    )
    parser.add_argument("--mqtt-v311", action="store_true", help="publish over MQTT 3.1.1 (faster for load tests)")
    parser.add_argument(
        "--workers", type=int, default=1, help="publish from this many processes, devices split between them (load)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument("--incident-scale", type=float, default=1.0, help="multiply every incident rate by this")
    rates = parser.add_argument_group("incident rates (expected count per resident and night)")
    for name, field in IncidentRates.model_fields.items():
        rates.add_argument(
            f"--{name.replace('_', '-')}{_RATE_SUFFIX}",
            dest=f"rate_{name}",
            type=float,
            default=field.default,
            # argparse %-formats help strings: a literal % in a description ("below 15 %") must be doubled
            help=f"{(field.description or '').replace('%', '%%')} (default %(default)s)",
        )


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Build the SimConfig the arguments describe; raises pydantic.ValidationError or ValueError."""
    rates = {name: getattr(args, f"rate_{name}") * args.incident_scale for name in IncidentRates.model_fields}
    start = None
    if args.start == "now":
        start = datetime.now(ZoneInfo(args.timezone)).replace(microsecond=0)
    elif args.start:
        start = datetime.fromisoformat(args.start)
    return SimConfig(
        site=args.site,
        timezone=args.timezone,
        residents=args.residents,
        nights=args.nights,
        hours=args.hours,
        start=start,
        speed=args.speed,
        seed=args.seed,
        clock_topic=args.clock_topic,
        rates=IncidentRates(**rates),
        checkin_share=args.checkin_share,
        camera_failure_rate=args.camera_failure_rate,
    )


async def main(args: argparse.Namespace) -> int:
    """Run `vaka simulate`: 0 when done, 2 on bad arguments or no broker, 130 when stopped by Ctrl-C."""
    try:
        if args.workers < 1 or (args.rate_limit is not None and args.rate_limit <= 0):
            msg = "--workers must be at least 1 and --rate-limit positive"
            raise ValueError(msg)
        config = config_from_args(args)
        sim = Simulation(config)
    except (ValidationError, ValueError, ZoneInfoNotFoundError) as exc:
        print(f"vaka simulate: {_first_error(exc)}", file=sys.stderr)
        return 2
    if args.inventory is not None:
        write_inventory(sim.inventory(), args.inventory)
    if args.directory is not None:
        write_directory(sim.residents, args.directory)
    if args.checkin_plans is not None:
        write_checkin_plans(sim.checkin_plans(), args.checkin_plans)
    if args.checkin_truth is not None:
        with args.checkin_truth.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(line) + "\n" for line in sim.checkin_truth())
    out = sys.stderr
    print(
        f"simulating site {config.site}: {config.residents} residents, {len(sim.devices)} devices, "
        f"{sim.start.isoformat()} → {sim.end.isoformat()}, speed {config.speed:g}, seed {config.seed}, "
        f"{len(sim.incidents())} incidents planned"
        + (f", {len(sim.checkin_truth())} check-ins planned" if config.checkin_share > 0 else "")
        + (f"; {wall_time_text((sim.end - sim.start).total_seconds(), config.speed)}" if config.speed > 0 else ""),
        file=out,
    )
    if args.write_only:
        if args.truth is not None:
            with args.truth.open("w", encoding="utf-8") as f:
                f.writelines(json.dumps(line) + "\n" for line in sim.truth())
        return 0
    try:
        if args.workers > 1:
            stats = await run_sharded(
                sim,
                args.workers,
                host=args.host,
                port=args.port,
                client_id=args.client_id,
                mqtt_v311=args.mqtt_v311,
                rate_limit=args.rate_limit,
                truth_path=args.truth,
                progress=None if args.quiet else out,
            )
        else:
            stats = await run(
                sim,
                host=args.host,
                port=args.port,
                client_id=args.client_id,
                mqtt_v311=args.mqtt_v311,
                rate_limit=args.rate_limit,
                truth_path=args.truth,
                progress=None if args.quiet else out,
            )
    except SimulationError as exc:
        print(f"vaka simulate: {exc}", file=sys.stderr)
        return 2
    except asyncio.CancelledError:
        print("vaka simulate: stopped", file=out)
        return 130
    print(
        f"done: {stats.messages:,} messages, {stats.incidents} incidents in {stats.elapsed_s:.1f} s "
        f"({stats.rate_per_s:,.0f} msg/s)",
        file=out,
    )
    return 0


def wall_time_text(simulated_s: float, speed: float) -> str:
    """How long the simulated span takes on the wall clock at `speed`: "about 5 h 17 min of wall time"."""
    wall_s = round(simulated_s / speed)
    if wall_s < 120:
        return f"about {wall_s} s of wall time"
    hours, minutes = divmod(round(wall_s / 60), 60)
    return f"about {hours} h {minutes} min of wall time" if hours else f"about {minutes} min of wall time"


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
    return str(exc)
