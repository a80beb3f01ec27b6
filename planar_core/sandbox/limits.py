"""Request-weight and order-rate limits as Binance enforces them (429, then 418)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from .errors import ApiError

# (method, path) -> weight; unknown endpoints weigh 1. "*" applies to any method.
WEIGHTS: dict[tuple[str, str], int] = {
    ("*", "/api/v3/exchangeInfo"): 20,
    ("*", "/api/v3/depth"): 5,
    ("*", "/api/v3/klines"): 2,
    ("*", "/api/v3/trades"): 25,
    ("*", "/api/v3/ticker/24hr"): 2,
    ("*", "/api/v3/ticker/price"): 2,
    ("*", "/api/v3/account"): 20,
    ("GET", "/api/v3/order"): 4,
    ("GET", "/api/v3/openOrders"): 6,
    ("*", "/api/v3/allOrders"): 20,
    ("*", "/api/v3/myTrades"): 20,
    ("*", "/fapi/v1/exchangeInfo"): 1,
    ("*", "/fapi/v1/klines"): 5,
    ("*", "/fapi/v1/depth"): 5,
    ("*", "/fapi/v2/account"): 5,
    ("*", "/fapi/v3/account"): 5,
    ("*", "/fapi/v2/positionRisk"): 5,
    ("*", "/fapi/v3/positionRisk"): 5,
    ("*", "/fapi/v1/allOrders"): 5,
    ("*", "/fapi/v1/userTrades"): 5,
    ("GET", "/fapi/v1/openOrders"): 1,
    ("POST", "/fapi/v1/countdownCancelAll"): 10,
}


def weight_of(method: str, path: str) -> int:
    return WEIGHTS.get((method, path), WEIGHTS.get(("*", path), 1))


class Limits(BaseModel):
    """Binance spot's published defaults; tests and benchmarks raise them."""

    model_config = ConfigDict(extra="forbid")

    weight_per_minute: int = Field(6000, gt=0)
    orders_per_10s: int = Field(100, gt=0)
    violations_before_ban: int = Field(5, ge=1, description="429s within a minute before a 418 ban")
    ban_seconds: float = Field(30.0, ge=0)


@dataclass
class Window:
    """A sliding window of (time, amount) entries."""

    span_ms: int
    entries: deque[tuple[int, int]] = field(default_factory=deque)
    total: int = 0

    def used(self, now_ms: int) -> int:
        while self.entries and self.entries[0][0] <= now_ms - self.span_ms:
            self.total -= self.entries.popleft()[1]
        return self.total

    def add(self, now_ms: int, amount: int) -> None:
        self.entries.append((now_ms, amount))
        self.total += amount


@dataclass
class RateLimiter:
    limits: Limits = field(default_factory=Limits)
    weight: dict[str, Window] = field(default_factory=dict)  # per IP
    orders: dict[str, Window] = field(default_factory=dict)  # per account
    violations: dict[str, Window] = field(default_factory=dict)
    banned_until: dict[str, int] = field(default_factory=dict)

    def charge(self, ip: str, weight: int, now_ms: int) -> int:
        """Count a request; raise 429/418 as Binance does. Returns the used weight."""
        until = self.banned_until.get(ip, 0)
        if now_ms < until:
            raise RateLimited(418, -1003, f"Way too much request weight used; IP banned until {until}.", until - now_ms)
        win = self.weight.setdefault(ip, Window(60_000))
        used = win.used(now_ms)
        if used + weight > self.limits.weight_per_minute:
            self._violation(ip, now_ms)
            raise RateLimited(
                429,
                -1003,
                f"Too much request weight used; current limit is {self.limits.weight_per_minute} request weight per 1 MINUTE.",
                60_000 - (now_ms - win.entries[0][0]) if win.entries else 1000,
            )
        win.add(now_ms, weight)
        return used + weight

    def charge_order(self, account: str, ip: str, now_ms: int) -> int:
        win = self.orders.setdefault(account, Window(10_000))
        used = win.used(now_ms)
        if used + 1 > self.limits.orders_per_10s:
            self._violation(ip, now_ms)
            raise RateLimited(
                429,
                -1015,
                f"Too many new orders; current limit is {self.limits.orders_per_10s} orders per 10 SECOND.",
                10_000 - (now_ms - win.entries[0][0]) if win.entries else 1000,
            )
        win.add(now_ms, 1)
        return used + 1

    def used_weight(self, ip: str, now_ms: int) -> int:
        return self.weight.setdefault(ip, Window(60_000)).used(now_ms)

    def used_orders(self, account: str, now_ms: int) -> int:
        return self.orders.setdefault(account, Window(10_000)).used(now_ms)

    def _violation(self, ip: str, now_ms: int) -> None:
        win = self.violations.setdefault(ip, Window(60_000))
        win.add(now_ms, 1)
        if win.used(now_ms) >= self.limits.violations_before_ban:
            self.banned_until[ip] = now_ms + int(self.limits.ban_seconds * 1000)
            win.entries.clear()
            win.total = 0


class RateLimited(ApiError):
    def __init__(self, status: int, code: int, msg: str, retry_after_ms: int) -> None:
        super().__init__(status, code, msg)
        self.retry_after_s = max(1, int(retry_after_ms / 1000 + 0.999))
