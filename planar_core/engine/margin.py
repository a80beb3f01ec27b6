"""Futures margin as the engine handles it: margin and position modes, leverage, the
exchange's forced closes (liquidation, auto-deleveraging) and funding payments.

Rules (docs/engine.md, "Margin"):
* the margin mode of an asset (``universe[].margin_mode``, else ``margin_mode``) is set on the exchange before
  the first order on that asset, once per run, and recorded (``margin_mode_set``); an order is refused when the
  exchange will not take the mode (Binance refuses a change while the asset has a position or open orders);
* the position mode (one-way or hedge) is set at start-up, for the whole account; a start that cannot set it
  fails naming ``position_mode``;
* leverage changes only when the asset is flat with no open orders, as Planar allows (Binance itself allows a
  change with a position open as long as the margin suffices; the engine is stricter on purpose: the leverage
  of an open position is then the one it was opened with);
* forced closes are the exchange's orders (Binance: client ids ``autoclose-*`` and ``adl_autoclose``), adopted
  whatever the foreign-order policy, recorded as ``forced_close`` and alerted;
* funding payments are read from the exchange's income history (asked when the stream reports one, and with
  every positions poll), recorded once each as ``funding_paid`` and summed per asset in ``AccountBook.funding``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config import ConfigError
from ..exchange.errors import ExchangeOpError, PermanentError
from ..model import AssetInstance, LeverageAnswer, LeverageOutcome, Order, Refusal, RefusalReason
from ..model.clock import now_ms
from ..model.venue import FundingPayment
from .account_book import PositionChange

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.margin")
R = RefusalReason


def wanted_margin_mode(s: "Strategy", ai: AssetInstance) -> str:
    for a in s.config.universe:
        if a.symbol == ai.symbol and a.margin_mode is not None:
            return a.margin_mode
    return s.config.margin_mode


async def ensure_margin_mode(s: "Strategy", ai: AssetInstance) -> str | None:
    """Set the asset's margin mode on the exchange unless this run already knows it is set; the reason it could
    not be, else None."""
    want = wanted_margin_mode(s, ai)
    if not ai.is_margin or ai.margin_mode == want:  # paper too: its simulated exchange keeps margin modes as live's
        return None
    try:
        await s.venue.set_margin_mode(ai.symbol, want, s.config.timeouts.position_sync)  # already set: no error
    except ExchangeOpError as err:
        return f"margin mode {want} could not be set on {ai.symbol}: {err}"
    s.holdings.set_margin_mode(ai, want)
    s.sink.record("margin_mode_set", symbol=ai.symbol, margin_mode=want)
    log.info("%s: margin mode %s", ai.symbol, want)
    return None


async def apply_position_mode(s: "Strategy") -> None:
    """Put the account in the configured position mode (one-way or hedge) at start-up: live, paper and backtest
    alike (paper's and a backtest's account is the simulated exchange's, which keeps the mode as live's does)."""
    want = s.config.position_mode == "hedge"
    t = s.config.timeouts.position_sync
    hedged = await s.venue.position_mode(t)
    if hedged != want:
        try:
            await s.venue.set_position_mode(want, t)  # already set: no error
        except ExchangeOpError as err:
            now = "hedge" if hedged else "one_way"
            raise ConfigError(
                f"position_mode: the account is in {now} mode and the exchange refused {s.config.position_mode} ({err}); "
                "close its positions and orders first, or configure the mode it is in"
            ) from err
        s.sink.record("position_mode_set", position_mode=s.config.position_mode)
    for ai in s.universe.values():
        s.holdings.set_hedged(ai, want)


async def update_leverage(s: "Strategy", ai: AssetInstance, leverage: int) -> LeverageAnswer:
    """Planar's ``UpdateLeverage``: set the asset's leverage when it is flat with no open orders. Never raises;
    answers applied (recorded as ``leverage_updated``), refused (locally or by the exchange: the typed reason,
    recorded as ``order_failed``), or unknown (the exchange did not answer: it may be set; the next positions read
    says)."""
    refusal: Refusal | None = None
    if not ai.is_margin:
        refusal = Refusal(R.CAPABILITY, f"{ai.symbol} is not a futures market")
    elif isinstance(leverage, bool) or not isinstance(leverage, int) or leverage < 1:
        refusal = Refusal(R.INVALID_PARAMS, f"invalid leverage {leverage!r}: a whole number >= 1")
    elif ai.open_positions():
        refusal = Refusal(R.NOT_FLAT, f"{ai.symbol} has an open position: leverage changes only when flat")
    elif ai.open_orders():
        refusal = Refusal(R.NOT_FLAT, f"{ai.symbol} has {len(ai.open_orders())} open order(s): leverage changes only with none open")
    if refusal is None:
        try:
            await s.venue.set_leverage(ai.symbol, leverage, s.config.timeouts.position_sync)
        except ExchangeOpError as err:
            if not isinstance(err, PermanentError):  # no answer, or not one that says no: it may have been set
                detail = f"leverage {leverage} on {ai.symbol}: the exchange did not answer ({type(err).__name__}: {err})"
                s.sink.record("error_occurred", symbol=ai.symbol, reason=f"update_leverage: {detail}")
                log.warning("update_leverage on %s: %s", ai.symbol, detail)
                return LeverageAnswer(ai.symbol, leverage, LeverageOutcome.UNKNOWN, detail=detail)
            refusal = Refusal(R.EXCHANGE_REFUSED, f"the exchange refused leverage {leverage} on {ai.symbol}: {err}", err.code)
    if refusal is not None:
        s.sink.record(
            "order_failed",
            symbol=ai.symbol,
            reason=f"update_leverage: {refusal.detail}",
            reason_code=refusal.reason.value,
            **({"code": refusal.code} if refusal.code is not None else {}),
        )
        log.warning("update_leverage on %s: %s", ai.symbol, refusal.detail)
        return LeverageAnswer(ai.symbol, leverage, LeverageOutcome.REFUSED, refusal, refusal.detail)
    s.holdings.set_leverage(ai, float(leverage))
    s.sink.record("leverage_updated", symbol=ai.symbol, leverage=leverage)
    return LeverageAnswer(ai.symbol, leverage, LeverageOutcome.APPLIED)


def record_forced_close(s: "Strategy", ai: AssetInstance, order: Order, kind: str) -> None:
    """The exchange closed a position by force: recorded once per order and alerted (the breakers see the loss
    through the balance and position updates that come with it)."""
    s.sink.record(
        "forced_close",
        symbol=ai.symbol,
        client_order_id=order.client_order_id,
        order_id=order.id,
        side=order.side.value,
        amount=order.amount,
        price=order.price,
        reason=kind,
    )
    msg = f"{s.name}: {ai.symbol} position closed by the exchange ({kind}): {order.side.value} {order.amount} @ {order.price}"
    log.error(msg)
    s.alert(msg, "critical")


async def explain_position_change(s: "Strategy", ai: AssetInstance) -> None:
    """A position changed with no order of ours working: read the asset's last orders, so a forced close (or a
    trade by hand) is adopted and recorded even when no order task is watching the asset."""
    try:
        history = await s.venue.order_history(ai.symbol, s.config.timeouts.position_sync, limit=10)
    except ExchangeOpError as err:
        log.warning("could not read the orders behind a position change on %s: %s", ai.symbol, err)
        return
    with s.group():
        for report in history:
            s.apply_order(report, source="positions")


FUNDING_BOOKED_WITHIN_MS = 3_600_000  # a settlement shows in the history within this (the next read overlaps; ids count each once)


async def sync_funding(s: "Strategy") -> int:
    """Record funding payments the exchange booked since the last one seen; returns how many were new."""
    since = s.holdings.funding.since
    asked_at = now_ms(s.clock)
    try:
        payments = await s.venue.funding_history(since, s.config.timeouts.position_sync)
    except ExchangeOpError as err:
        log.warning("funding history: %s", err)
        return 0
    n = 0
    with s.group():
        for p in payments:
            n += record_funding(s, p)
    if n == 0:  # nothing new: every payment booked before the read was in it (an answer cut short has new ones)
        s.holdings.funding.read_through(asked_at - FUNDING_BOOKED_WITHIN_MS)
    return n


def record_funding(s: "Strategy", p: FundingPayment) -> int:
    """One funding payment of a universe asset, recorded once (by its id) as ``funding_paid`` and summed per asset."""
    return int(s.holdings.record_funding(p))


def explain_reductions(s: "Strategy", changes: Sequence[PositionChange]) -> None:
    """A position that shrank while no order of ours is open on the asset may have been closed by the exchange
    (liquidation, auto-deleveraging): read the asset's last orders, so a forced close is adopted and recorded
    even when no order task watches the asset."""
    for sym in {c.symbol for c in changes if c.reduced}:
        ai = s.universe[sym]
        if s.running and ai.is_margin and not ai.open_orders():
            s.supervisor.spawn(explain_position_change(s, ai))


def alert_external_position_changes(s: "Strategy", changes: Sequence[PositionChange]) -> None:
    """A position that moved while the engine had no order working on that asset, no fill of its own and no order
    of its own that filled in the last minute changed outside the engine (a manual trade, a liquidation,
    auto-deleveraging): alert. The last: the exchange's answer may say an order filled before its fill arrives on the
    stream, and the position update may come first (every first entry of a paper run alerted so)."""
    now = now_ms(s.clock)
    for c in changes:
        ai = s.universe[c.symbol]
        busy = (
            ai.open_orders()
            or any(now - t.timestamp < 60_000 for t in ai.trades[-20:])
            or any(o.filled_at is not None and 0 <= now - o.filled_at < 60_000 for o in ai.orders.recent(20))
        )
        if not busy and s.running:
            msg = f"{s.name}: position {c.key} changed outside the engine: {c.before} -> {c.contracts}"
            s.sink.record("error_occurred", symbol=c.symbol, reason=msg)
            s.alert(msg, "warning")
