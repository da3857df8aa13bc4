"""`vaka simulate`: the entry the `vaka` command and benchmarks import; the work is in `hub.simulation`."""

from __future__ import annotations

from hub.simulation import (
    IncidentRates,
    Publisher,
    RunStats,
    SimConfig,
    SimMessage,
    Simulation,
    SimulationError,
    add_arguments,
    config_from_args,
    main,
    publish_paced,
    run,
    run_sharded,
    write_inventory,
)

__all__ = [
    "IncidentRates",
    "Publisher",
    "RunStats",
    "SimConfig",
    "SimMessage",
    "Simulation",
    "SimulationError",
    "add_arguments",
    "config_from_args",
    "main",
    "publish_paced",
    "run",
    "run_sharded",
    "write_inventory",
]
