"""One-shot callbacks after a delay on the engine's clock (an execution policy's limit order that rests too long).

Live and paper: the event loop's timer, which runs on the same wall clock as the engine. A driven run (a backtest)
moves a simulated clock that the event loop knows nothing of: a timer there is due when the *simulated* time passes
it, so they wait here until the driver, moving the clock, runs the ones due (``next_due`` / ``run_due``). On the
loop's timer a backtest's 60 s limit expiry would fire after 60 s of the machine's time, whatever the simulated
time did (never, in a run that takes less; somewhere random in a longer one).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable

from ..model.clock import Clock


class Timers:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.driven = False  # Strategy.run_driven: the driver moves the clock and runs what is due
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def after(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` once ``delay`` seconds of the engine's clock have passed."""
        if not self.driven:
            asyncio.get_running_loop().call_later(max(0.0, delay), callback)
            return
        heapq.heappush(self._due, (self.clock.monotonic() + max(0.0, delay), next(self._seq), callback))

    def next_due_ms(self) -> int | None:
        """The simulated time (ms) of the next timer, None if none waits (driven runs)."""
        return math.ceil(self._due[0][0] * 1000) if self._due else None  # not before it is due

    def run_due(self) -> int:
        """Run every timer the clock has passed, in time order; returns how many ran."""
        now = self.clock.monotonic()
        ran = 0
        while self._due and self._due[0][0] <= now:
            heapq.heappop(self._due)[2]()
            ran += 1
        return ran
