"""The hub's clocks: the wall clock by default, a simulation's clock only when asked for, never going backwards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.runtime.clock import CLOCK_TOPIC, SimulatedClock, WallClock, clock_payload, make_clock
from hub.settings import Settings

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)


class FakeMonotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


def sim_clock(max_lead_s: float = 60.0) -> tuple[SimulatedClock, FakeMonotonic]:
    mono = FakeMonotonic()
    return SimulatedClock(T0 - timedelta(days=1), max_lead_s=max_lead_s, monotonic=mono), mono


def test_wall_clock_is_the_default() -> None:
    clock = make_clock(Settings().clock.mode)
    assert isinstance(clock, WallClock)
    now = clock.now()
    assert now.tzinfo is not None
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=1)
    assert isinstance(make_clock("simulated"), SimulatedClock)
    assert CLOCK_TOPIC == "vaka/v1/_sim/clock"
    assert Settings().clock.topic == CLOCK_TOPIC  # the hub follows the simulator's default unless told otherwise


def test_follows_a_clock_message_and_runs_at_its_speed() -> None:
    clock, mono = sim_clock()
    clock.update_from_payload(clock_payload(T0, 60.0))
    assert clock.synced
    assert clock.now() == T0
    mono.value += 0.5
    assert clock.now() == T0 + timedelta(seconds=30)


def test_speed_zero_only_jumps_with_messages() -> None:
    clock, mono = sim_clock()
    clock.update_from_payload(clock_payload(T0, 0.0))
    mono.value += 100
    assert clock.now() == T0
    clock.update_from_payload(clock_payload(T0 + timedelta(hours=3), 0.0))
    assert clock.now() == T0 + timedelta(hours=3)


def test_a_stalled_simulator_cannot_drag_the_clock_far_ahead() -> None:
    clock, mono = sim_clock(max_lead_s=60.0)
    clock.update_from_payload(clock_payload(T0, 60.0))
    mono.value += 3600  # an hour of silence from the simulator
    assert clock.now() == T0 + timedelta(seconds=60)


def test_never_goes_backwards() -> None:
    clock, mono = sim_clock()
    clock.update_from_payload(clock_payload(T0, 60.0))
    mono.value += 0.5
    ahead = clock.now()
    clock.update_from_payload(clock_payload(T0 - timedelta(hours=2), 60.0))
    assert clock.now() == ahead
    mono.value += 0.5
    assert clock.now() == ahead + timedelta(seconds=30)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"garbage",
        b"[]",
        b'{"speed": 1}',
        b'{"now": "yesterday", "speed": 1}',
        b'{"now": "2026-11-27T03:00:00", "speed": 1}',  # naive: refused
        b'{"now": "2026-11-27T03:00:00Z", "speed": -1}',
        b'{"now": "2026-11-27T03:00:00Z", "speed": 1e400}',
        b'{"now": "2026-11-27T03:00:00Z", "speed": "fast"}',
        b"\xff\xfe\x00",
    ],
)
def test_ignores_garbage(payload: bytes) -> None:
    clock, mono = sim_clock()
    before = clock.now()
    clock.update_from_payload(payload)
    mono.value += 10
    assert not clock.synced
    assert clock.now() == before


def test_clock_payload_is_utc_json() -> None:
    payload = json.loads(clock_payload(datetime.fromisoformat("2026-11-26T22:00:00+01:00"), 60.0))
    assert payload == {"now": "2026-11-26T21:00:00+00:00", "speed": 60.0}


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=100),  # wall seconds passing
            st.integers(min_value=-7200, max_value=7200),  # message time relative to T0
            st.sampled_from([0.0, 1.0, 60.0, 3600.0]),
        ),
        max_size=30,
    )
)
def test_now_is_monotonic_whatever_arrives(steps: list[tuple[float, int, float]]) -> None:
    clock, mono = sim_clock()
    last = clock.now()
    for wall_s, offset_s, speed in steps:
        mono.value += wall_s
        assert clock.now() >= last
        last = clock.now()
        clock.update_from_payload(clock_payload(T0 + timedelta(seconds=offset_s), speed))
        assert clock.now() >= last
        last = clock.now()
