"""The collector kept out of the alarm path's tail (hub/runtime/heap.py): pauses are measured, start-up's heap is frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest

from hub.metrics import Metrics
from hub.runtime import heap


@pytest.fixture
def thawed() -> Iterator[None]:
    """Whatever a test freezes is unfrozen again (the test process must keep collecting its own garbage)."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def pause_count(metrics: Metrics, generation: str) -> float:
    value = metrics.registry.get_sample_value("vaka_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


def test_every_full_collection_shows_as_a_pause_on_the_metrics_page() -> None:
    metrics = Metrics()
    pauses = heap.GcPauses(metrics)
    try:
        gc.collect()
        gc.collect()
    finally:
        pauses.close()
    assert pause_count(metrics, "2") == 2
    assert b'vaka_gc_pause_seconds_bucket{generation="2",le="+Inf"} 2.0' in generate_latest(metrics.registry)
    gc.collect()  # closed: no longer counted
    assert pause_count(metrics, "2") == 2


@pytest.mark.usefixtures("thawed")
def test_what_is_alive_at_start_is_no_longer_walked_by_a_full_collection() -> None:
    inventory = [{"device": f"d-{n}", "room": [n]} for n in range(20_000)]
    assert any(o is inventory for o in gc.get_objects())
    frozen = heap.freeze_long_lived()
    assert frozen >= len(inventory)
    assert not any(o is inventory for o in gc.get_objects())  # in the permanent generation, which no collection walks
    collected_later = [[n] for n in range(100)]
    assert any(o is collected_later for o in gc.get_objects())


@pytest.mark.usefixtures("thawed")
def test_young_collections_are_rarer_after_tuning() -> None:
    heap.tune_collector()
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD > 700
