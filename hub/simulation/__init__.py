"""A care unit's days and nights as MQTT traffic: the demo, the load generator and the accuracy yardstick.

`Simulation(SimConfig(...))` is deterministic for its config: `inventory()`, `iter_messages()` (time-ordered
`SimMessage(time, topic, payload, retain)`, clock messages included) and `truth()`. `run(sim, ...)` publishes it.
"""

from __future__ import annotations

from hub.simulation.cli import add_arguments, config_from_args, main
from hub.simulation.config import IncidentRates, SimConfig, SimulationError
from hub.simulation.devices import write_inventory
from hub.simulation.incidents import Incident
from hub.simulation.publisher import Publisher
from hub.simulation.runner import RunStats, publish_paced, run
from hub.simulation.shards import run_sharded
from hub.simulation.stream import SimMessage, Simulation

__all__ = [
    "Incident",
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
