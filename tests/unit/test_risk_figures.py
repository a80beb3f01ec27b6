"""Risk figures (risk/metrics.py) on stub strategies with known balances, prices, positions and candles: equity
through price paths, position values, exposure and leverage, available margin, volatility, correlation and
liquidity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planar_core.engine.strategy import Strategy
from planar_core.model import AssetInstance, Balance, Order, OrderStatus, OrderType, Position, Side
from planar_core.model.candles import Candles
from planar_core.risk import metrics as M
from tests.unit.stubs import market, stub_strategy

T = 1_700_000_000_000


def candles(closes: list[float], volume: float = 1.0) -> Candles:
    return Candles.from_rows([[T + i * 60_000, c, c, c, c, volume] for i, c in enumerate(closes)])


def complete_equity(s: Strategy) -> float:
    """Equity when every holding is valued (fails naming what is not)."""
    total, unpriced = M.equity(s)
    assert unpriced == []
    return total


# ------------------------------------------------------------------ equity and valuation
def test_spot_equity_is_every_balance_at_its_price_in_the_main_currency() -> None:
    s = stub_strategy(prices={"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0}, cash={"USDT": 1_000.0, "BTC": 0.1, "ETH": 2.0})
    assert complete_equity(s) == pytest.approx(1_000.0 + 5_000.0 + 6_000.0)


def test_a_currency_is_valued_through_a_chain_of_markets() -> None:
    s = stub_strategy(symbols=("ETH/BTC", "BTC/USDT"), prices={"ETH/BTC": 0.05, "BTC/USDT": 60_000.0}, cash={"ETH": 1.0})
    assert M.price_in_main(s, "ETH") == pytest.approx(3_000.0)
    assert M.price_in_main(s, "USDT") == 1.0


def test_a_holding_without_a_price_path_makes_equity_incomplete() -> None:
    s = stub_strategy(prices={"BTC/USDT": 50_000.0, "ETH/USDT": None}, cash={"USDT": 100.0, "ETH": 1.0, "DOGE": 5.0})  # type: ignore[dict-item]
    total, unpriced = M.equity(s)
    assert total == 100.0 and sorted(unpriced) == ["DOGE", "ETH"]


def test_a_conversion_market_outside_the_universe_completes_the_path() -> None:
    s = stub_strategy(symbols=("ETH/BTC",), prices={"ETH/BTC": 0.05}, cash={"ETH": 2.0})
    s.venue.ex.markets = {"BTC/USDT": market("BTC/USDT")}  # type: ignore[attr-defined]  # the stub exchange's markets
    assert M.equity(s)[1] == ["ETH"]
    s.holdings.set_conversion_prices({"BTC/USDT": 40_000.0})
    assert complete_equity(s) == pytest.approx(2.0 * 0.05 * 40_000.0)


def test_rates_are_the_price_path_walk_s_figure_for_every_currency() -> None:
    """``Rates`` (the breakers and the monitor value the account with it) answers what ``price_in_main``'s walk
    answers: a direct market takes the first one in the graph's order (spot before a contract), the main currency
    as a base is inverted, a chain and a currency without a path are walked."""
    s = stub_strategy(symbols=("ETH/BTC", "BTC/USDT"), prices={"ETH/BTC": 0.05, "BTC/USDT": 60_000.0}, cash={"USDT": 1.0})
    contract = AssetInstance("BTC/USDT:USDT", market("BTC/USDT:USDT", contract=True))
    contract.last_price = 61_000.0
    spot = dict(s.universe)
    s.universe.clear()
    s.universe.update({"BTC/USDT:USDT": contract, **spot})  # the contract listed first: the spot price must still win
    s.venue.ex.markets = {"USDT/TRY": market("USDT/TRY")}  # type: ignore[attr-defined]
    s.holdings.set_conversion_prices({"USDT/TRY": 40.0})
    rates = M.Rates(s)
    for cur in ("USDT", "BTC", "ETH", "TRY", "DOGE"):
        assert rates.get(cur) == M.price_in_main(s, cur), cur
    assert (rates.get("BTC"), rates.get("TRY"), rates.get("DOGE")) == (60_000.0, 1 / 40.0, None)


def test_futures_equity_is_the_wallet_plus_upnl_at_the_latest_price() -> None:
    s = stub_strategy(symbols=("BTC/USDT:USDT",), prices={"BTC/USDT:USDT": 51_000.0}, cash={"USDT": 1_000.0}, margin=True)
    ai = s.universe["BTC/USDT:USDT"]
    ai.position = Position(-0.2, 50_000.0, unrealized_pnl=999.0, unrealized_known=True)
    assert M.unrealized(ai) == pytest.approx(-200.0)  # the latest price wins over the exchange's figure
    assert complete_equity(s) == pytest.approx(800.0)
    ai.last_price = None
    assert M.unrealized(ai) == 999.0  # no price yet: the exchange's figure
    ai.position = Position(-0.2, 50_000.0)
    assert M.unrealized(ai) is None and M.equity(s)[1] == ["BTC/USDT:USDT"]


def test_position_value_is_signed_and_counts_the_extra_units() -> None:
    s = stub_strategy(symbols=("BTC/USDT:USDT",), prices={"BTC/USDT:USDT": 50_000.0}, margin=True)
    ai = s.universe["BTC/USDT:USDT"]
    ai.position = Position(-0.1, 49_000.0)
    assert M.position_value(s, ai) == pytest.approx(-5_000.0)
    assert M.position_value(s, ai, extra=0.1) == 0.0
    spot = stub_strategy(cash={"BTC": 0.5})
    assert M.position_value(spot, spot.universe["BTC/USDT"], extra=-0.1) == pytest.approx(0.4 * 50_000.0)


# ------------------------------------------------------------------ available margin
def test_available_margin_is_wallet_plus_upnl_minus_position_and_order_margin() -> None:
    s = stub_strategy(symbols=("BTC/USDT:USDT",), prices={"BTC/USDT:USDT": 51_000.0}, margin=True, default_leverage=10)
    ai = s.universe["BTC/USDT:USDT"]
    ai.position = Position(0.1, 50_000.0)
    resting = Order("c1", ai.symbol, Side.BUY, OrderType.GTC, 0.2, 45_000.0, status=OrderStatus.OPEN, filled=0.05)
    closing = Order("c2", ai.symbol, Side.SELL, OrderType.GTC, 0.1, 60_000.0, reduce_only=True, status=OrderStatus.OPEN)
    ai.orders["c1"], ai.orders["c2"] = resting, closing
    expected = 1_000.0 + 100.0 - 0.1 * 51_000.0 / 10 - 0.15 * 45_000.0 / 10
    assert M.available_margin(s.universe.values(), s.config.default_leverage, "USDT", 1_000.0) == pytest.approx(expected)
    assert (
        M.available_margin(s.universe.values(), s.config.default_leverage, "BTC", 1_000.0) == 1_000.0
    )  # another settle currency: nothing held against it


# ------------------------------------------------------------------ returns, volatility, correlation
def test_realized_volatility_is_the_sample_deviation_of_log_returns() -> None:
    closes = [100.0, 101.0, 99.0, 102.0, 100.0]
    ai = stub_strategy().universe["BTC/USDT"]
    ai.ohlcv["1m"] = candles(closes)
    assert M.realized_volatility(ai) == pytest.approx(float(np.diff(np.log(closes)).std(ddof=1)))
    ai.ohlcv["1m"] = candles([100.0, 101.0])
    assert math.isnan(M.realized_volatility(ai))  # too few candles


def test_correlation_of_moves_together_apart_and_flat() -> None:
    s = stub_strategy()
    a, b = s.universe["BTC/USDT"], s.universe["ETH/USDT"]
    path = [100.0, 102.0, 101.0, 105.0, 103.0, 108.0, 104.0]
    a.ohlcv["1m"] = candles(path)
    b.ohlcv["1m"] = candles([p * 0.5 for p in path])
    assert M.correlation(a, b) == pytest.approx(1.0)
    b.ohlcv["1m"] = candles([10_000.0 / p for p in path])
    assert M.correlation(a, b) == pytest.approx(-1.0)
    b.ohlcv["1m"] = candles([5.0] * len(path))
    assert math.isnan(M.correlation(a, b))


@pytest.mark.parametrize("lengths", [(200, 200, 200), (61, 61, 61), (5, 5, 5), (4, 4, 4), (3, 3, 3), (200, 40, 200), (0, 200, 200)])
def test_stacked_return_stats_are_the_asset_by_asset_figures(lengths: tuple[int, ...]) -> None:
    """The monitor's stacked computation (one logarithm of every asset's closes) gives exactly the figures of
    ``return_stats`` over each asset's ``returns``, whatever the candles' lengths (equal, unequal, too few)."""
    s = stub_strategy(symbols=("BTC/USDT", "ETH/USDT", "LTC/USDT"))
    rng = np.random.default_rng(sum(lengths))
    assets = list(s.universe.values())
    for ai, n in zip(assets, lengths, strict=True):
        ai.ohlcv["1m"] = candles(list(100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))))
    want = M.return_stats([M.returns(ai) for ai in assets])
    got = M.assets_return_stats(assets)
    assert repr(got) == repr(want)  # bit for bit (nan included)


# ------------------------------------------------------------------ the figures together
def test_exposure_leverage_and_drawdown_on_known_holdings() -> None:
    s = stub_strategy(cash={"USDT": 5_000.0, "BTC": 0.1, "ETH": 1.0})  # equity 5 000 + 5 000 + 3 000
    m = M.compute(s, day_start_equity=12_000.0, peak_equity=14_000.0)
    assert m.equity == pytest.approx(13_000.0) and m.positions == {"BTC/USDT": pytest.approx(5_000.0), "ETH/USDT": pytest.approx(3_000.0)}
    assert m.total_exposure == m.leverage == pytest.approx(8_000.0 / 13_000.0)
    assert m.daily_pnl == pytest.approx(1_000.0) and m.drawdown == pytest.approx(1_000.0 / 14_000.0)


def test_correlation_risk_is_position_weighted_and_signed_by_direction() -> None:
    s = stub_strategy(symbols=("BTC/USDT:USDT", "ETH/USDT:USDT"), prices={"BTC/USDT:USDT": 100.0, "ETH/USDT:USDT": 50.0}, margin=True)
    btc, eth = s.universe["BTC/USDT:USDT"], s.universe["ETH/USDT:USDT"]
    path = [100.0, 102.0, 101.0, 105.0, 103.0, 108.0, 104.0]
    btc.ohlcv["1m"], eth.ohlcv["1m"] = candles(path), candles([p / 2 for p in path])
    btc.position, eth.position = Position(1.0, 100.0), Position(2.0, 50.0)
    assert M.compute(s, None, None).correlation_risk == pytest.approx(1.0)
    eth.position = Position(-2.0, 50.0)  # a hedge: the same moves, the opposite side
    assert M.compute(s, None, None).correlation_risk == pytest.approx(-1.0)


def test_dust_is_no_position_for_correlation_volatility_and_liquidity() -> None:
    """A holding below the market's minimum order value (the leftover of an exit sized to a value) counts in the
    equity and the exposure, but no order can trade it: it neither correlates with the positions, nor weighs in
    their volatility, nor in the liquidity figure. Before model/dust.py, a thousandth of a dollar of ETH beside a
    BTC position read as a correlation risk of 1.0 (an alert every monitor run)."""
    s = stub_strategy(prices={"BTC/USDT": 100.0, "ETH/USDT": 50.0}, cash={"USDT": 1_000.0, "BTC": 3.0, "ETH": 0.00002})
    btc, eth = s.universe["BTC/USDT"], s.universe["ETH/USDT"]
    path = [100.0, 102.0, 101.0, 105.0, 103.0, 108.0, 104.0]
    btc.ohlcv["1m"], eth.ohlcv["1m"] = candles(path, volume=10.0), candles([p / 2 for p in path], volume=1e-9)
    m = M.compute(s, None, None)
    assert m.positions == {"BTC/USDT": pytest.approx(300.0), "ETH/USDT": pytest.approx(0.001)}
    assert m.total_exposure == pytest.approx(300.001 / 1_300.001)
    assert m.correlation_risk == 0.0  # one position: no pair
    assert m.volatility == pytest.approx(M.realized_volatility(btc))
    assert m.liquidity_risk == pytest.approx(3.0 / 70.0)  # BTC's alone (ETH's volume would make it 2 000 times larger)
    s.holdings.set_balances({"ETH": Balance(1.0, 0.0, 1.0)})  # worth 50, above the minimum of 5: a position
    assert M.compute(s, None, None).correlation_risk == pytest.approx(1.0)


def test_liquidity_risk_is_the_largest_position_over_an_hour_of_volume() -> None:
    s = stub_strategy(prices={"BTC/USDT": 100.0, "ETH/USDT": 10.0}, cash={"USDT": 0.0, "BTC": 3.0, "ETH": 4.0})
    s.universe["BTC/USDT"].ohlcv["1m"] = candles([100.0] * 90, volume=1.0)  # only the last 60 count: 60 BTC
    s.universe["ETH/USDT"].ohlcv["1m"] = candles([10.0] * 10, volume=2.0)  # 20 ETH
    assert M.compute(s, None, None).liquidity_risk == pytest.approx(max(3.0 / 60.0, 4.0 / 20.0))
    s.universe["ETH/USDT"].ohlcv.clear()
    assert M.compute(s, None, None).liquidity_risk == math.inf  # no volume known: not liquid


def test_no_equity_with_a_position_is_infinite_exposure_and_no_position_none() -> None:
    s = stub_strategy(cash={"USDT": 0.0})
    assert M.compute(s, None, None).total_exposure == 0.0
    s.holdings.set_balances({"BTC": Balance(0.1, 0.0, 0.1)})
    s.holdings.set_balances({"USDT": Balance(-5_000.0, 0.0, -5_000.0)})  # borrowed against it: equity 0
    assert M.compute(s, None, None).total_exposure == math.inf


def test_an_asset_replaced_under_its_symbol_is_valued_at_its_own_price() -> None:
    """The valuation's legs are kept between valuations: an asset object replaced under the same symbol (a test, a
    rebuilt universe) is read, not the one it replaced."""
    s = stub_strategy(prices={"BTC/USDT": 50_000.0, "ETH/USDT": 3_000.0}, cash={"BTC": 1.0})
    assert complete_equity(s) == pytest.approx(50_000.0)
    fresh = AssetInstance("BTC/USDT", market("BTC/USDT"))
    fresh.last_price = 40_000.0
    s.universe["BTC/USDT"] = fresh
    assert complete_equity(s) == pytest.approx(40_000.0)


def test_hedge_mode_marks_each_side_at_its_own_entry() -> None:
    """Long 2 @ 100 and short 1 @ 110 at 105: 10 + 5 = 15 of unrealized PnL, and a fully hedged pair still has its
    PnL. The net view of the two sides (one entry for both) read 5, and equity skipped a pair of equal sizes (found
    by a review: a futures backtest's headline figures)."""
    from planar_core.model import PositionSide

    s = stub_strategy(symbols=("BTC/USDT:USDT",), prices={"BTC/USDT:USDT": 105.0}, cash={"USDT": 1_000.0}, margin=True)
    ai = s.universe["BTC/USDT:USDT"]
    ai.hedged = True
    ai.positions[PositionSide.LONG] = Position(2.0, 100.0)
    ai.positions[PositionSide.SHORT] = Position(-1.0, 110.0)
    assert M.unrealized(ai) == pytest.approx(15.0) and complete_equity(s) == pytest.approx(1_015.0)
    ai.positions[PositionSide.LONG] = Position(1.0, 100.0)
    assert M.unrealized(ai) == pytest.approx(10.0) and complete_equity(s) == pytest.approx(1_010.0)
