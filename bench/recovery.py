"""Benchmark of recovery after a crash (hub/recovery/replay.py): what a restart costs, and what the gate costs per event.

The night of bench/engine.py (1,000 residents, the default pack): the engine is snapshotted half-way, the second
half is then replayed through the gate into the restored engine, as a restart after a crash at the end of the night
would (with the store's own receive order). Prints one JSON object:
- replay_events_per_s: events replayed per second (restore excluded);
- restore_s: restoring the engine and the gate from their snapshot;
- replay_6h_s: the replay of the second half of the night (6 h of events, far more than a snapshot interval);
- gate_overhead_us: extra time per event of gate + engine over the engine alone, live.
The alternative, a PUBACK that waits for the engine's state to be durable, would add a durable snapshot (~7 ms per
1,000 residents, docs/performance.md) or a database round trip to every acknowledged message.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alarms.engine import Engine
from alarms.gate import Gate, GateLimits, feed, freshness_by_kind, rule_freshness
from alarms.rules import default_pack_path, load_rules
from bench.engine import build_directory, build_night
from hub.model import AlarmDecision, Event
from hub.recovery.replay import DeskView, replay


def main() -> None:
    """Run the benchmark and print one JSON object."""
    rules = load_rules([default_pack_path()])
    directory = build_directory()
    night = build_night(directory)
    limits = GateLimits()
    half = len(night) // 2

    engine = Engine(rules, directory)
    engine.freshness_s = rule_freshness(rules, limits)
    gate = Gate(freshness_by_kind(rules, limits))
    for event in night[:half]:
        feed(gate, engine, event, event.ts, event.ts)
    snapshot = {**engine.snapshot(), "gate": gate.snapshot()}

    t0 = time.perf_counter()
    restored = Engine.restore(rules, directory, snapshot)
    restored.freshness_s = rule_freshness(rules, limits)
    restored_gate = Gate(freshness_by_kind(rules, limits))
    restored_gate.restore(snapshot["gate"])
    restore_s = time.perf_counter() - t0

    open_keys: dict[str, tuple[datetime, datetime]] = {}

    def apply(decision: AlarmDecision) -> None:
        open_keys[decision.key] = (decision.at, decision.at)

    second: list[tuple[Event, datetime]] = [(e, e.ts) for e in night[half:]]
    end = night[-1].ts
    t0 = time.perf_counter()
    report = replay(restored_gate, restored, second, end, DeskView(apply, open_keys.get), lambda key, at: None)
    replay_s = time.perf_counter() - t0

    plain_s = gated_s = float("inf")
    for _ in range(2):  # alternately, on fresh engines: the better of two of each
        plain = Engine(rules, directory)
        t0 = time.perf_counter()
        for event in night[:half]:
            plain.feed(event, event.ts)
        plain_s = min(plain_s, time.perf_counter() - t0)
        gated = Engine(rules, directory)
        gated.freshness_s = engine.freshness_s
        fresh_gate = Gate(gate.freshness_s)
        t0 = time.perf_counter()
        for event in night[:half]:
            feed(fresh_gate, gated, event, event.ts, event.ts)
        gated_s = min(gated_s, time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "events_replayed": report.replayed,
                "replay_events_per_s": round(report.replayed / replay_s),
                "replay_6h_s": round(replay_s, 3),
                "restore_s": round(restore_s, 3),
                "engine_us_per_event": round(plain_s / half * 1e6, 2),
                "gate_overhead_us": round((gated_s - plain_s) / half * 1e6, 2),
                "residents": len(directory.residents),
            }
        )
    )


if __name__ == "__main__":
    main()
