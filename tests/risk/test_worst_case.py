"""Pre-trade limits count the worst case: the holding, plus every order of the strategy that may still be live and
adds in the same direction (resting, being sent, a stop not yet triggered), plus the fills the balances do not show
yet, plus the order asked. In hedge mode each side is its own position and gross exposure counts both.

An outside risk trial (2026-12-07): with ``position_limit = 0.1`` five resting buys of 0.09 each, and four market
buys sent at once, all passed (79 % of equity); three stop buys of 0.4 against a 0.5 limit triggered into 1.23x
equity; in hedge mode alternating long and short entries reached 2.79x equity against limits of 0.5-0.6, and the
risk monitor read 0.33."""

from __future__ import annotations

import asyncio
from typing import Any

from planar_core.model import PENDING, OrderType, PositionSide, Side, Trade
from planar_core.risk import metrics as M

from ..conftest import wait_for

PERP = "BTC/USDT:USDT"


async def limited(strategy_factory: Any, sandbox: Any, symbol: str, margin: bool = False, **extra: Any) -> Any:
    risk = {k: extra.pop(k) for k in list(extra) if k in ("position_limit", "max_total_exposure", "max_leverage")}
    acct = sandbox.ex.add_account({"USDT": 10_000})
    s = await strategy_factory(acct=acct, universe=[symbol], margin=margin, risk={**risk, "monitor_interval": 3600}, **extra)
    await wait_for(lambda: s.universe[symbol].last_price)
    return s


def amount(s: Any, symbol: str, fraction: float) -> float:
    """``fraction`` of the equity's worth of the asset."""
    eq, _ = M.equity(s)
    return fraction * eq / s.universe[symbol].last_price


def refusal(s: Any) -> str:
    return s.last_refusal.detail if s.last_refusal is not None else ""


async def test_resting_buys_count_toward_the_position_limit(strategy_factory: Any, sandbox: Any) -> None:
    s = await limited(strategy_factory, sandbox, "BTC/USDT", position_limit=0.1)
    ai = s.universe["BTC/USDT"]
    below = ai.last_price * 0.9
    assert await s.call(ai, OrderType.GTC, Side.BUY, amount=amount(s, "BTC/USDT", 0.06), price=below, waitfor=0) is PENDING
    assert await s.call(ai, OrderType.GTC, Side.BUY, amount=amount(s, "BTC/USDT", 0.06), price=below, waitfor=0) is None
    assert "position_limit" in refusal(s) and "open orders" in refusal(s)
    assert await s.call(ai, OrderType.GTC, Side.BUY, amount=amount(s, "BTC/USDT", 0.03), price=below, waitfor=0) is PENDING


async def test_orders_sent_at_once_see_each_other(strategy_factory: Any, sandbox: Any) -> None:
    s = await limited(strategy_factory, sandbox, "BTC/USDT", position_limit=0.1)
    ai = s.universe["BTC/USDT"]
    size = amount(s, "BTC/USDT", 0.07)
    answers = await asyncio.gather(*(s.call(ai, OrderType.MARKET, Side.BUY, amount=size, waitfor=2) for _ in range(4)))
    assert sum(isinstance(a, Trade) for a in answers) == 1, answers
    assert answers.count(None) == 3


async def test_stop_buys_not_yet_triggered_count(strategy_factory: Any, sandbox: Any) -> None:
    s = await limited(strategy_factory, sandbox, PERP, margin=True, position_limit=0.5, default_leverage=10)
    ai = s.universe[PERP]
    trigger = ai.last_price * 1.05
    first = await s.call(ai, OrderType.STOP_MARKET, Side.BUY, amount=amount(s, PERP, 0.3), trigger_price=trigger, waitfor=0)
    assert first is PENDING, refusal(s)
    assert await s.call(ai, OrderType.STOP_MARKET, Side.BUY, amount=amount(s, PERP, 0.3), trigger_price=trigger, waitfor=0) is None
    assert "position_limit" in refusal(s)
    # the other direction is its own worst case: a sell of 0.3 is a short of 0.3 if the stop never triggers
    sell = await s.call(ai, OrderType.GTC, Side.SELL, amount=amount(s, PERP, 0.3), price=ai.last_price * 1.02, waitfor=0)
    assert sell is PENDING, refusal(s)


async def test_hedge_mode_checks_the_side_opened_and_counts_both_sides(strategy_factory: Any, sandbox: Any) -> None:
    s = await limited(
        strategy_factory, sandbox, PERP, margin=True, position_mode="hedge", position_limit=0.5, max_total_exposure=0.6, default_leverage=10
    )
    ai = s.universe[PERP]
    long = await s.call(ai, OrderType.MARKET, Side.BUY, amount=amount(s, PERP, 0.4), position_side=PositionSide.LONG, waitfor=5)
    assert isinstance(long, Trade), refusal(s)
    await wait_for(lambda: ai.position_of(PositionSide.LONG).contracts > 0)
    # a short larger than the long is no reduction of anything: it opens the short side (was: passed unchecked)
    short = amount(s, PERP, 0.45)
    assert await s.call(ai, OrderType.MARKET, Side.SELL, amount=short, position_side=PositionSide.SHORT, waitfor=5) is None
    assert "max_total_exposure" in refusal(s)
    # closing the long side is never refused
    closed = await s.call(
        ai, OrderType.MARKET, Side.SELL, amount=ai.position_of(PositionSide.LONG).contracts, position_side=PositionSide.LONG, waitfor=5
    )
    assert isinstance(closed, Trade), refusal(s)


async def test_the_monitor_counts_both_sides_of_a_hedge(strategy_factory: Any, sandbox: Any) -> None:
    s = await limited(strategy_factory, sandbox, PERP, margin=True, position_mode="hedge", default_leverage=10)
    ai = s.universe[PERP]
    for side, ps in ((Side.BUY, PositionSide.LONG), (Side.SELL, PositionSide.SHORT)):
        assert isinstance(await s.call(ai, OrderType.MARKET, side, amount=amount(s, PERP, 0.3), position_side=ps, waitfor=5), Trade)
    await wait_for(lambda: ai.position_of(PositionSide.LONG).contracts > 0 and ai.position_of(PositionSide.SHORT).contracts < 0)
    m = s.risk.metrics(s)
    gross = (ai.position_of(PositionSide.LONG).contracts - ai.position_of(PositionSide.SHORT).contracts) * ai.last_price
    assert m.total_exposure == m.leverage
    assert abs(m.total_exposure - gross / m.equity) < 1e-9 and m.total_exposure > 0.5  # was the net: about 0


async def test_a_fill_the_balance_does_not_show_yet_counts(strategy_factory: Any, sandbox: Any) -> None:
    """``waitfor=0``: the market buy's answer carries its fill (the order is closed, no longer open) before the
    account update that includes it; the next order, sent at once, must still count it."""
    s = await limited(strategy_factory, sandbox, "BTC/USDT", position_limit=0.1)
    ai = s.universe["BTC/USDT"]
    size = amount(s, "BTC/USDT", 0.07)
    for _ in range(3):  # each round: one buy, then one more at once (refused), then sell back
        first = await s.call(ai, OrderType.MARKET, Side.BUY, amount=size, waitfor=0)
        assert first is not None, refusal(s)
        assert await s.call(ai, OrderType.MARKET, Side.BUY, amount=size, waitfor=0) is None
        assert "position_limit" in refusal(s)
        await wait_for(lambda: s.cash("BTC").free >= size * 0.99)
        assert isinstance(await s.call(ai, OrderType.MARKET, Side.SELL, amount=s.cash("BTC").free, waitfor=5), Trade)
        await wait_for(lambda: s.cash("BTC").total < size / 2)
