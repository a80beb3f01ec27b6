"""Request-weight and order-rate limits as Binance documents them (429, then 418 with escalating bans).

Binance's rules (developers.binance.com, "LIMITS" of the spot and USDⓈ-M REST APIs), followed here:

* Request weight is counted **per IP** ("the limits on the API are based on the IPs, not the API keys"), separately
  for each API: spot ``/api`` (6000 a minute), USDⓈ-M ``/fapi`` (2400 a minute) and ``/sapi`` (12 000 a minute, its
  own header ``X-SAPI-USED-IP-WEIGHT-1M``, never a ban). COIN-M ``/dapi`` and options ``/eapi`` (2400 a minute each)
  have budgets of their own too; the sandbox lists nothing on them but answers their ``exchangeInfo``. Every answer
  carries ``X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)``.
* New orders are counted **per account** (shared by every IP and API key of it): spot 100 per 10 s and 200 000 a
  day, USDⓈ-M 300 per 10 s and 1200 a minute; a successful order answer carries ``X-MBX-ORDER-COUNT-*`` for each
  interval. Spot counts *unfilled* orders: an order's first fill takes it off the count of every interval.
* Intervals are fixed and clock-aligned, not sliding: "a 1 MINUTE interval starts every minute ... once the
  00:02:00 minute starts, the count will reset to zero again".
* Over the weight limit: 429 with ``Retry-After`` (seconds until the interval ends). Over an order limit: 429
  ``-1015`` without ``Retry-After``. Repeated 429s (``violations_before_ban`` within a minute) ban the IP: 418 with
  ``Retry-After`` until the ban ends, and "IP bans are tracked and scale in duration for repeat offenders, from 2
  minutes to 3 days" (here: ``ban_seconds`` doubled at each new ban, at most ``ban_max_seconds``).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from .errors import ApiError

SECOND, MINUTE, DAY = 1000, 60_000, 86_400_000
LETTERS = ((DAY, "DAY", "D"), (3_600_000, "HOUR", "H"), (MINUTE, "MINUTE", "M"), (SECOND, "SECOND", "S"))
# (method, path) -> weight, as Binance documents it; unknown endpoints weigh 1. "*" applies to any method.
WEIGHTS: dict[tuple[str, str], int] = {
    ("*", "/api/v3/exchangeInfo"): 20,
    ("*", "/api/v3/klines"): 2,
    ("*", "/api/v3/trades"): 25,
    ("*", "/api/v3/aggTrades"): 2,
    ("*", "/api/v3/avgPrice"): 2,
    ("*", "/api/v3/ticker/24hr"): 2,
    ("*", "/api/v3/ticker/price"): 2,
    ("*", "/api/v3/ticker/bookTicker"): 2,
    ("*", "/api/v3/account"): 20,
    ("*", "/api/v3/userDataStream"): 2,
    ("GET", "/api/v3/order"): 4,
    ("GET", "/api/v3/openOrders"): 6,
    ("*", "/api/v3/allOrders"): 20,
    ("*", "/api/v3/myTrades"): 20,
    ("*", "/fapi/v1/exchangeInfo"): 1,
    ("*", "/dapi/v1/exchangeInfo"): 1,
    ("*", "/eapi/v1/exchangeInfo"): 1,
    ("*", "/sapi/v1/margin/allPairs"): 1,
    ("*", "/sapi/v1/margin/isolated/allPairs"): 10,
    ("*", "/sapi/v1/capital/config/getall"): 10,
    ("*", "/fapi/v1/aggTrades"): 20,
    ("*", "/fapi/v2/account"): 5,
    ("*", "/fapi/v3/account"): 5,
    ("*", "/fapi/v2/balance"): 5,
    ("*", "/fapi/v3/balance"): 5,
    ("*", "/fapi/v2/positionRisk"): 5,
    ("*", "/fapi/v3/positionRisk"): 5,
    ("*", "/fapi/v1/allOrders"): 5,
    ("*", "/fapi/v1/userTrades"): 5,
    ("*", "/fapi/v1/income"): 30,
    ("GET", "/fapi/v1/positionSide/dual"): 30,
    ("GET", "/fapi/v1/openOrders"): 1,
    ("POST", "/fapi/v1/order"): 0,  # "0 on IP rate limit": new futures orders count on the order limits only
    ("POST", "/fapi/v1/countdownCancelAll"): 10,
}
# (method, path) -> (weight without a symbol: Binance's "all symbols" weight)
WITHOUT_SYMBOL: dict[tuple[str, str], int] = {
    ("GET", "/api/v3/openOrders"): 80,
    ("GET", "/api/v3/ticker/24hr"): 80,
    ("GET", "/api/v3/ticker/price"): 4,
    ("GET", "/api/v3/ticker/bookTicker"): 4,
    ("GET", "/fapi/v1/openOrders"): 40,
    ("GET", "/fapi/v1/ticker/24hr"): 40,
    ("GET", "/fapi/v1/ticker/price"): 2,
    ("GET", "/fapi/v2/ticker/price"): 2,
    ("GET", "/fapi/v1/ticker/bookTicker"): 5,
    ("GET", "/fapi/v1/premiumIndex"): 10,
}
# path -> ((up to limit, weight), ...): weights that grow with the ``limit`` asked for (the default when absent)
BY_LIMIT: dict[str, tuple[tuple[int, int], ...]] = {
    "/api/v3/depth": ((100, 5), (500, 25), (1000, 50), (5000, 250)),
    "/fapi/v1/depth": ((50, 2), (100, 5), (500, 10), (1000, 20)),
    "/fapi/v1/klines": ((99, 1), (499, 2), (1000, 5), (1500, 10)),
}
DEFAULT_LIMIT = {"/api/v3/depth": 100, "/fapi/v1/depth": 500, "/fapi/v1/klines": 500}


def weight_of(method: str, path: str, query: Mapping[str, str] | None = None) -> int:
    """The request weight Binance documents for a request (by its symbol and ``limit`` where they change it)."""
    query = query or {}
    if path in BY_LIMIT:
        try:
            limit = int(query.get("limit") or DEFAULT_LIMIT[path])
        except ValueError:
            limit = DEFAULT_LIMIT[path]
        return next((w for top, w in BY_LIMIT[path] if limit <= top), BY_LIMIT[path][-1][1])
    if path == "/api/v3/order/test" and str(query.get("computeCommissionRates", "")).lower() == "true":
        return 20  # rest-api.md: 1 without computeCommissionRates, 20 with it
    if "symbol" not in query and "symbols" not in query and (method, path) in WITHOUT_SYMBOL:
        return WITHOUT_SYMBOL[(method, path)]
    return WEIGHTS.get((method, path), WEIGHTS.get(("*", path), 1))


# the APIs with a weight budget of their own, by path prefix (anything else is spot's ``api``)
FAMILIES = ("fapi", "sapi", "dapi", "eapi")
# a market kind -> the API of its exchangeInfo
KIND_FAMILY = {"spot": "api", "linear": "fapi", "inverse": "dapi", "option": "eapi"}
DERIVATIVES = ("fapi", "dapi", "eapi")


def family_of(path: str) -> str:
    """The API a path belongs to, each with a weight budget of its own: ``api`` (spot), ``fapi``, ``sapi``, ``dapi``,
    ``eapi``."""
    return next((f for f in FAMILIES if path.startswith(f"/{f}/")), "api")


def interval_of(span_ms: int) -> tuple[str, int, str]:
    """Binance's name of an interval: (interval, intervalNum, header suffix), e.g. 10 s -> ("SECOND", 10, "10S")."""
    for unit, name, letter in LETTERS:
        if span_ms % unit == 0:
            return name, span_ms // unit, f"{span_ms // unit}{letter}"
    raise ValueError(f"interval of {span_ms} ms is not a whole number of seconds")


class Limits(BaseModel):
    """Binance's published defaults; tests and benchmarks raise (or shorten) them. A futures limit left at None is
    the spot one scaled by Binance's own ratio (weight x0.4, orders per 10 s x3, per minute x12), so raising the spot
    limits raises both."""

    model_config = ConfigDict(extra="forbid")

    weight_per_minute: int = Field(6000, gt=0, description="spot request weight per IP per weight interval")
    orders_per_10s: int = Field(100, gt=0, description="spot new orders per account per 10 s")
    orders_per_day: int | None = Field(None, gt=0, description="spot new orders per account per day (None: 2000x orders_per_10s)")
    futures_weight_per_minute: int | None = Field(None, gt=0, description="USDⓈ-M request weight (None: 0.4x weight_per_minute)")
    futures_orders_per_10s: int | None = Field(None, gt=0, description="USDⓈ-M new orders per 10 s (None: 3x orders_per_10s)")
    futures_orders_per_minute: int | None = Field(None, gt=0, description="USDⓈ-M new orders per minute (None: 12x orders_per_10s)")
    weight_interval_s: int = Field(
        60, gt=0, description="the REQUEST_WEIGHT interval (Binance: one minute; tests shorten it; exchangeInfo and headers say it)"
    )
    violations_before_ban: int = Field(5, ge=1, description="429s within a minute before a 418 ban")
    ban_seconds: float = Field(120.0, ge=0, description="the first ban (Binance: 2 minutes); each later ban of the IP doubles")
    ban_max_seconds: float = Field(259_200.0, ge=0, description="the longest ban (Binance: 3 days)")

    def weight_limit(self, family: str) -> int:
        """Request weight per interval of an API: Binance's USDⓈ-M, COIN-M and options limits are one figure (2400)."""
        if family in DERIVATIVES:
            return self.futures_weight_per_minute or max(1, self.weight_per_minute * 2 // 5)
        if family == "sapi":
            return self.weight_per_minute * 2
        return self.weight_per_minute

    def order_limits(self, family: str) -> dict[int, int]:
        """Interval (ms) -> new orders allowed per account (COIN-M and options: 1200 a minute, published only, as
        the sandbox takes no orders there)."""
        if family in ("dapi", "eapi"):
            return {MINUTE: self.futures_orders_per_minute or self.orders_per_10s * 12}
        if family == "fapi":
            return {
                10 * SECOND: self.futures_orders_per_10s or self.orders_per_10s * 3,
                MINUTE: self.futures_orders_per_minute or self.orders_per_10s * 12,
            }
        return {10 * SECOND: self.orders_per_10s, DAY: self.orders_per_day or self.orders_per_10s * 2000}

    def rate_limits(self, kind: str) -> list[dict[str, object]]:
        """exchangeInfo's ``rateLimits`` of a market kind (spot | linear | inverse | option)."""
        family = KIND_FAMILY[kind]
        name, num, _ = interval_of(self.weight_interval_s * SECOND)
        out: list[dict[str, object]] = [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": name, "intervalNum": num, "limit": self.weight_limit(family)}
        ]
        for span, limit in self.order_limits(family).items():
            name, num, _ = interval_of(span)
            out.append({"rateLimitType": "ORDERS", "interval": name, "intervalNum": num, "limit": limit})
        return out


@dataclass
class Interval:
    """A fixed, clock-aligned interval's counter: it resets when the next interval starts."""

    span_ms: int
    index: int = -1
    count: int = 0

    def used(self, now_ms: int) -> int:
        if now_ms // self.span_ms != self.index:
            self.index, self.count = now_ms // self.span_ms, 0
        return self.count

    def add(self, now_ms: int, amount: int) -> None:
        self.count = self.used(now_ms) + amount

    def left_ms(self, now_ms: int) -> int:
        return (now_ms // self.span_ms + 1) * self.span_ms - now_ms


@dataclass
class RateLimiter:
    limits: Limits = field(default_factory=Limits)
    weight: dict[tuple[str, str], Interval] = field(default_factory=dict)  # (IP, family)
    orders: dict[tuple[str, str], dict[int, Interval]] = field(default_factory=dict)  # (account, family) -> span
    violations: dict[tuple[str, str], deque[int]] = field(default_factory=dict)  # (IP, family) -> times of 429s
    bans: Counter[tuple[str, str]] = field(default_factory=Counter)  # (IP, family) -> bans so far
    banned_until: dict[tuple[str, str], int] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)  # "429 weight", "429 orders", "418"

    def _weight(self, ip: str, family: str) -> Interval:
        span = self.limits.weight_interval_s * SECOND
        win = self.weight.get((ip, family))
        if win is None or win.span_ms != span:
            win = self.weight[(ip, family)] = Interval(span)
        return win

    def charge(self, ip: str, family: str, weight: int, now_ms: int) -> int:
        """Count a request; raise 429/418 as Binance does. Returns the used weight of the interval."""
        key = (ip, family)
        until = self.banned_until.get(key, 0)
        if now_ms < until:
            self.refused["418"] += 1
            raise RateLimited(418, -1003, f"Way too much request weight used; IP banned until {until}.", until - now_ms)
        win = self._weight(ip, family)
        used = win.used(now_ms)
        limit = self.limits.weight_limit(family)
        if used + weight > limit:
            self.refused["429 weight"] += 1
            self._violation(key, now_ms)
            _, _, suffix = interval_of(win.span_ms)
            raise RateLimited(
                429, -1003, f"Too much request weight used; current limit is {limit} request weight per {suffix}.", win.left_ms(now_ms)
            )
        win.add(now_ms, weight)
        return used + weight

    def weight_header(self, family: str) -> str:
        _, _, suffix = interval_of(self.limits.weight_interval_s * SECOND)
        return f"X-SAPI-USED-IP-WEIGHT-{suffix}" if family == "sapi" else f"X-MBX-USED-WEIGHT-{suffix}"

    def _order_windows(self, account: str, family: str) -> dict[int, Interval]:
        spans = self.limits.order_limits(family)
        wins = self.orders.setdefault((account, family), {})
        for span in spans:
            wins.setdefault(span, Interval(span))
        for span in [s for s in wins if s not in spans]:
            del wins[span]
        return wins

    def charge_order(self, account: str, family: str, ip: str, now_ms: int, count: int = 1) -> None:
        """Count ``count`` new orders of an account (an OCO list is two); 429 ``-1015`` over any interval's limit."""
        limits = self.limits.order_limits(family)
        wins = self._order_windows(account, family)
        for span, win in wins.items():
            if win.used(now_ms) + count > limits[span]:
                self.refused["429 orders"] += 1
                self._violation((ip, family), now_ms)
                _, _, suffix = interval_of(span)
                raise RateLimited(429, -1015, f"Too many new orders; current limit is {limits[span]} orders per {suffix}.", None)
        for win in wins.values():
            win.add(now_ms, count)

    def order_filled(self, account: str, family: str, now_ms: int) -> None:
        """Spot counts unfilled orders: an order's first fill takes one off every interval's count (never below 0)."""
        if family != "api":
            return
        for win in self._order_windows(account, family).values():
            win.count = max(0, win.used(now_ms) - 1)

    def order_headers(self, account: str, family: str, now_ms: int) -> dict[str, str]:
        """``X-MBX-ORDER-COUNT-*`` of a successful order answer, one per interval."""
        return {
            f"X-MBX-ORDER-COUNT-{interval_of(span)[2]}": str(win.used(now_ms))
            for span, win in sorted(self._order_windows(account, family).items())
        }

    def used_weight(self, ip: str, now_ms: int, family: str = "api") -> int:
        return self._weight(ip, family).used(now_ms)

    def used_orders(self, account: str, now_ms: int, family: str = "api", span_ms: int = 10 * SECOND) -> int:
        return self._order_windows(account, family)[span_ms].used(now_ms)

    def report(self, now_ms: int) -> dict[str, object]:
        """What the admin API shows: refusals by kind, bans per IP and API, weight used now."""
        return {
            "refused": dict(self.refused),
            "bans": {f"{ip} {fam}": n for (ip, fam), n in self.bans.items()},
            "banned_until": {f"{ip} {fam}": t for (ip, fam), t in self.banned_until.items() if t > now_ms},
            "weight": {f"{ip} {fam}": w.used(now_ms) for (ip, fam), w in self.weight.items()},
        }

    def _violation(self, key: tuple[str, str], now_ms: int) -> None:
        if key[1] == "sapi":  # /sapi answers 429 only, never bans
            return
        times = self.violations.setdefault(key, deque())
        times.append(now_ms)
        while times and times[0] <= now_ms - MINUTE:
            times.popleft()
        if len(times) >= self.limits.violations_before_ban:
            seconds = min(self.limits.ban_max_seconds, self.limits.ban_seconds * 2 ** self.bans[key])
            self.bans[key] += 1
            self.banned_until[key] = now_ms + int(seconds * 1000)
            times.clear()


class RateLimited(ApiError):
    """A refusal for rate; ``retry_after_s`` None: Binance sends no ``Retry-After`` (the order-count 429)."""

    def __init__(self, status: int, code: int, msg: str, retry_after_ms: int | None) -> None:
        super().__init__(status, code, msg)
        self.retry_after_s = None if retry_after_ms is None else max(1, int(retry_after_ms / 1000 + 0.999))
