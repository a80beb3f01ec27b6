"""Paper mode: live market data from the sandbox, local fills, no private request."""

from __future__ import annotations

from typing import Any

import pytest

from planar_core.engine import Paper
from planar_core.model import PENDING, OrderType, Side, Trade
from planar_core.sandbox import Faults

from ..conftest import wait_for

PUBLIC_USED = {"fetch_tickers", "fetch_ohlcv"}


async def test_paper_trades_locally_on_live_prices(sandbox, account, tmp_path) -> None:
    sandbox.ex.faults = Faults(private_api=False)  # a private request would fail loudly
    from planar_core.engine import strategy as build

    s = build(
        "paper",
        mode=Paper(),
        env={},
        universe=["BTC/USDT", "ETH/USDT"],
        initial_cash=50_000,
        store_root=str(tmp_path),
        sandbox_endpoint={"url": sandbox.url, "ws_url": sandbox.ws_url},
        ohlcv_watcher={"interval": 0.2},
        connection={"health_interval": 3600},
    )
    await s.start()
    try:
        ai = s.universe["BTC/USDT"]
        await wait_for(lambda: ai.last_price is not None)
        assert s.cash("USDT").total == 50_000
        trade = await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.1, waitfor=1)
        assert isinstance(trade, Trade) and trade.price == pytest.approx(ai.last_price, rel=2e-3)
        await wait_for(lambda: s.cash("BTC").total == pytest.approx(0.1 * 0.999))  # the balance stream, as live
        assert s.cash("USDT").total == pytest.approx(50_000 - trade.amount * trade.price)
        price = ai.last_price * 0.98
        assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.1, price=price, waitfor=0.2) is PENDING
        await wait_for(lambda: s.cash("USDT").used == pytest.approx(0.1 * round(price, 2), rel=1e-6))
        sandbox.ex.markets[("spot", "BTCUSDT")].shock = 0.95  # the live price falls through the limit
        sandbox.hub.publish_now()
        await wait_for(lambda: len(ai.trades) == 2)
        assert ai.trades[-1].price == pytest.approx(price, abs=0.01)
        assert await s.call(ai, OrderType.MARKET, Side.BUY, amount=100.0) is None  # not enough paper cash
        assert not s.venue.public.ex.apiKey and not s.venue.public.ex.secret  # the client that reaches the exchange cannot sign
        failed = [e for e in s.sink.of("api_call") if e["result"] != "ok"]
        assert failed == []  # a private request would have met the sandbox's private_api=False refusal
        assert {e["endpoint"] for e in s.sink.of("api_call")} >= PUBLIC_USED  # market data did come from the exchange
        assert sandbox.ex.snapshot()["accounts"][account.api_key]["orders"] == []
    finally:
        await s.stop()


def paper_spot(sandbox: Any, tmp_path: Any, name: str, **overrides: Any) -> Any:
    """A paper strategy on BTC/USDT over the sandbox's public data (not started), with the sandbox's private API
    refused (a private request would fail loudly)."""
    sandbox.ex.faults = Faults(private_api=False)
    from planar_core.engine import strategy as build

    settings: dict[str, Any] = {
        "universe": ["BTC/USDT"],
        "initial_cash": 50_000,
        "store_root": str(tmp_path),
        "sandbox_endpoint": {"url": sandbox.url, "ws_url": sandbox.ws_url},
        "connection": {"health_interval": 3600},
    }
    return build(name, mode=Paper(), env={}, **{**settings, **overrides})


async def paper_perp(sandbox: Any, tmp_path: Any, name: str, **overrides: Any) -> Any:
    """A started paper strategy on BTC/USDT:USDT, 20 000 USDT, with the sandbox's private API refused (a private
    request would fail loudly)."""
    sandbox.ex.faults = Faults(private_api=False)
    from planar_core.engine import strategy as build

    s = build(
        name,
        mode=Paper(),
        env={},
        universe=["BTC/USDT:USDT"],
        margin=True,
        initial_cash=20_000,
        store_root=str(tmp_path),
        sandbox_endpoint={"url": sandbox.url, "ws_url": sandbox.ws_url},
        connection={"health_interval": 3600},
        **overrides,
    )
    await s.start()
    return s


async def test_paper_futures_positions_come_through_the_same_watchers(sandbox, account, tmp_path) -> None:
    """Paper mode behind the client's interface: the engine runs its live watchers and sync against the paper
    exchange (a position from a local fill arrives through watch_positions, a resting order through watch_orders)."""
    s = await paper_perp(sandbox, tmp_path, "paperf")
    try:
        ai = s.universe["BTC/USDT:USDT"]
        await wait_for(lambda: ai.last_price is not None)
        assert {"balance", "positions"} <= set(s.watcher_health())  # the same watchers as live
        trade = await s.call(ai, OrderType.MARKET, Side.SELL, amount=0.05, waitfor=1)
        assert isinstance(trade, Trade)
        await wait_for(lambda: ai.position.contracts == pytest.approx(-0.05))
        assert ai.position.entry_price == pytest.approx(trade.price)
        assert await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.05, reduce_only=True, waitfor=1)
        await wait_for(lambda: ai.position.contracts == 0)
        assert sandbox.ex.snapshot()["accounts"][account.api_key]["orders"] == []
    finally:
        await s.stop()


async def test_paper_takes_hedge_mode_as_live(sandbox, account, tmp_path) -> None:
    """Paper's account is the simulated exchange's, which keeps hedge mode as live's does: a long and a short of one
    symbol side by side, each closed on its own side. Paper refused ``position_mode = "hedge"`` at start although
    the docs said it took it (an outside trial)."""
    from planar_core.model import PositionSide

    s = await paper_perp(sandbox, tmp_path, "paperh", position_mode="hedge")
    try:
        ai = s.universe["BTC/USDT:USDT"]
        await wait_for(lambda: ai.last_price is not None)
        assert ai.hedged
        for side, ps in ((Side.BUY, PositionSide.LONG), (Side.SELL, PositionSide.SHORT)):
            assert isinstance(await s.call(ai, OrderType.MARKET, side, amount=0.02, position_side=ps, waitfor=1), Trade)
        await wait_for(lambda: (ai.position_of(PositionSide.LONG).contracts, ai.position_of(PositionSide.SHORT).contracts) == (0.02, -0.02))
        assert isinstance(await s.call(ai, OrderType.MARKET, Side.SELL, amount=0.02, position_side=PositionSide.LONG, waitfor=1), Trade)
        await wait_for(lambda: ai.position_of(PositionSide.LONG).contracts == 0)
        assert ai.position_of(PositionSide.SHORT).contracts == -0.02
    finally:
        await s.stop()


async def test_paper_refuses_a_market_order_over_the_exchanges_cap_as_live_does(sandbox, account, tmp_path, strategy_factory) -> None:
    """An outside trial (2 of 2): paper filled a 1 000 BTC market buy that the exchange refuses (-1013
    MARKET_LOT_SIZE: its market orders are capped below the lot's maximum); paper now takes the cap from the
    exchange's listing, as it takes the precision."""
    live = await strategy_factory(acct=sandbox.ex.add_account({"USDT": 10**9}), universe=["BTC/USDT"], event_tracing={"enabled": False})
    cap = float(live.venue.markets["BTC/USDT"]["limits"]["market"]["max"])
    assert await live.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=cap + 100, waitfor=1) is None
    said = live.last_refusal
    assert said is not None and "MARKET_LOT_SIZE" in said.detail
    s = paper_spot(sandbox, tmp_path, "paperbig", initial_cash=10**9)
    await s.start()
    try:
        await wait_for(lambda: s.universe["BTC/USDT"].last_price is not None)
        assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=cap + 100, waitfor=1) is None
        assert s.last_refusal is not None and s.last_refusal.reason == said.reason and "MARKET_LOT_SIZE" in s.last_refusal.detail
        assert isinstance(await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=cap, waitfor=1), Trade)  # at the cap: filled
    finally:
        await s.stop()


async def test_a_paper_restart_starts_the_account_and_the_breakers_afresh(sandbox, account, tmp_path) -> None:
    """An outside trial (2 of 2): a paper run gained, the restart's account was back at its initial cash (the
    simulated exchange ends with each run), and the breakers' peak from the run before read that as a 6 % drawdown:
    an emergency stop with no loss. The reset is said, and the breakers start from the fresh account."""

    def paper() -> Any:
        return paper_spot(sandbox, tmp_path, "paperrisk", initial_cash=20_000, ohlcv_watcher={"interval": 0.2}, risk={"max_drawdown": 0.05})

    s = paper()
    await s.start()
    try:
        ai = s.universe["BTC/USDT"]
        await wait_for(lambda: ai.last_price is not None)
        assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=round(14_000 / ai.last_price, 4), waitfor=1), Trade)
        sandbox.ex.markets[("spot", "BTCUSDT")].shock = 1.3  # a gain of about a fifth
        sandbox.hub.publish_now()
        await wait_for(lambda: (s.state.peak_equity or 0) > 23_000, timeout=15)
    finally:
        await s.stop()
        sandbox.ex.markets[("spot", "BTCUSDT")].shock = 1.0
    again = paper()
    await again.start()
    try:
        await wait_for(lambda: again.state.peak_equity is not None, timeout=15)  # the breakers looked at the fresh account
        assert not again.halted and again.state.breaker_tripped is None
        assert again.state.peak_equity == pytest.approx(20_000)
        assert [e["previous_peak_equity"] > 23_000 for e in again.sink.of("paper_reset")] == [True]
    finally:
        await again.stop()


async def test_paper_fills_a_limit_a_candles_wick_crossed_between_two_reads(sandbox, account, tmp_path, monkeypatch) -> None:
    """An outside trial (2 of 2): with the candles polled, a dip between two reads through a resting limit buy
    filled on the exchange and not in paper, which took only each read's close. The candle's new low since the last
    read is walked now, as the fill model walks a backtest's candle. The exchange's candles here are the data (the
    sandbox's klines do not record an admin price shock)."""
    s = paper_spot(sandbox, tmp_path, "paperwick", ohlcv_watcher={"enabled": False})
    await s.start()
    try:
        ai = s.universe["BTC/USDT"]
        opened = (await s.venue.public.ohlcv("BTC/USDT", "1m", 1, 5))[-1][0]
        close = 60_000.0
        served = [[opened, close, close, close, close, 1.0]]

        async def exchange_candles(symbol: str, timeframe: str, limit: int, timeout: float) -> list[list[float]]:
            return [list(c) for c in served]

        monkeypatch.setattr(s.venue.public, "ohlcv", exchange_candles)
        await s.venue.ohlcv("BTC/USDT", "1m", 1, 5)  # the first read: the close
        ai.last_price = close
        assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.1, price=59_400.0, waitfor=0) is PENDING
        served[0] = [opened, close, close * 1.001, close * 0.998, close, 2.0]  # a wick that does not reach it
        await s.venue.ohlcv("BTC/USDT", "1m", 1, 5)
        assert not ai.trades
        served[0] = [opened, close, close * 1.001, close * 0.985, close * 0.999, 3.0]  # down through it and back
        await s.venue.ohlcv("BTC/USDT", "1m", 1, 5)
        await wait_for(lambda: len(ai.trades) == 1, timeout=10)
        assert ai.trades[0].price == pytest.approx(59_400.0) and ai.trades[0].amount == pytest.approx(0.1)
    finally:
        await s.stop()
