"""The futures Breakout example's exits against a market that moved after the bar it decides on closed."""

from __future__ import annotations

from typing import Any

import pytest

from planar_core.model import Candle, Side
from planar_core.runner.context import LiveContext
from planar_core.strategies.breakout import Breakout

from .stubs import stub_strategy

SYM = "BTC/USDT:USDT"


@pytest.mark.parametrize(("close", "now", "side"), [(102.0, 106.0, Side.BUY), (98.0, 94.0, Side.SELL)])
async def test_exits_are_measured_from_the_latest_price_not_the_stale_close(close: float, now: float, side: Side) -> None:
    """A bar is announced when the next one starts; if the price jumped meanwhile, exits taken from the bar's
    close sit on the wrong side of the market and the exchange refuses them as "would trigger at once"."""
    s = stub_strategy((SYM,), {SYM: now}, margin=True)
    ai = s.universe[SYM]
    rows = [(t * 1000, 100.0, 100.5, 99.5, 100.0, 1.0) for t in range(3)] + [
        (3000, 100.0, close, close, close, 1.0),
        (4000, now, now, now, now, 1.0),
    ]
    ai.candles("1s").merge(rows)
    sent: list[dict[str, Any]] = []

    async def call(_ai: Any, _type: Any, side: Side, **kw: Any) -> None:
        sent.append({"side": side, **kw})

    s.call = call  # type: ignore[method-assign]
    logic = Breakout(Breakout.Params(lookback=3, timeframe="1s", take_profit=0.03, stop_loss=0.03))
    ctx = LiveContext(s, logic.params)  # the context the runner hands the logic; its call is the engine's
    await logic.on_bar(ctx, ctx.asset(ai.symbol), "1s", Candle(*rows[3]))
    (order,) = sent
    assert order["side"] is side
    below, above = sorted((order["stop_loss"], order["take_profit"]))
    assert below < now < above  # both exits on their own side of the market: neither acts at once
