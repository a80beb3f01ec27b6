"""Each pre-trade limit refuses the order that would breach it and accepts the one just inside."""

from __future__ import annotations

import pytest

from planar_core.model import Candles, OrderType, Side, Trade

from ..conftest import wait_for


async def risk_strategy(strategy_factory, sandbox, **risk):
    acct = sandbox.ex.add_account({"USDT": 10_000})
    universe = risk.pop("universe", ["BTC/USDT", "ETH/USDT"])
    s = await strategy_factory(acct=acct, universe=universe, risk=risk)
    await wait_for(lambda: all(ai.last_price for ai in s.universe.values()))
    return s


def amount_for(s, symbol: str, quote_value: float) -> float:
    return quote_value / s.universe[symbol].last_price


async def accepted(s, symbol: str, value: float, side: Side = Side.BUY) -> bool:
    return isinstance(await s.call(symbol, OrderType.MARKET, side, amount=amount_for(s, symbol, value), waitfor=2), Trade)


@pytest.mark.parametrize(
    ("risk", "symbol", "inside", "outside", "reason"),
    [
        ({"position_limit": 0.2}, "BTC/USDT", 1800, 2300, "position_limit"),
        ({"universe": [{"symbol": "ETH/USDT", "max_position": 0.1}]}, "ETH/USDT", 900, 1150, "max_position"),
        ({"universe": [{"symbol": "ETH/USDT", "risk_per_trade": 0.05}]}, "ETH/USDT", 450, 560, "risk_per_trade"),
        ({"max_total_exposure": 0.3}, "BTC/USDT", 2800, 3400, "max_total_exposure"),
        ({"max_leverage": 0.25}, "BTC/USDT", 2300, 2800, "max_leverage"),
    ],
)
async def test_single_limits(strategy_factory, sandbox, risk, symbol, inside, outside, reason) -> None:
    s = await risk_strategy(strategy_factory, sandbox, **risk)
    assert not await accepted(s, symbol, outside)
    assert reason in s.sink.of("risk_rejected")[-1]["reason"]
    assert await accepted(s, symbol, inside)


async def test_exposure_counts_every_position_and_reducing_is_always_allowed(strategy_factory, sandbox) -> None:
    s = await risk_strategy(strategy_factory, sandbox, max_total_exposure=0.3)
    assert await accepted(s, "BTC/USDT", 1900)
    await wait_for(lambda: s.cash("BTC").total > 0)  # checks use the watchers' view of the account
    assert not await accepted(s, "ETH/USDT", 1300)  # 0.19 + 0.13 > 0.3
    assert await accepted(s, "ETH/USDT", 900)
    assert await accepted(s, "BTC/USDT", 900, Side.SELL)  # reduces exposure


async def test_sector_limit(strategy_factory, sandbox) -> None:
    s = await risk_strategy(strategy_factory, sandbox, sector_limit=0.25, sectors={"BTC": "L1", "ETH": "L1"})
    assert await accepted(s, "BTC/USDT", 1500)
    await wait_for(lambda: s.cash("BTC").total > 0)
    assert not await accepted(s, "ETH/USDT", 1200)
    assert "sector_limit: L1" in s.sink.of("risk_rejected")[-1]["reason"]
    assert await accepted(s, "ETH/USDT", 800)


def moving_together(s, sandbox) -> None:
    """BTC's and ETH's last hour of candles with the same moves (correlation 1), the prices the sandbox's, and no
    candle stream to replace them."""
    btc, eth = s.universe["BTC/USDT"], s.universe["ETH/USDT"]
    candles = [[i * 60_000, 0, 0, 0, 100 * (1.01 if i % 3 else 0.99) ** i, 1.0] for i in range(61)]
    btc.ohlcv["1m"] = Candles.from_rows(candles)
    eth.ohlcv["1m"] = Candles.from_rows([c[:4] + [c[4] * 0.04] + c[5:] for c in candles])
    btc.last_price, eth.last_price = (
        sandbox.ex.mid(sandbox.ex.markets[("spot", "BTCUSDT")]),
        sandbox.ex.mid(sandbox.ex.markets[("spot", "ETHUSDT")]),
    )
    s.config.ohlcv_watcher.use_websocket = False


async def test_correlation_limit(strategy_factory, sandbox) -> None:
    s = await risk_strategy(strategy_factory, sandbox, correlation_limit=0.7)
    assert await accepted(s, "BTC/USDT", 1000)
    await wait_for(lambda: s.cash("BTC").total > 0)
    moving_together(s, sandbox)
    assert await s.call("ETH/USDT", OrderType.MARKET, Side.BUY, amount=amount_for(s, "ETH/USDT", 500), waitfor=1) is None
    assert "correlation_limit" in s.sink.of("risk_rejected")[-1]["reason"]


async def test_a_correlation_above_its_limit_alerts_once_per_crossing(strategy_factory, sandbox) -> None:
    """The monitor warns when the correlation risk crosses above its limit, not on every run while it stays there: it
    stays up as long as the positions are held, and its text carries the figure, so the dispatcher's duplicate filter
    let an alert through every 30 s. Falling back under and crossing again alerts again. A real webhook receives."""
    from planar_core.alerts import AlertConfig, AlertDispatcher

    from ..test_alerts import Receiver

    receiver = await Receiver().start()
    try:
        s = await risk_strategy(strategy_factory, sandbox, correlation_limit=0.7)
        # no duplicate filter: the second crossing comes within its 60 s
        s.alerts = AlertDispatcher(AlertConfig(webhook_url=f"{receiver.url}/hook/slack", dedupe_window_s=0))
        assert await accepted(s, "BTC/USDT", 1000) and await accepted(s, "ETH/USDT", 1000)
        await wait_for(lambda: s.cash("BTC").total > 0 and s.cash("ETH").total > 0)

        def alerts() -> list[str]:
            return [r["json"]["text"] for r in receiver.requests if "correlation" in (r["json"] or {}).get("text", "")]

        moving_together(s, sandbox)
        for _ in range(3):
            assert (await s.risk.monitor_once(s)).correlation_risk > 0.7
        await s.alerts.drain()
        assert len(alerts()) == 1 and "High correlation risk detected: 1.00 > 0.70" in alerts()[0]
        eth = s.universe["ETH/USDT"]  # ETH now moves against BTC: back under the limit
        eth.ohlcv["1m"] = Candles.from_rows([[r[0], 0, 0, 0, 1e4 / r[4], 1.0] for r in s.universe["BTC/USDT"].ohlcv["1m"].array.tolist()])
        assert (await s.risk.monitor_once(s)).correlation_risk < 0.7
        moving_together(s, sandbox)
        await s.risk.monitor_once(s)
        await s.alerts.drain()
        assert len(alerts()) == 2
    finally:
        await s.alerts.stop()
        assert receiver.runner is not None
        await receiver.runner.cleanup()


async def test_correlation_limit_ignores_a_leftover_no_order_can_trade(strategy_factory, sandbox) -> None:
    """BTC sold down to dust (below the market's minimum order value: what an MA cross leaves after each exit): an
    ETH buy that moves as BTC does is not refused for correlating with it. Before model/dust.py, a leftover worth
    about a dollar refused it."""
    s = await risk_strategy(strategy_factory, sandbox, correlation_limit=0.7)
    assert await accepted(s, "BTC/USDT", 1000)
    await wait_for(lambda: s.cash("BTC").total > 0)
    btc = s.universe["BTC/USDT"]
    step = 0.00001  # BTCUSDT's amount step on the sandbox, as on Binance
    assert isinstance(await s.call(btc, OrderType.MARKET, Side.SELL, amount=s.cash("BTC").total - 2 * step, waitfor=2), Trade)
    await wait_for(lambda: 0 < s.cash("BTC").total * btc.last_price < 5.0)  # below BTCUSDT's NOTIONAL minimum of 5
    moving_together(s, sandbox)
    assert isinstance(await s.call("ETH/USDT", OrderType.MARKET, Side.BUY, amount=amount_for(s, "ETH/USDT", 200), waitfor=2), Trade)
    assert not any("correlation_limit" in e["reason"] for e in s.sink.of("risk_rejected"))
    # (the same BTC above its minimum refuses it: test_correlation_limit)


async def test_volatility_adjustment_scales_the_order(strategy_factory, sandbox, account) -> None:
    s = await risk_strategy(strategy_factory, sandbox, volatility_adjustment=True, target_volatility=0.01)
    ai = s.universe["BTC/USDT"]
    price = ai.last_price
    ai.ohlcv["1m"] = Candles.from_rows([[i * 60_000, 0, 0, 0, price * (1.04 if i % 2 else 1.0), 1.0] for i in range(61)])  # ~4 % per candle
    ai.last_price = price
    trade = await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.02, waitfor=2)
    assert isinstance(trade, Trade)
    assert 0.02 * 0.25 - 1e-9 <= trade.amount < 0.02  # scaled down, never below a quarter
