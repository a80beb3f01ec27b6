"""Bybit v5's Disconnected Cancel All (DCP; bybit-exchange.github.io/docs/v5/order/dcp).

* ``POST /v5/order/disconnected-cancel-all``: ``timeWindow`` (integer seconds, mandatory, in [3, 300]) and
  ``product`` (``OPTIONS`` by default, ``DERIVATIVES``, ``SPOT``) set the window of one product; the answer is
  ``{"retCode": 0, "retMsg": "success"}`` (Bybit's example: no ``result``). Anything else is 10001.
* ``GET /v5/account/query-dcp-info``: ``{"dcpInfos": [{"product", "dcpStatus": "ON", "timeWindow": "<s>"}]}``, one row
  per configured product (an account with none: an empty list).
* The private websocket's ``dcp.future`` / ``dcp.spot`` / ``dcp.option`` topics (DERIVATIVES / SPOT / OPTIONS): "for
  those private connections subscribing "dcp" topic are all dead, then DCP will be triggered". The window starts when
  the last connection of the account subscribed to the product's topic goes (closed, or unsubscribed); a connection
  subscribing to it again within the window stops it ("the timing will be reset and restarted at the next
  disconnection"); past it, the account's open orders of the product are cancelled once, with ``cancelType``
  ``CancelByDCP``, and reported on the ``order`` topic of the account's other connections.

The deadlines are the core's countdown timers (``..countdown.Countdowns``, keyed by product instead of symbol), on the
exchange's clock (``SandboxExchange.now_ms``) and checked on every matcher tick, as the Binance dialect's
``countdownCancelAll``. What a lapse cancels is what ``/v5/order/cancel-all`` cancels for every symbol of the
category: the open orders and the linear conditional orders still waiting, not a position's TP/SL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..countdown import Countdowns
from .errors import params_error
from .wire import Success

if TYPE_CHECKING:
    from .rest import BybitServer, Call

PRODUCTS = ("SPOT", "DERIVATIVES", "OPTIONS")  # query-dcp-info lists them in this order (Bybit's example: SPOT first)
TOPICS = {"dcp.future": "DERIVATIVES", "dcp.spot": "SPOT", "dcp.option": "OPTIONS"}
CATEGORY = {"DERIVATIVES": "linear", "SPOT": "spot"}  # the sandbox lists no options: OPTIONS cancels nothing
LOWEST_S, HIGHEST_S = 3, 300
CANCEL_TYPE = "CancelByDCP"
Key = tuple[str, str]  # (api key, product)


@dataclass
class Dcp:
    """Every account's DCP state."""

    windows: dict[Key, int] = field(default_factory=dict)  # configured products -> timeWindow in seconds
    guarded: set[Key] = field(default_factory=set)  # products with a live connection subscribed to their topic
    lost_ms: dict[Key, int] = field(default_factory=dict)  # when the last such connection went (until one returns)
    timers: Countdowns = field(default_factory=Countdowns)  # (api key, product) -> when the orders are cancelled
    checked_ms: int = 0  # the exchange time of the last check of the timers (tests wait on it)
    # products Bybit's account manager has not enabled DCP for (every product of every account is, unless a test
    # adds it here): setting their window answers success and changes nothing, query-dcp-info leaves them out, their
    # topics arm nothing
    disabled: set[Key] = field(default_factory=set)

    def configure(self, api_key: str, product: str, seconds: int) -> None:
        key = (api_key, product)
        if key in self.disabled:
            return
        self.windows[key] = seconds
        if key in self.lost_ms:  # a window already running takes the new length, from the same disconnection
            self.timers.set(api_key, product, seconds * 1000, self.lost_ms[key])

    def infos(self, api_key: str) -> list[dict[str, str]]:
        return [
            {"product": p, "dcpStatus": "ON", "timeWindow": str(self.windows[(api_key, p)])}
            for p in PRODUCTS
            if (api_key, p) in self.windows
        ]

    def refresh(self, live: set[Key], now_ms: int) -> None:
        """The products guarded now (``live``): a product whose last connection has gone starts its window; one
        guarded again stops it."""
        for key in self.guarded - live:
            self.lost_ms[key] = now_ms
            if key in self.windows:
                self.timers.set(key[0], key[1], self.windows[key] * 1000, now_ms)
        for key in live:
            if self.lost_ms.pop(key, None) is not None:
                self.timers.set(key[0], key[1], 0, now_ms)
        self.guarded = set(live)

    def due(self, now_ms: int) -> list[Key]:
        """The windows that have run out, removed (a lapse fires once; the next disconnection starts a new one)."""
        self.checked_ms = now_ms
        out = self.timers.due(now_ms)
        for key in out:
            self.lost_ms.pop(key, None)
        return out


def set_window(server: BybitServer, c: Call) -> Success:
    """``POST /v5/order/disconnected-cancel-all``."""
    product = c.params.get("product") or "OPTIONS"
    if product not in PRODUCTS:
        raise params_error(f"params error: product must be one of OPTIONS, DERIVATIVES, SPOT, not {product!r}")
    raw = c.params.get("timeWindow")
    if raw in (None, ""):
        raise params_error("params error: timeWindow is required")
    try:
        seconds = int(str(raw))
    except ValueError:
        raise params_error("params error: timeWindow must be an integer") from None
    if not LOWEST_S <= seconds <= HIGHEST_S:
        raise params_error(f"params error: timeWindow must be in [{LOWEST_S}, {HIGHEST_S}]")
    server.dcp.configure(c.acct.api_key, product, seconds)
    return Success(bare=True)


def query(server: BybitServer, c: Call) -> Success:
    """``GET /v5/account/query-dcp-info``."""
    return Success({"dcpInfos": server.dcp.infos(c.acct.api_key)})


def expire(server: BybitServer) -> int:
    """Cancel the orders of every product whose window has run out; returns how many were cancelled."""
    n = 0
    for api_key, product in server.dcp.due(server.ex.now_ms()):
        acct = server.ex.accounts.get(api_key)
        category = CATEGORY.get(product)
        if acct is not None and category is not None:
            n += len(server.cancel_everything(acct, category, CANCEL_TYPE))
    return n
