"""Operations on a halted or running strategy that a person or a schedule starts: the daily reset and re-arming.

Both run in a helper process on a strategy loaded with ``engine.sync.load_account`` (markets, balances,
positions, prices; no watchers), so they act on the equity the exchange shows now. The flows only wrap them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ..exchange.client_ids import claimed
from ..exchange.errors import ExchangeOpError
from ..state import UNFINISHED_STOP
from . import metrics as M
from .manager import utc_day

if TYPE_CHECKING:
    from ..engine.strategy import Strategy

log = logging.getLogger("planar.risk.operations")


class RearmRefused(RuntimeError):
    """Re-arming now would trade beside something the emergency stop could not settle."""


@dataclass
class DailyReset:
    day: str | None  # the day that ended
    day_start_equity: float | None
    day_end_equity: float
    pnl: float | None
    cleared_breaker: bool
    unpriced: list[str]
    halted: bool
    already_reset: bool = False  # the day had its reset already: nothing changed

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def daily_reset(s: Strategy) -> DailyReset:
    """At the first run of a new UTC day: record the day-start equity; clear the daily-loss breaker's halt (it ends
    with the day, with the stop it triggered) but not a manual emergency stop's or the drawdown breaker's, which wait
    for ``rearm``. A second run the same day changes nothing: run by hand (the UI's Run button) mid-day, it lifted
    the day's breaker halt and measured a fresh daily-loss budget from the equity after the loss (an outside
    operator trial). A run late past midnight (the runner was down) resets from the equity when it runs: said."""
    eq, unpriced = M.equity(s)
    before = s.state_store.load()
    today = utc_day(s.clock)
    if before.day == today and before.day_start_equity is not None:
        log.warning(
            "daily reset of %s: %s was reset already (day-start equity %.2f): nothing changed", s.name, today, before.day_start_equity
        )
        s.sink.record(
            "daily_reset", equity=eq, previous_pnl=None, cleared_breaker=False, reason=f"{today} was reset already: nothing changed"
        )
        return DailyReset(before.day, before.day_start_equity, eq, None, False, unpriced, before.halted, already_reset=True)
    pnl = eq - before.day_start_equity if before.day_start_equity is not None else None
    cleared = before.breaker_tripped == "daily_loss"
    changes: dict[str, object] = {"day": today, "day_start_equity": eq}
    if cleared:
        changes.update(breaker_tripped=None, halted=False, halt_reason=None, halted_by_emergency_stop=False)
    after = s.state_store.update(**changes)
    s.sink.record("daily_reset", equity=eq, previous_pnl=pnl, cleared_breaker=cleared)
    log.info("daily reset of %s: equity %.2f, previous day PnL %s, breaker cleared %s", s.name, eq, pnl, cleared)
    return DailyReset(before.day, before.day_start_equity, eq, pnl, cleared, unpriced, after.halted)


@dataclass
class Rearmed:
    strategy: str
    by: str
    reason: str
    previous_halt: str | None
    equity: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def baseline(s: Strategy) -> float:
    """The equity a re-arm starts the breakers from. Refused (``RearmRefused``) when it cannot be valued, or when
    the balances are known and it is at or below zero (a cross wallet in debt after a liquidation): the drawdown
    breaker measures from a positive peak, so re-arming there left it off until equity came back above zero,
    while every order would trade on margin the account does not have (an outside risk trial)."""
    eq, unpriced = M.equity(s)
    if unpriced:
        raise RearmRefused(f"{s.name}: equity cannot be valued (no price for {unpriced}); the breakers need a baseline")
    if eq <= 0 and s.holdings.balances:
        raise RearmRefused(
            f"{s.name}: equity is {eq:.2f} {s.config.main_currency}; the drawdown breaker needs a positive baseline: "
            "fund the account (or settle its debt) first"
        )
    return eq


async def rearm(s: Strategy, reason: str, by: str) -> Rearmed:
    """Allow trading again: the halt, the tripped breaker and the e-stop's unverified list are cleared, and the
    breakers' baselines (peak equity, day-start equity) start again from the equity now, so the drawdown that
    tripped the breaker does not trip it again at once. Refused (``RearmRefused``) while an order the e-stop
    could not verify is still open, or cannot be listed, while the equity cannot be valued or is not positive
    (``baseline``), or while the store cannot be written (``TradingGate.check_store``: a full disk or a read-only volume halted it)."""
    st = s.state
    if not reason.strip():
        raise RearmRefused("a reason is required (it is recorded in the trace)")
    try:  # after a full disk or a read-only volume: refused until the store takes writes again
        s.gate.check_store()
    except Exception as exc:  # engine.store_guard.StoreUnwritable, naming the path and the error
        raise RearmRefused(f"{s.name}: {exc}") from None
    if UNFINISHED_STOP in st.estop_unverified:  # the stop was killed before its verdict: nothing says what is open
        raise RearmRefused(
            f"{s.name}: {st.estop_unverified[UNFINISHED_STOP]}; run it again (planar emergency-stop {s.name}) and re-arm after its verdict"
        )
    # every symbol the stop left unverified, in the universe or not (its orders on a symbol dropped from the
    # universe are the strategy's too: a review found re-arm passing with one resting there)
    symbols = sorted({key.split(":", 1)[0] for key in st.estop_unverified if key != UNFINISHED_STOP})
    still: dict[str, str] = {}
    for sym in symbols:
        try:
            listed = await s.venue.open_orders(sym, timeout=s.config.timeouts.order_placement)
        except ExchangeOpError as err:
            still[sym] = f"open orders cannot be listed ({err})"
            continue
        adopt = s.config.startup_sync.foreign_orders == "adopt"
        ours = [r for r in listed if claimed(s.ids, r.client_order_id, adopt)]  # other strategies' orders are theirs
        if ours:
            still[sym] = f"{len(ours)} order(s) still open"
    if still:
        raise RearmRefused(f"{s.name}: the emergency stop could not verify {still}; cancel them (planar emergency-stop) first")
    eq = baseline(s)
    s.state_store.update(
        halted=False,
        halt_reason=None,
        halted_at=None,
        halted_by_emergency_stop=False,
        breaker_tripped=None,
        estop_unverified={},
        peak_equity=eq,
        day_start_equity=eq,
        day=utc_day(s.clock),
    )
    s.sink.record("rearmed", reason=reason, by=by, equity=eq, previous_halt=st.halt_reason)
    log.warning("strategy %s re-armed by %s (%s); breaker baselines reset to equity %.2f", s.name, by, reason, eq)
    return Rearmed(s.name, by, reason, st.halt_reason, eq)
