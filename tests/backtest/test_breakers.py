"""The daily-loss and drawdown breakers in a backtest: armed as live arms them, on the simulated day."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from planar_core.backtest.run import Backtest, backtest_config
from planar_core.config import StrategyConfig
from planar_core.logic import Logic, LogicParams
from planar_core.model import Candle
from planar_core.model.context import StrategyContext
from planar_core.model.types import Side
from planar_core.model.views import AssetView
from planar_core.state import StateStore
from planar_core.trace.reading import read_trace

T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC: the candles' days start at midnight


def falling(days: float, start: float = 60_000.0, per_day: float = 0.01) -> pd.DataFrame:
    """A price that falls ``per_day`` of ``start`` a day, steadily: a long position loses the same every day."""
    n = int(days * 1440)
    c = start * (1 - per_day * np.arange(1, n + 1) / 1440)
    o = np.concatenate([[start], c[:-1]])
    return pd.DataFrame({"timestamp": T0 + np.arange(n) * 60_000, "open": o, "high": o, "low": c, "close": c, "volume": 1.0})


class BuyOnce(Logic):
    class Params(LogicParams):
        amount: float = 0.5

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.bought = False

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if not self.bought:
            self.bought = True
            await ctx.execute(ai, Side.BUY, self.params.amount)


def run(tmp: Path, days: float, **risk: object) -> Backtest:
    cfg = StrategyConfig.model_validate(
        {
            "name": "brk",
            "universe": ["BTC/USDT"],
            "store_root": str(tmp),
            "timeframes": ["1m"],
            "logic": "tests.backtest.test_breakers:BuyOnce",
            "initial_cash": 100_000,
            "risk": {"monitor_interval": 600, **risk},
        }
    )
    bt = Backtest(backtest_config(cfg, tmp / "bt"), {"BTC/USDT": falling(days)}, warmup=10, logic=BuyOnce(BuyOnce.Params()))
    return bt


async def test_the_drawdown_breaker_trips_on_simulated_prices_and_ends_the_run(tmp_path: Path) -> None:
    bt = run(tmp_path, 2, max_drawdown=0.002)  # 0.5 BTC of 100 000: 0.2 % of equity is a fall of about 0.7 %
    result = await bt.run()
    assert result.result.reason == "halted"
    df = read_trace(result.trace_root)
    tripped = df[df["kind"] == "breaker_tripped"]
    assert [p["breaker"] for p in tripped["payload"]] == ["drawdown"]
    assert StateStore(bt.cfg.shared_root).load().halted
    assert result.last_ms is not None and result.last_ms < T0 + 2 * 86_400_000  # it stopped before the data ended


async def test_the_daily_loss_counts_from_the_simulated_midnight(tmp_path: Path) -> None:
    # 0.5 BTC falling 1 % (600 USDT) a day: about 300 lost each day, 900 over three days; a 450 limit holds every day
    bt = run(tmp_path, 3, max_daily_loss=450)
    result = await bt.run()
    assert result.result.reason != "halted"
    df = read_trace(result.trace_root)
    assert (df["kind"] == "breaker_tripped").sum() == 0
    assert result.initial_equity - result.final_equity > 850  # the loss over the run is well past the daily limit
    state = StateStore(bt.cfg.shared_root).load()
    assert result.last_ms == T0 + 3 * 86_400_000  # the last candle's close: midnight, a fourth simulated day
    assert state.day == datetime.fromtimestamp(result.last_ms / 1000, UTC).strftime("%Y-%m-%d")  # not the machine's day


def flat_then(start: float, after: float, minutes: int = 60, move_at: int = 30) -> pd.DataFrame:
    """A price that holds at ``start``, moves to ``after`` in the candle ``move_at`` and holds there."""
    c = np.where(np.arange(minutes) < move_at, start, after).astype(float)
    o = np.concatenate([[start], c[:-1]])
    return pd.DataFrame(
        {
            "timestamp": T0 + np.arange(minutes) * 60_000,
            "open": o,
            "high": np.maximum(o, c),
            "low": np.minimum(o, c),
            "close": c,
            "volume": 1.0,
        }
    )


class BuyEachOnce(Logic):
    class Params(LogicParams):
        value: float = 30_000.0

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.bought: set[str] = set()

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if ai.symbol not in self.bought:
            self.bought.add(ai.symbol)
            await ctx.execute(ai, Side.BUY, self.params.value / bar.close)


async def test_candles_of_one_time_are_valued_together(tmp_path: Path) -> None:
    """BTC falls 10 % in the candle in which ETH rises 10 %, each holding worth 30 % of the account: the account
    is worth the same after that candle time. Valued after each symbol's candle, it looked 3 % down (or 3 % up,
    then back) between the two, and a 2 % drawdown breaker tripped on a state that never existed."""
    cfg = StrategyConfig.model_validate(
        {
            "name": "together",
            "universe": ["BTC/USDT", "ETH/USDT"],
            "store_root": str(tmp_path),
            "timeframes": ["1m"],
            "logic": "tests.backtest.test_breakers:BuyEachOnce",
            "initial_cash": 100_000,
            "risk": {"monitor_interval": 600, "max_drawdown": 0.02},
        }
    )
    data = {"BTC/USDT": flat_then(60_000.0, 54_000.0), "ETH/USDT": flat_then(3_000.0, 3_300.0)}
    result = await Backtest(backtest_config(cfg, tmp_path / "bt"), data, warmup=10, logic=BuyEachOnce(BuyEachOnce.Params())).run()
    df = read_trace(result.trace_root)
    assert (df["kind"] == "trade_executed").sum() == 2
    assert (df["kind"] == "breaker_tripped").sum() == 0, df[df["kind"] == "breaker_tripped"]["payload"].tolist()
    assert result.result.reason != "halted"
    assert abs(result.final_equity - result.initial_equity) < 0.005 * result.initial_equity
