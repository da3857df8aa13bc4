"""The one backoff: doubling, capped, jittered, reset on success."""

from __future__ import annotations

import pytest

from hub.runtime.backoff import Backoff


def test_delays_double_up_to_the_cap_each_within_its_jitter_band() -> None:
    backoff = Backoff(0.1, 1.0)
    bands = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    for band in bands:
        assert band / 2 <= backoff.next_s() <= band


def test_delays_are_jittered_so_clients_do_not_retry_in_step() -> None:
    delays = {Backoff(1.0, 1.0).next_s() for _ in range(50)}
    assert len(delays) > 40


def test_reset_starts_again_from_the_shortest_delay() -> None:
    backoff = Backoff(0.5, 10.0)
    for _ in range(5):
        backoff.next_s()
    backoff.reset()
    assert backoff.next_s() <= 0.5


def test_a_backoff_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError, match="min_s <= max_s"):
        Backoff(2.0, 1.0)
