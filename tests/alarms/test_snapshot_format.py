"""The engine snapshot is cheap to take and reads back whole: sparse baseline counts, timers in heap order, and
snapshots written in the older forms (nested count lists, sorted timer lists) still restore."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import numpy as np

from alarms.engine import Engine
from alarms.windows import BaselineEval
from hub.model import EventKind
from tests.alarms.home import PACK, directory, ev, fresh, local


def _busy_engine() -> Engine:
    start = local("2026-11-10 22:00")
    engine = fresh(start)
    for day in range(3):
        for minute in range(0, 120, 7):
            at = start + timedelta(days=day, minutes=minute)
            engine.feed(ev(at, "mot", EventKind.MOTION), at)
    return engine


def _stored(engine: Engine) -> dict[str, Any]:
    return msgspec.json.decode(msgspec.json.encode(engine.snapshot()))  # type: ignore[no-any-return]


def _counts(engine: Engine) -> np.ndarray[Any, Any]:
    baseline = engine.compiled["restless_night"]
    assert isinstance(baseline, BaselineEval)
    return baseline.counts[: len(baseline.row_ids)]


def test_baseline_counts_and_timers_survive_a_snapshot() -> None:
    engine = _busy_engine()
    assert _counts(engine).sum() > 0
    restored = Engine.restore(PACK, directory(), _stored(engine))
    assert np.array_equal(_counts(restored), _counts(engine))
    assert sorted(restored.timers.to_json())[0][::2] == sorted(engine.timers.to_json())[0][::2]
    assert len(restored.timers) == len(engine.timers)


def test_a_snapshot_in_the_older_form_still_restores() -> None:
    engine = _busy_engine()
    old = _stored(engine)
    state = old["rules"]["restless_night"]
    state["counts"] = _counts(engine).tolist()
    del state["counts_sparse"]
    old["timers"] = [list(t) for t in sorted(engine.timers.to_json())]
    restored = Engine.restore(PACK, directory(), old)
    assert np.array_equal(_counts(restored), _counts(engine))
    assert len(restored.timers) == len(engine.timers)
