"""Where the hub gets "now" from: the wall clock in production, a simulation's clock in demos and benchmarks.

In `clock.mode = "simulated"` the hub subscribes to `CLOCK_TOPIC` (retained, published by `vaka simulate`) and feeds
each message to `SimulatedClock.update_from_payload`. Between messages the clock runs on at the announced speed, so
absence, sequence and sustained rules fire in simulated time. Production uses `WallClock`, which nothing a device
sends can move: the hub never subscribes to the clock topic in wall mode.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import msgspec

from hub.model import TOPIC_ROOT

logger = logging.getLogger(__name__)

CLOCK_TOPIC = f"{TOPIC_ROOT}/_sim/clock"
MAX_SPEED = 1_000_000.0


class Clock(Protocol):
    """A source of the current time, always UTC and timezone-aware."""

    def now(self) -> datetime:
        """Return the current time."""
        ...


def clock_rate(clock: Clock) -> float:
    """How fast `clock` runs against the wall clock: 1 in production, a simulation's speed in a demo (0 until its
    first message)."""
    speed = getattr(clock, "speed", None)
    if speed is None:
        return 1.0
    synced = getattr(clock, "synced", True)
    return float(speed) if synced else 0.0


class WallClock:
    """The real time: production's only clock."""

    def now(self) -> datetime:
        """Return the wall-clock time in UTC."""
        return datetime.now(UTC)


class ClockMessage(msgspec.Struct):
    """Payload of `CLOCK_TOPIC`: the simulation's time and how fast it runs (0: only jumps between messages)."""

    now: datetime
    speed: float = 0.0


_decoder = msgspec.json.Decoder(ClockMessage)
_encoder = msgspec.json.Encoder()


def clock_payload(now: datetime, speed: float) -> bytes:
    """Encode a clock message as the simulator publishes it."""
    return _encoder.encode({"now": now.astimezone(UTC).isoformat(), "speed": speed})


class SimulatedClock:
    """Follows a simulation's clock messages; interpolates at their speed and never goes backwards.

    Before the first valid message `now()` returns `initial` (default: the wall time at construction), frozen.
    Interpolation runs at most `max_lead_s` simulated seconds past the last message, so a stalled simulator cannot
    drag the hub's time ahead of the events it has not sent yet. A message older than the current time keeps the
    current time (and adopts the new speed). Safe to call from any thread.
    """

    def __init__(
        self,
        initial: datetime | None = None,
        *,
        max_lead_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        start = initial if initial is not None else datetime.now(UTC)
        if start.tzinfo is None:
            msg = "initial time must be timezone-aware"
            raise ValueError(msg)
        self._monotonic = monotonic
        self._max_lead_s = max_lead_s
        self._lock = threading.Lock()
        self._anchor = start.astimezone(UTC)  # simulated time at _anchor_mono
        self._anchor_mono = monotonic()
        self._speed = 0.0
        self._last = self._anchor  # the latest time ever returned: the floor
        self._synced = False

    @property
    def synced(self) -> bool:
        """True once a valid clock message has arrived."""
        return self._synced

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second, as last announced."""
        return self._speed

    def now(self) -> datetime:
        """Return the simulated time: last message plus elapsed wall time times speed, never less than before."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> datetime:
        lead_s = min((self._monotonic() - self._anchor_mono) * self._speed, self._max_lead_s)
        current = self._anchor + timedelta(seconds=lead_s)
        if current > self._last:
            self._last = current
        return self._last

    def update_from_payload(self, payload: bytes) -> None:
        """Take a clock message; ignore anything that is not a valid, timezone-aware one with a sane speed."""
        try:
            msg = _decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            logger.warning("clock message ignored: not a clock payload")
            return
        if msg.now.tzinfo is None or not math.isfinite(msg.speed) or not 0.0 <= msg.speed <= MAX_SPEED:
            logger.warning("clock message ignored: naive time or bad speed")
            return
        self.set(msg.now, msg.speed)

    def set(self, now: datetime, speed: float) -> None:
        """Move to `now` (if later than the current time) and run on at `speed`."""
        with self._lock:
            current = self._now_locked()
            target = now.astimezone(UTC)
            self._anchor = max(target, current)
            self._anchor_mono = self._monotonic()
            self._speed = speed
            self._last = self._anchor
            self._synced = True


def make_clock(mode: str) -> WallClock | SimulatedClock:
    """The clock for `settings.clock.mode`: WallClock for "wall" (the default), SimulatedClock for "simulated"."""
    if mode == "simulated":
        return SimulatedClock()
    if mode == "wall":
        return WallClock()
    msg = f"unknown clock mode {mode!r}"
    raise ValueError(msg)
