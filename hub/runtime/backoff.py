"""One backoff for every retry loop: exponential, capped, with jitter so many clients do not retry in step."""

from __future__ import annotations

import asyncio
import random


class Backoff:
    """Delays that double from `min_s` up to `max_s`; each is drawn from [d/2, d] ("equal jitter")."""

    __slots__ = ("_next_s", "factor", "max_s", "min_s")

    def __init__(self, min_s: float, max_s: float, factor: float = 2.0) -> None:
        if not 0 < min_s <= max_s:
            msg = f"backoff needs 0 < min_s <= max_s, got {min_s} and {max_s}"
            raise ValueError(msg)
        self.min_s = min_s
        self.max_s = max_s
        self.factor = factor
        self._next_s = min_s

    def next_s(self) -> float:
        """The next delay, jittered; the one after it is longer, up to `max_s`."""
        delay = self._next_s
        self._next_s = min(delay * self.factor, self.max_s)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        """Success: start again from `min_s`."""
        self._next_s = self.min_s

    async def sleep(self) -> float:
        """Wait the next delay; returns how long it was."""
        delay = self.next_s()
        await asyncio.sleep(delay)
        return delay
