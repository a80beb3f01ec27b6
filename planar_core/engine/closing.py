"""Closing a position with one call: a reduce-only market order, or a limit at a price; in hedge mode one side or
both (``Strategy.close_position``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import AssetInstance, OrderAnswer, OrderType, PositionSide, Side
from .orders import Conditional, call

if TYPE_CHECKING:
    from .strategy import Strategy


async def close_position(
    s: "Strategy", ai: AssetInstance, side: PositionSide | None, price: float | None, waitfor: float | None
) -> dict[PositionSide, OrderAnswer]:
    """Close the position (hedge mode: ``side``, else both sides): a reduce-only market order, or a reduce-only
    GTC limit at ``price``. Each side's answer is the order call's."""
    sides = [side] if side is not None else [ps for ps, p in ai.open_positions()] if ai.hedged else [PositionSide.BOTH]
    out: dict[PositionSide, OrderAnswer] = {}
    for ps in sides:
        pos = ai.position_of(ps) if ai.hedged else ai.position
        if not pos.contracts:
            continue
        order_side = Side.SELL if pos.contracts > 0 else Side.BUY
        kind = OrderType.GTC if price is not None else OrderType.MARKET
        out[ps] = await call(
            s, ai, kind, order_side, abs(pos.contracts), price, waitfor, True, not ai.hedged, {}, cond=Conditional(position_side=ps)
        )
    return out
