"""Request pacing in front of every exchange call.

Layers, each doing one thing:
* The host's request budgets (``budget.py``, through ``StrictBinance.fetch2``): every REST request reserves its
  weight (ccxt's declared cost per endpoint, in Binance's weight units) from one budget per IP and API, and its new
  orders from one budget per account, shared by every process on the host; the exchange's own counts (response
  headers) correct them, and a 429/418's Retry-After holds every process. ``rate_limits.shared_budget = false``
  keeps the same budgets in this process only.
* ccxt's own throttle paces websocket messages (REST requests no longer go through it when the budgets do).
* ``OrderPacer`` spaces order submissions to ``orders_per_second`` with a burst
  allowance, so orders queue locally instead of drawing a 429.
* ``RequestWindow`` caps the count of requests per minute (``requests_per_minute``): a cap of the engine's own,
  which never delays an emergency stop (``urgent()``).
* ``WeightGuard`` records the used weight the venue reads after each response and, after a 429/418, honours the
  server's backoff in this process; without the budgets it also holds requests near the limit until the window rolls.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from ..config import RateLimits


def ccxt_rate_options(limits: RateLimits) -> dict[str, object]:
    """ccxt config: its rolling-window throttle with a budget of ``weight_per_minute`` cost units a minute.

    With the host's budgets in place (``StrictBinance.pacer``) it paces only websocket messages (ccxt's websocket
    clients share this configuration); REST requests reserve from the budgets instead, where ccxt's declared cost is
    converted to Binance's weight per API (``binance.WEIGHT_PER_COST``: ccxt scales spot costs to 0.2 per weight unit).
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
                if self._tokens >= 1 - 1e-9:  # a wait of exactly the shortfall refills to 0.99999...: not another wait
                    self._tokens = max(0.0, self._tokens - 1)
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

    def observe_used(self, used: int | None, hold: bool = True) -> None:
        """The weight the exchange says this minute has used (read by the venue from its response headers);
        ``hold`` False: only recorded (the host's budgets pace, and keep headroom for orders a hold would block)."""
        if used is None:
            return
        self.used = used
        if hold and self.used >= self.headroom * self.weight_per_minute:
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


URGENT: ContextVar[bool] = ContextVar("planar_urgent", default=False)  # set by ``urgent()``


@contextlib.contextmanager
def urgent() -> Iterator[None]:
    """The requests of the block (and of the tasks it starts) are an emergency stop's: the engine's own cap on their
    count (``RequestWindow``) counts them but never delays them. The exchange's limits still pace them (the host's
    weight budgets, a 429's hold): those the exchange enforces, a cap of our own it does not."""
    token = URGENT.set(True)
    try:
        yield
    finally:
        URGENT.reset(token)


class WindowSpent(Exception):
    """Not sent: the request cap stays spent longer than the request may wait. ``retry_after``: seconds until a
    place frees."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"requests_per_minute is spent for {retry_after:.1f}s more")
        self.retry_after = retry_after


@dataclass
class RequestWindow:
    """At most ``per_minute`` requests in any 60 s (``rate_limits.requests_per_minute``), whatever their weight:
    a request over the count waits for the oldest one to leave the window, or, given ``max_wait``, is refused
    (``WindowSpent``) when that is longer: an order sent a minute after it was asked for would be a stale order.
    An urgent request (``urgent()``) is counted and never waits."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], "asyncio.Future[None] | object"] = asyncio.sleep
    waits: int = 0
    _sent: deque[float] = field(default_factory=deque)

    async def acquire(self, max_wait: float | None = None) -> None:
        waited = 0.0
        while True:
            now = self.clock()
            while self._sent and self._sent[0] <= now - 60.0:
                self._sent.popleft()
            if len(self._sent) < self.per_minute or URGENT.get():
                self._sent.append(now)
                return
            wait = self._sent[0] + 60.0 - now
            if max_wait is not None and waited + wait > max_wait:
                raise WindowSpent(wait)
            self.waits += 1
            await self.sleep(wait)  # type: ignore[misc]
            waited += wait
