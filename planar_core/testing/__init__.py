"""Testing a strategy: its logic on the real engine over an exchange in memory, driven bar by bar (docs/testing.md).

    from planar_core.testing import LogicTest

    async def test_a_dip_buys() -> None:
        async with LogicTest(Dip, {"drop": 0.01}, symbols=["BTC/USDT"], balances={"USDT": 1_000}) as t:
            t.history("BTC/USDT", [100.0, 101.0, 100.5])
            await t.bar("BTC/USDT", close=98.0)
            (order,) = t.placed()

``LogicTest`` is the harness (testing/harness.py); ``candle`` / ``candles`` build OHLCV rows (testing/builders.py).
The pieces under it are public too: ``FakeVenue`` (the ``Venue`` protocol in memory, which the engine's own tests
drive report by report), ``ExchangeVenue`` (the same with an exchange's account behind it), ``TestClock`` and
``market`` (a market in ccxt's shape).

This package is the top of planar_core's layers (beside the runner's callers): it imports the engine and the
runner, nothing imports it, and it never imports pytest.
"""

from .builders import candle, candles, timeframe_ms
from .exchange import ExchangeVenue
from .harness import LogicTest, Refused
from .venue import FakeVenue, TestClock, market

__all__ = ["ExchangeVenue", "FakeVenue", "LogicTest", "Refused", "TestClock", "candle", "candles", "market", "timeframe_ms"]
