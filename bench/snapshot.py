"""The engine snapshot stall: how long taking and encoding one snapshot holds the event loop, after a night of
1,000 residents (bench/engine.py's night, default pack). Prints one JSON object.

The hub takes a snapshot every 10 s on the loop and encodes it in a worker thread in small pieces (hub/recovery/snapshots.py);
`thread_*_loop_gap_ms` is the longest the event loop waited for the GIL (a 1 ms ticker's worst gap) while a thread
encoded the snapshot in pieces, and while a thread encoded it in one msgspec call, for comparison.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

import msgspec

from alarms.engine import Engine
from alarms.rules import default_pack_path, load_rules
from bench.engine import RESIDENTS, build_directory, build_night
from hub.recovery import snapshots


def _best_ms(work: object, runs: int = 30) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 2)


async def _worst_gap_ms(encode: Callable[[], Any], runs: int = 10) -> float:
    """The longest a 1 ms ticker on the loop waited while a thread ran `encode`, worst of `runs`."""
    worst = 0.0
    for _ in range(runs):
        done = asyncio.Event()

        async def tick(done: asyncio.Event) -> float:
            gap, last = 0.0, time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gap, last = max(gap, now - last), now
            return gap

        ticker = asyncio.ensure_future(tick(done))
        await asyncio.sleep(0.01)
        await asyncio.to_thread(encode)
        done.set()
        worst = max(worst, await ticker)
    return round(worst * 1000, 2)


def main() -> None:
    directory = build_directory()
    engine = Engine(load_rules([default_pack_path()]), directory)
    for event in build_night(directory):
        engine.feed(event, event.ts)
    encoder = msgspec.json.Encoder()
    snapshot = engine.snapshot()
    scaled = {"copies": {str(i): snapshot for i in range(10)}}
    result = {
        "residents": RESIDENTS,
        "snapshot_ms": _best_ms(engine.snapshot),
        "encode_ms": _best_ms(lambda: encoder.encode(snapshot)),
        "stall_ms": _best_ms(lambda: encoder.encode(engine.snapshot())),
        "take_ms": _best_ms(lambda: snapshots.take(engine)),
        "encode_pieces_ms": _best_ms(lambda: snapshots.encode(snapshot)),
        # ten copies: about the 20 MB of bench/e2e.py's hub (5,000 residents, 24,000 devices, 83,000 gate marks)
        "scaled_bytes": len(encoder.encode(scaled)),
        "thread_pieces_loop_gap_ms": asyncio.run(_worst_gap_ms(lambda: snapshots.encode(scaled))),
        "thread_whole_loop_gap_ms": asyncio.run(_worst_gap_ms(lambda: encoder.encode(scaled))),
        "snapshot_bytes": len(encoder.encode(snapshot)),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
