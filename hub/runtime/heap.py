"""The garbage collector kept out of the alarm path's tail: what start-up builds is frozen, and every pause is measured.

CPython's full (generation 2) collection walks every tracked object. In a hub with a few thousand residents that is
some 270,000 objects, nearly all of them built once at start (modules, the inventory, the rule pack, the restored
engine) and never garbage: measured under `bench/e2e.py --quick`, each full collection took 100–190 ms of CPU, one
event loop stall each, the largest single stall left on the alarm path (docs/performance.md); after the freeze the
collector walks about 27,000 objects instead of 272,000. `gc.freeze()` moves
them to the permanent generation, which no collection walks; reference counting still frees them when they go.

Only the serving process freezes (`hub.app.run`): a test process that freezes would keep every earlier test's
cyclic garbage. What goes into the permanent generation is what is alive after a full collection, at start and after
an inventory reload (the new inventory); a reference cycle that becomes garbage later is not collected, which costs
at most the memory of the few objects of one inventory per reload.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from hub.metrics import Metrics

YOUNG_THRESHOLD = 3_000


def tune_collector() -> None:
    """Collect the young generation after 3,000 net allocations instead of 700, so the full collections (after every
    hundredth young one) come four times less often. Measured under `bench/e2e.py --quick` (CPU time of the
    collector): young ones at most 4.6 ms, middle ones 10.9 ms, full ones after the freeze 11–26 ms, three in the
    run, against 10–41 ms, twelve in the run, at 700. At 10,000 the young and middle ones grew to 13 and 23 ms."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def freeze_long_lived() -> int:
    """Collect what is garbage now, then move everything alive to the permanent generation; returns its size."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GcPauses:
    """Times every collection into `vaka_gc_pause_seconds{generation}` (a `gc.callbacks` hook; `close` removes it)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self._metrics.gc_pause.labels(str(info["generation"])).observe(time.perf_counter() - self._started)

    def close(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
