"""Pre-trade risk checks on a stub strategy: limits refuse what increases risk, never what reduces it."""

from __future__ import annotations

from planar_core.model import Balance, OrderRequest, OrderType, Side

from .stubs import stub_strategy


def req(symbol: str, side: Side, amount: float, price: float, reduce_only: bool = False) -> OrderRequest:
    return OrderRequest(symbol, OrderType.GTC, side, amount, price, reduce_only, price)


def test_position_limit_refuses_growth_and_allows_reduction() -> None:
    s = stub_strategy(risk={"position_limit": 0.3}, cash={"USDT": 10_000.0, "BTC": 0.1})  # 5 000 of 15 000 in BTC
    ai = s.universe["BTC/USDT"]
    assert s.risk.check(s, ai, req("BTC/USDT", Side.BUY, 0.02, 50_000.0)) is not None
    assert "position_limit" in str(s.risk.check(s, ai, req("BTC/USDT", Side.BUY, 0.02, 50_000.0)))
    assert s.risk.check(s, ai, req("BTC/USDT", Side.SELL, 0.05, 50_000.0)) is None


def test_risk_per_trade_and_max_total_exposure() -> None:
    s = stub_strategy(universe=[{"symbol": "BTC/USDT", "risk_per_trade": 0.05}, "ETH/USDT"], risk={"max_total_exposure": 0.5})
    btc, eth = s.universe["BTC/USDT"], s.universe["ETH/USDT"]
    assert "risk_per_trade" in str(s.risk.check(s, btc, req("BTC/USDT", Side.BUY, 0.02, 50_000.0)))  # 1 000 of 10 000
    assert s.risk.check(s, btc, req("BTC/USDT", Side.BUY, 0.009, 50_000.0)) is None
    s.holdings.set_balances({"ETH": Balance(1.5, 0.0, 1.5)})  # 4 500 of 14 500 held in ETH
    assert "max_total_exposure" in str(s.risk.check(s, eth, req("ETH/USDT", Side.BUY, 1.0, 3_000.0)))


def test_an_unvalued_currency_refuses_risk_increasing_orders() -> None:
    s = stub_strategy(prices={"BTC/USDT": 50_000.0}, cash={"USDT": 10_000.0, "ETH": 1.0})  # ETH has no price
    ai = s.universe["BTC/USDT"]
    assert "valuation incomplete" in str(s.risk.check(s, ai, req("BTC/USDT", Side.BUY, 0.01, 50_000.0)))
