"""Bybit v5's rate limits (bybit-exchange.github.io/docs/v5/rate-limit).

* Per IP: 600 requests in any 5-second window, for every path; over it Bybit answers HTTP 403 "access too frequent"
  (and asks the client to wait 10 minutes; the sandbox refuses until the window has room again).
* Per UID and endpoint ("the rolling time window per second and UID"): each private endpoint has its own limit per
  second; every private answer carries ``X-Bapi-Limit`` (the limit), ``X-Bapi-Limit-Status`` (requests left) and
  ``X-Bapi-Limit-Reset-Timestamp`` (when the window has room again; "otherwise the current timestamp"). Over it:
  retCode 10006 "Too many visits!".

Both windows roll (a request counts for exactly the window's length after it), as Bybit's page says.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# path -> (linear limit, spot limit) per second and UID, Bybit's table for unified accounts
PER_SECOND: dict[str, tuple[int, int]] = {
    "/v5/order/create": (10, 20),
    "/v5/order/amend": (10, 20),
    "/v5/order/cancel": (10, 20),
    "/v5/order/cancel-all": (10, 20),
    "/v5/order/realtime": (50, 50),
    "/v5/order/history": (50, 50),
    "/v5/execution/list": (50, 50),
    "/v5/position/list": (50, 50),
    "/v5/position/set-leverage": (10, 10),
    "/v5/account/wallet-balance": (50, 50),
    "/v5/account/fee-rate": (10, 5),
    "/v5/order/disconnected-cancel-all": (5, 5),
}
DEFAULT_PER_SECOND = 50


@dataclass
class BybitLimits:
    ip_per_5s: int = 600
    scale: float = 1.0  # multiplies every per-UID limit (tests raise it)


@dataclass
class BybitLimiter:
    limits: BybitLimits = field(default_factory=BybitLimits)
    ip_hits: dict[str, deque[int]] = field(default_factory=dict)
    uid_hits: dict[tuple[str, str], deque[int]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def _roll(hits: deque[int], now: int, span: int) -> None:
        while hits and hits[0] <= now - span:
            hits.popleft()

    def charge_ip(self, ip: str, now: int) -> bool:
        """Count a request of ``ip``; False when the IP is over its 5-second window."""
        hits = self.ip_hits.setdefault(ip, deque())
        self._roll(hits, now, 5000)
        if len(hits) >= self.limits.ip_per_5s:
            self.refused["403 ip"] = self.refused.get("403 ip", 0) + 1
            return False
        hits.append(now)
        return True

    def limit_of(self, path: str, category: str) -> int:
        linear, spot = PER_SECOND.get(path, (DEFAULT_PER_SECOND, DEFAULT_PER_SECOND))
        return max(1, int((spot if category == "spot" else linear) * self.limits.scale))

    def charge_uid(self, uid: str, path: str, category: str, now: int) -> tuple[bool, dict[str, str]]:
        """Count a private request; (allowed, the X-Bapi-Limit* headers)."""
        limit = self.limit_of(path, category)
        hits = self.uid_hits.setdefault((uid, f"{path}:{category}"), deque())
        self._roll(hits, now, 1000)
        allowed = len(hits) < limit
        if allowed:
            hits.append(now)
        else:
            self.refused["10006"] = self.refused.get("10006", 0) + 1
        reset = hits[0] + 1000 if not allowed and hits else now
        return allowed, {
            "X-Bapi-Limit": str(limit),
            "X-Bapi-Limit-Status": str(max(0, limit - len(hits))),
            "X-Bapi-Limit-Reset-Timestamp": str(reset),
        }
