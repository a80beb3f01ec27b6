"""Closing a position with one call: a reduce-only market order, or a limit at a price; in hedge mode one side or
both (``Strategy.close_position``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import AssetInstance, InvalidOrderCall, OrderAnswer, OrderCall, OrderType, PositionSide, Side
from .orders import call, invalid, refused

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
        try:
            asked = OrderCall(
                type=kind,
                side=order_side,
                amount=abs(pos.contracts),
                price=price,
                waitfor=waitfor,
                reduce_only=not ai.hedged,
                position_side=ps,
            )
        except InvalidOrderCall as exc:  # a bad limit price: refused like any order call
            refused(s, ai, invalid(exc), order_side, abs(pos.contracts), price)
            out[ps] = None
            continue
        out[ps] = await call(s, ai, asked)
    return out
