"""The engine's clock: wall time for timestamps, monotonic time for intervals.

A protocol so a unit test can hand the engine a clock it moves by hand (no sleeps, no timing thresholds); the
engine uses the real one unless told otherwise.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (wall time)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (intervals, deadlines)."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


def now_ms(clock: Clock) -> int:
    """The clock's wall time in milliseconds."""
    return int(clock.time() * 1000)
