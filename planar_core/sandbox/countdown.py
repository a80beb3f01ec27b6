"""Binance USDⓈ-M's dead-man's switch: ``POST /fapi/v1/countdownCancelAll``.

Binance: "Cancel all open orders of the specified symbol at the end of the specified countdown. The endpoint should
be called repeatedly as heartbeats so that the existing countdown time can be canceled and replaced by a new one"
(``countdownTime`` in milliseconds; 0 stops the timer; weight 10; the answer is ``{"symbol", "countdownTime"}``,
the time as a string). One timer per account and symbol: whoever calls last sets it.

The timers run on the exchange's clock (``SandboxExchange.now_ms``: the machine's clock, shifted by the clock-skew
fault), not on the price path's time, which the demo accelerates: Binance's countdown is real time. They are
checked on every matcher tick (50 ms; Binance checks "approximately every 10 milliseconds"). What a lapse cancels
is what ``DELETE /fapi/v1/allOpenOrders`` cancels here: the symbol's open orders in the matching engine, not the
Algo Service's conditional orders still waiting for their trigger (docs/sandbox.md says why this is a reading of
Binance's documentation, which does not say).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import errors as E

if TYPE_CHECKING:
    from .accounts import Account
    from .exchange import SandboxExchange


@dataclass
class Countdowns:
    """Armed timers: (account api key, symbol) -> deadline in exchange milliseconds."""

    deadlines: dict[tuple[str, str], int] = field(default_factory=dict)

    def set(self, api_key: str, symbol: str, countdown_ms: int, now_ms: int) -> None:
        """Arm (or re-arm) the timer of one symbol; 0 stops it."""
        if countdown_ms == 0:
            self.deadlines.pop((api_key, symbol), None)
        else:
            self.deadlines[(api_key, symbol)] = now_ms + countdown_ms

    def due(self, now_ms: int) -> list[tuple[str, str]]:
        """The timers that have run out, removed (a lapse fires once; the next call arms a new one)."""
        out = [key for key, deadline in self.deadlines.items() if deadline <= now_ms]
        for key in out:
            del self.deadlines[key]
        return out

    def of(self, api_key: str) -> dict[str, int]:
        """One account's armed timers: symbol -> deadline (the admin snapshot shows them)."""
        return {sym: deadline for (key, sym), deadline in self.deadlines.items() if key == api_key}


def countdown_time(raw: str | None) -> int:
    """``countdownTime``: mandatory, a non-negative integer of milliseconds."""
    if raw is None or raw == "":
        raise E.mandatory("countdownTime")
    try:
        value = int(raw)
    except ValueError:
        raise E.ApiError(400, -1100, "Illegal characters found in parameter 'countdownTime'; legal range is '^[0-9]{1,20}$'.") from None
    if value < 0:
        raise E.ApiError(400, -1130, "Invalid data sent for a parameter.")
    return value


def arm(ex: "SandboxExchange", acct: "Account", params: dict[str, str]) -> dict[str, str]:
    """``POST /fapi/v1/countdownCancelAll``: set the account's timer for the symbol; Binance's answer."""
    m = ex.market("linear", params.get("symbol"))
    ms = countdown_time(params.get("countdownTime"))
    ex.countdowns.set(acct.api_key, m.spec.symbol, ms, ex.now_ms())
    return {"symbol": m.spec.symbol, "countdownTime": str(ms)}


def expire(ex: "SandboxExchange") -> int:
    """Cancel the open orders of every symbol whose timer ran out (as ``allOpenOrders`` does, with its events on the
    user stream); returns how many orders were cancelled."""
    n = 0
    for api_key, symbol in ex.countdowns.due(ex.now_ms()):
        acct = ex.accounts.get(api_key)
        if acct is not None:
            n += len(ex.cancel_all(acct, "linear", symbol))
    return n
