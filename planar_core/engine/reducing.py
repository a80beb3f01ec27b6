"""A risk action's reduction of one position (``RiskManager.reduce_position``): a market order for a fraction of
the strategy's own part of it, the rest kept protected.

What is cancelled first is what could re-open risk or holds the coins the reduction sells: orders that add to the
position. A futures exit or any reduce-only order stays: it locks nothing and can only make the position smaller;
once the reduction is answered the exits are placed again for what is left, and then the old ones (larger than the
position: refused when they trigger) are cancelled. A spot exit (an OCO list or a single stop) holds the coins: it
is cancelled first, and placed again at the same levels for what is left. Before this, the exposure monitor's 30 %
reduction cancelled every order on the asset, the stop-losses with the rest, and left the 70 % it kept unprotected
without a word.

Spot exits to place again are recorded as due (``brackets.due``) before they are cancelled: a crash in between
leaves a restart that places them (``brackets.resume``). A futures crash between the trim and its new exits leaves
the old, larger ones, which the restart fits to the position (``brackets.fit``, as it does for any position reduced
while the exits were not resized). A halt does not stop the exits (they only reduce); an emergency stop does, and
its report stands (``brackets.stopped``).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from ..model import AssetInstance, Order, OrderAnswer, OrderType, PositionSide, Side, Trade
from ..risk.ownership import own_share
from . import brackets

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.reducing")


def _keeps(ai: AssetInstance, order: Order) -> bool:
    """A futures order that cannot add to the position (an exit, or reduce-only): left on the exchange."""
    return ai.is_margin and (order.parent is not None or order.reduce_only)


async def reduce_position(s: "Strategy", ai: AssetInstance, fraction: float, reason: str) -> OrderAnswer:
    """Sell (or buy back) ``fraction`` of the strategy's own part of one position with a market order: futures
    reduce-only, spot from the *free* base balance after a fresh balance read (the exits' coins released first);
    on an account others trade too, only the strategy's own part (risk/ownership.py: an outside trial saw a
    strategy's exposure limit sell 30 % of coins the account held before it ever traded). The exits follow the
    position sold, known from the trim's fill: spot's cancelled first and placed again for what is left; futures'
    placed again for what is left, the old ones cancelled as each new one is acknowledged (they protect meanwhile: a
    reduce-only exit larger than the position is refused when it triggers, a review found). The symbol's exits are
    sized by one task at a time (``exits_lock``): an entry's exits being sent, or another trim, finish first."""
    async with s.book.exits_lock(ai.symbol):
        return await _reduce(s, ai, fraction, reason)


async def _reduce(s: "Strategy", ai: AssetInstance, fraction: float, reason: str) -> OrderAnswer:
    entries = [] if fraction >= 1 else brackets.exit_entries(s, ai)
    for order in ai.open_orders():
        if not _keeps(ai, order):
            await s.cancel(ai, order)
    if not ai.is_margin:
        for entry in entries:  # after the cancels: their confirmations settle the old record of the same entry
            brackets.due(s, ai, entry)
        await s.refresh_balances()
    if ai.is_margin and ai.hedged:  # each side its own position, closed by naming it
        held_by_side = {ps: p.contracts for ps, p in ai.open_positions()}
    else:
        held_by_side = {PositionSide.BOTH: ai.position.contracts if ai.is_margin else s.cash(ai.base).free}
    result: OrderAnswer = None
    kept: dict[PositionSide, float] = {}  # per side: the part of the strategy's own the trim left (1: nothing sent)
    for ps, held in held_by_side.items():
        size, others = own_share(s, ai, ps, held)
        if others:
            log.info("%s: %s of the account's %s is not this strategy's; left alone", ai.symbol, others, held)
        amount = abs(size) * fraction
        with contextlib.suppress(Exception):  # what is sold: the exits follow it (too small: the call refuses it, said)
            amount = float(s.venue.amount_to_precision(ai.symbol, amount)) or amount
        if amount <= 0:
            continue
        side = Side.SELL if size > 0 else Side.BUY
        hedge = ai.is_margin and ai.hedged
        answer = await s.call(  # waits for the fill: the exits follow what was sold, known only from it
            ai, OrderType.MARKET, side, amount=amount, reduce_only=ai.is_margin and not hedge, position_side=ps
        )
        if answer is None:
            s.sink.record("error_occurred", symbol=ai.symbol, reason=f"risk action failed ({reason}): see the order_failed event before")
            s.alert(f"{s.name}: risk action on {ai.symbol} ({reason}) could not be placed", "error")
            continue
        result = answer
        if isinstance(answer, Trade):  # sold, and how much; accepted or unknown: not known, the exits stay as they are
            kept[ps] = max(0.0, 1 - answer.amount / abs(size))  # (a review: an UNKNOWN trim read as sold shrank them)
    for entry in entries:  # the exits for what the sell left; all of it on spot if nothing was sent
        ps = entry.position_side if ai.is_margin and ai.hedged else PositionSide.BOTH
        if ps not in kept and ai.is_margin:
            continue  # nothing known sold on that side: its futures exits on the exchange stay
        entry.amount = entry.filled = round(entry.filled * kept.get(ps, 1.0), 12)  # 0.02 x 0.7 is 0.01399...
        brackets.due(s, ai, entry)
        await restore(s, ai, entry, reason)  # futures: the old ones go once a new one is acknowledged (brackets._supersede)
    return result


async def restore(s: "Strategy", ai: AssetInstance, entry: Order, reason: str) -> bool:
    """Place exits the strategy had (cancelled to free the coins, or sized for more than is held now) for what is
    left (``brackets.place`` takes at most the strategy's own coins or position); True when placed. The caller holds
    the symbol's ``exits_lock``. A halt does not stop them (they only reduce the position: a review saw a halt during
    a trim leave the old, larger exits, refused when they trigger); an emergency stop does, and an alert says what
    is held without them."""
    if brackets.stopped(s):
        brackets.settled(s, entry.client_order_id)
        held = brackets.own_size(s, ai, entry.position_side)
        if held:
            msg = (
                f"{s.name}: the exits of {entry.client_order_id} on {ai.symbol} were to be placed again for {reason}, and an "
                f"emergency stop halted the strategy first: {held} is held without them"
            )
            log.critical(msg)
            s.alert(msg, "critical")
        return False
    return await brackets.place_held(s, ai, entry, protective=s.halted)
