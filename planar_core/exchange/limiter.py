"""Request pacing in front of every exchange call.

Four layers, each doing one thing:
* ccxt's own token-bucket throttle paces requests by endpoint cost; the engine
  configures it from ``rate_limits`` (see ``ccxt_rate_options``).
* ``OrderPacer`` spaces order submissions to ``orders_per_second`` with a burst
  allowance, so orders queue locally instead of drawing a 429.
* ``RequestWindow`` caps the count of requests per minute (``requests_per_minute``).
* ``WeightGuard`` takes the used weight the venue reads after each response (the server's
  view of our usage) and, after a 429/418, honours the server's backoff; when
  the server says we are near the limit it holds requests until the window rolls.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import RateLimits


def ccxt_rate_options(limits: RateLimits) -> dict[str, object]:
    """ccxt config: its rolling-window throttle with a budget of ``weight_per_minute`` cost units a minute.

    ccxt declares each Binance endpoint's cost in weight units; the window's budget is
    ``rollingWindowSize / rateLimit``, so rateLimit = 60 000 / weight_per_minute.
    """
    return {"enableRateLimit": True, "rateLimit": 60_000.0 / limits.weight_per_minute, "rollingWindowSize": 60_000.0}


@dataclass
class OrderPacer:
    rate: float
    burst: int
    _tokens: float = field(init=False)
    _last: float = field(init=False)
    _lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self._tokens = float(max(1, self.burst))
        self._last = time.monotonic()

    async def acquire(self) -> float:
        """Wait for an order slot; returns the seconds waited."""
        waited = 0.0
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(float(max(1, self.burst)), self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return waited
                delay = (1 - self._tokens) / self.rate
                waited += delay
                await asyncio.sleep(delay)


@dataclass
class WeightGuard:
    weight_per_minute: int
    headroom: float = 0.9
    used: int = 0
    resume_at: float = 0.0  # monotonic time before which no request is sent
    backoffs: int = 0

    async def wait(self) -> None:
        delay = self.resume_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def observe_used(self, used: int | None) -> None:
        """The weight the exchange says this minute has used (read by the venue from its response headers)."""
        if used is None:
            return
        self.used = used
        if self.used >= self.headroom * self.weight_per_minute:
            now = time.time()
            self.hold(60.0 - now % 60.0)  # the server's minute window rolls at the minute

    def observe_rate_limit(self, retry_after: float | None, attempt: int) -> float:
        """After a 429/418: hold for Retry-After, else exponential backoff; returns the hold."""
        delay = retry_after if retry_after else min(60.0, 0.5 * 2**attempt)
        self.hold(delay)
        self.backoffs += 1
        return delay

    def hold(self, seconds: float) -> None:
        self.resume_at = max(self.resume_at, time.monotonic() + seconds)


@dataclass
class RequestWindow:
    """At most ``per_minute`` requests in any 60 s (``rate_limits.requests_per_minute``), whatever their weight:
    a request over the count waits for the oldest one to leave the window."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], "asyncio.Future[None] | object"] = asyncio.sleep
    waits: int = 0
    _sent: deque[float] = field(default_factory=deque)

    async def acquire(self) -> None:
        while True:
            now = self.clock()
            while self._sent and self._sent[0] <= now - 60.0:
                self._sent.popleft()
            if len(self._sent) < self.per_minute:
                self._sent.append(now)
                return
            self.waits += 1
            await self.sleep(self._sent[0] + 60.0 - now)  # type: ignore[misc]
