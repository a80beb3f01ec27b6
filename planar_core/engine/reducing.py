"""A risk action's reduction of one position (``RiskManager.reduce_position``): a market order for a fraction of
the strategy's own part of it, the rest kept protected.

What is cancelled first is what could re-open risk or holds the coins the reduction sells: orders that add to the
position. A futures exit or any reduce-only order stays: it locks nothing and can only make the position smaller.
A spot exit (an OCO list or a single stop) holds the coins: it is cancelled, and placed again at the same levels for
what is left once the reduction is answered. Before this, the exposure monitor's 30 % reduction cancelled every
order on the asset, the stop-losses with the rest, and left the 70 % it kept unprotected without a word.

A spot exit to place again is recorded as due (``brackets.due``) before the sell: a crash between the cancel and
the new exits leaves a restart that places them (``brackets.resume``). A strategy halted meanwhile (an emergency
stop that cancelled everything) gets none: the stop's report stands, and an alert says what is held unprotected.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..model import AssetInstance, Order, OrderAnswer, OrderStatus, OrderType, PositionSide, Side
from ..risk.ownership import own_share
from . import brackets

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.reducing")


def _keeps(ai: AssetInstance, order: Order) -> bool:
    """A futures order that cannot add to the position (an exit, or reduce-only): left on the exchange."""
    return ai.is_margin and (order.parent is not None or order.reduce_only)


def _entries_of(s: "Strategy", ai: AssetInstance) -> list[Order]:
    """The spot exits on ``ai`` as the entries they protect, each for what its exits still cover, with their
    stop-loss and take-profit levels: what ``brackets.place`` needs to place them again."""
    groups: dict[str, list[Order]] = {}
    for o in brackets.exits_of(s, ai):
        groups.setdefault(o.parent or "", []).append(o)
    entries = []
    for parent, legs in groups.items():
        stop = next((o.trigger_price for o in legs if o.type in brackets.STOPS), None)
        take = next((o.trigger_price for o in legs if o.type in brackets.TAKES), None)
        covered = max(o.amount - o.filled for o in legs)
        side = Side.BUY if legs[0].side is Side.SELL else Side.SELL
        entries.append(
            Order(
                parent, ai.symbol, side, OrderType.MARKET, covered, None, status=OrderStatus.CLOSED, filled=covered, brackets=(stop, take)
            )
        )
    return entries


async def reduce_position(s: "Strategy", ai: AssetInstance, fraction: float, reason: str) -> OrderAnswer:
    """Sell (or buy back) ``fraction`` of the strategy's own part of one position with a market order: futures
    reduce-only, spot from the *free* base balance after a fresh balance read (the exits' coins released first);
    on an account others trade too, only the strategy's own part (risk/ownership.py: an outside trial saw a
    strategy's exposure limit sell 30 % of coins the account held before it ever traded)."""
    replace = [] if ai.is_margin or fraction >= 1 else _entries_of(s, ai)
    for order in ai.open_orders():
        if not _keeps(ai, order):
            await s.cancel(ai, order)
    for entry in replace:  # after the cancels: their confirmations settle the old record of the same entry
        brackets.due(s, ai, entry)
    if not ai.is_margin:
        await s.refresh_balances()
    if ai.is_margin and ai.hedged:  # each side its own position, closed by naming it
        held_by_side = {ps: p.contracts for ps, p in ai.open_positions()}
    else:
        held_by_side = {PositionSide.BOTH: ai.position.contracts if ai.is_margin else s.cash(ai.base).free}
    result: OrderAnswer = None
    for ps, held in held_by_side.items():
        size, others = own_share(s, ai, ps, held)
        if others:
            log.info("%s: %s of the account's %s is not this strategy's; left alone", ai.symbol, others, held)
        amount = abs(size) * fraction
        if amount <= 0:
            continue
        side = Side.SELL if size > 0 else Side.BUY
        hedge = ai.is_margin and ai.hedged
        result = await s.call(
            ai, OrderType.MARKET, side, amount=amount, reduce_only=ai.is_margin and not hedge, position_side=ps, waitfor=0
        )
        if result is None:
            s.sink.record("error_occurred", symbol=ai.symbol, reason=f"risk action failed ({reason}): see the order_failed event before")
            s.alert(f"{s.name}: risk action on {ai.symbol} ({reason}) could not be placed", "error")
    for entry in replace:  # what the sell left; all of it if nothing was sent (never more than is free: ``place``)
        if result is not None:
            entry.amount = entry.filled = entry.filled * (1 - fraction)
            brackets.due(s, ai, entry)
        await _restore(s, ai, entry, reason)
    return result


async def _restore(s: "Strategy", ai: AssetInstance, entry: Order, reason: str) -> None:
    """Place the exits cancelled for the reduction again, for what is left (``brackets.place`` takes at most the free
    coins); a halted strategy gets none, and is told what it holds without them."""
    if s.halted:
        brackets.settled(s, entry.client_order_id)
        held = s.cash(ai.base).total
        if held:
            msg = (
                f"{s.name}: the exits of {entry.client_order_id} on {ai.symbol} were cancelled for a risk action ({reason}) and the "
                f"strategy was halted before they were placed again: {held} {ai.base} is held without them"
            )
            log.critical(msg)
            s.alert(msg, "critical")
        return
    await brackets.place(s, ai, entry)
