"""The engine snapshot stall: how long taking and encoding one snapshot holds the event loop, after a night of
1,000 residents (bench/engine.py's night, default pack). Prints one JSON object.

The hub takes a snapshot every 10 s on the loop (the GIL makes a thread no better); everything else waits meanwhile.
"""

from __future__ import annotations

import json
import os
import time

import msgspec

from alarms.engine import Engine
from alarms.rules import default_pack_path, load_rules
from bench.engine import RESIDENTS, build_directory, build_night


def _best_ms(work: object, runs: int = 30) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 2)


def main() -> None:
    directory = build_directory()
    engine = Engine(load_rules([default_pack_path()]), directory)
    for event in build_night(directory):
        engine.feed(event, event.ts)
    encoder = msgspec.json.Encoder()
    snapshot = engine.snapshot()
    result = {
        "residents": RESIDENTS,
        "snapshot_ms": _best_ms(engine.snapshot),
        "encode_ms": _best_ms(lambda: encoder.encode(snapshot)),
        "stall_ms": _best_ms(lambda: encoder.encode(engine.snapshot())),
        "snapshot_bytes": len(encoder.encode(snapshot)),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
