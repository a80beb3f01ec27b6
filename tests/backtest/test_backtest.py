"""Backtests through the full engine: deterministic, history before on_start, a limit order filled where the path
crosses it, and the summary read back from the trace."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planar_core.backtest.command import backtest
from planar_core.backtest.run import BACKTEST_HISTORY_KEPT, Backtest, backtest_config
from planar_core.config import StrategyConfig
from planar_core.logic import Logic, LogicParams
from planar_core.model import PENDING, Candle
from planar_core.model.context import StrategyContext
from planar_core.model.types import OrderType, Side
from planar_core.model.views import AssetView, OrderView, TradeView
from planar_core.runner.host import LogicError
from planar_core.trace.reading import read_trace

T0 = 1_700_000_000_000


def candles(n: int, seed: int, start: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    c = start * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    o = np.concatenate([[start], c[:-1]])
    h = np.maximum(o, c) * (1 + np.abs(rng.normal(0, 0.0005, n)))
    lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0, 0.0005, n)))
    return pd.DataFrame({"timestamp": T0 + np.arange(n) * 60_000, "open": o, "high": h, "low": lo, "close": c, "volume": 1.0})


def config(tmp: Path, logic: str = "planar_core.strategies.ma_cross:MACross", **extra: object) -> StrategyConfig:
    return StrategyConfig.model_validate(
        {
            "name": "bt",
            "universe": ["BTC/USDT", "ETH/USDT"],
            "store_root": str(tmp),
            "timeframes": ["1m"],
            "logic": logic,
            "initial_cash": 10_000,
            **extra,
        }
    )


DATA = {"BTC/USDT": candles(400, 1, 60_000.0), "ETH/USDT": candles(400, 2, 3_000.0)}


async def test_the_same_inputs_give_the_same_trace(tmp_path: Path) -> None:
    tables = []
    for run in ("a", "b"):
        cfg = backtest_config(config(tmp_path / run), tmp_path / run / "bt", {"fast": 3, "slow": 8})
        result = await Backtest(cfg, DATA).run()
        assert result.errors == []
        df = read_trace(result.trace_root)
        tables.append(df.drop(columns=["latency_ms"], errors="ignore"))
    a, b = tables
    assert (a["kind"] == "trade_executed").sum() > 10  # the strategy traded: the comparison is not of two empty traces
    pd.testing.assert_frame_equal(a, b)


class Probe(Logic):
    """Records what it sees: the history in on_start, every bar, and places one resting buy below the market."""

    class Params(LogicParams):
        below: float = 0.002

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.history: dict[str, int] = {}
        self.placed = False
        self.fills: list[tuple[int, float]] = []

    async def on_start(self, ctx: StrategyContext) -> None:
        for symbol, ai in ctx.universe.items():
            self.history[symbol] = len(ai.candles("1m").closed)

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if not self.placed and ai.symbol == "BTC/USDT":
            self.placed = True
            await ctx.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=round(bar.close * (1 - self.params.below), 2), waitfor=0)

    async def on_fill(self, ctx: StrategyContext, order: object, trade: object) -> None:
        self.fills.append((ctx.now(), trade.price))


async def test_history_is_loaded_before_on_start_and_a_limit_fills_at_its_price(tmp_path: Path) -> None:
    cfg = backtest_config(config(tmp_path, logic="tests.backtest.test_backtest:Probe"), tmp_path / "bt")
    probe = Probe(Probe.Params())
    run = await Backtest(cfg, DATA, warmup=50, logic=probe).run()
    assert probe.history == {"BTC/USDT": 50, "ETH/USDT": 50}
    (when, price), *_ = probe.fills
    df = read_trace(run.trace_root)
    placed = df[df["kind"] == "order_placed"].iloc[0]
    assert price == placed["price"]  # a resting limit fills at its own price (maker), not at a candle's extreme
    bars = DATA["BTC/USDT"]
    after = bars[bars["timestamp"] >= int(placed["timestamp"].value // 1_000_000) - 60_000]
    crossed = after[after["low"] <= price].iloc[0]  # the first candle whose path reaches the price
    assert crossed["timestamp"] <= when < crossed["timestamp"] + 60_000


class Rests(Logic):
    """Places one buy far below the market and asks to wait an hour for its fill."""

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.answers: list[object] = []

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if not self.answers and ai.symbol == "BTC/USDT":
            price = round(bar.close * 0.5, 2)
            self.answers.append(await ctx.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=price, waitfor=3600))


async def test_an_order_s_waitfor_does_not_wait_on_the_wall_clock(tmp_path: Path) -> None:
    """The simulated clock stands still while the logic waits, so the answer comes at once (pending: the order
    rests); waiting the hour on the machine's clock would only stall the run (the bound below catches that)."""
    cfg = backtest_config(config(tmp_path, logic="tests.backtest.test_backtest:Rests"), tmp_path / "bt")
    logic = Rests(LogicParams())
    run = await asyncio.wait_for(Backtest(cfg, DATA, warmup=50, logic=logic).run(), timeout=120)
    assert run.bars == 2 * 350 and logic.answers == [PENDING]  # accepted, resting
    placed = read_trace(run.trace_root)
    assert (placed["kind"] == "order_placed").sum() == 1


async def test_summary_agrees_with_the_trace(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    summary = await backtest(cfg, DATA, tmp_path / "out", params={"fast": 3, "slow": 8})
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == json.loads(json.dumps(summary))
    df = read_trace(str(summary["trace"]))
    assert summary["trades"] == int((df["kind"] == "trade_executed").sum()) > 0
    assert summary["bars"] == 2 * (400 - 100)
    last = df[df["kind"] == "risk_metrics"]["payload"].iloc[-1]
    assert summary["final_equity"] == pytest.approx(last["payload"]["equity"])
    first = df[df["kind"] == "risk_metrics"]["payload"].iloc[0]
    assert summary["initial_equity"] == pytest.approx(first["payload"]["equity"]) == pytest.approx(10_000)  # before any order
    assert 0 <= summary["max_drawdown"] < 1
    # the HTML report says the same: its summary, its trade list, its equity series
    report = tmp_path / "out" / "report"
    assert Path(str(summary["report"])) == report / "report.html" and (report / "equity.png").exists()
    shown = json.loads((report / "summary.json").read_text())
    assert {k: shown[k] for k in ("trades", "realized_pnl", "fees", "final_equity", "max_drawdown", "win_rate")} == {
        k: summary[k] for k in ("trades", "realized_pnl", "fees", "final_equity", "max_drawdown", "win_rate")
    }
    trades = pd.read_csv(report / "trades.csv")
    assert summary["realized_pnl"] == pytest.approx(trades["realized_pnl"].fillna(0).sum())
    assert summary["round_trips"] > 0 and summary["realized_pnl"] != 0


async def test_a_second_run_into_the_same_folder_replaces_the_first(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    first = await backtest(cfg, DATA, tmp_path / "out", params={"fast": 3, "slow": 8}, report=False)
    second = await backtest(cfg, DATA, tmp_path / "out", params={"fast": 3, "slow": 8}, report=False)
    assert first["trades"] > 0
    assert {k: second[k] for k in ("trades", "realized_pnl", "final_equity")} == {
        k: first[k] for k in ("trades", "realized_pnl", "final_equity")
    }


def test_the_command_runs_a_config_on_candle_files_and_prints_strict_json(tmp_path: Path) -> None:
    """``planar backtest CONFIG --data DIR --param k=v --json``: one strict-JSON object with the issue's keys; a
    missing file is one line and exit 2."""
    import subprocess
    import sys

    data = tmp_path / "data"
    data.mkdir()
    DATA["BTC/USDT"].to_csv(data / "BTC_USDT-1m.csv", index=False)
    DATA["ETH/USDT"].assign(timestamp=pd.to_datetime(DATA["ETH/USDT"]["timestamp"], unit="ms", utc=True).astype(str)).to_parquet(
        data / "ETH_USDT-1m.parquet"
    )
    cfg = tmp_path / "bt.toml"
    cfg.write_text(
        'name = "bt"\nuniverse = ["BTC/USDT", "ETH/USDT"]\ntimeframes = ["1m"]\ninitial_cash = 10000\n'
        'logic = "planar_core.strategies.ma_cross:MACross"\nlogic_params = { fast = 3, slow = 8 }\n'
    )
    run = [sys.executable, "-m", "planar_core", "backtest", str(cfg), "--data", str(data), "--out", str(tmp_path / "out")]
    out = subprocess.run([*run, "--param", "slow=9", "--json"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"trades", "realized_pnl", "max_drawdown", "bars", "bars_per_s"} <= set(summary)
    assert summary["bars"] == 2 * 300 and summary["trades"] > 0
    # the HTML report shows the printed summary's figures under the same names (it showed the first and last trade
    # as "start" and "end", left out sharpe, exposure and bars, and cut amounts to four decimals)
    page = (tmp_path / "out" / "report" / "report.html").read_text()
    assert json.loads((tmp_path / "out" / "report" / "summary.json").read_text()) == {k: v for k, v in summary.items() if k != "report"}
    for name in ("start", "end", "sharpe", "exposure (share of the time)", "bars", "bars_per_s (candles per second)"):
        assert f"<th>{name}</th>" in page, name
    assert f"<th>start</th><td>{summary['start']}</td>" in page
    amounts = pd.read_csv(tmp_path / "out" / "report" / "trades.csv")["amount"]
    assert all(f"<td>{a:,.10g}</td>" in page for a in amounts)
    (data / "ETH_USDT-1m.parquet").unlink()
    bad = subprocess.run(run, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "ETH_USDT-1m" in bad.stderr


class Bracketed(Logic):
    """One entry with attached exits (a stop-loss and a take-profit the engine places once the entry fills)."""

    class Params(LogicParams):
        side: str = "buy"
        position_side: str = "both"  # hedge mode: long or short

    done = False

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if self.done or ai.symbol not in ("BTC/USDT", "BTC/USDT:USDT"):
            return
        self.done = True
        up, down = bar.close * 1.004, bar.close * 0.996
        ps = self.params.position_side
        if self.params.side == "buy":
            await ctx.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, stop_loss=down, take_profit=up, position_side=ps)
        else:
            await ctx.call(ai, OrderType.MARKET, Side.SELL, amount=0.01, stop_loss=up, take_profit=down, position_side=ps)


@pytest.mark.parametrize(
    ("symbols", "side", "position_side"),
    [
        (["BTC/USDT"], "buy", "both"),
        (["BTC/USDT:USDT"], "buy", "both"),
        (["BTC/USDT:USDT"], "sell", "both"),
        (["BTC/USDT:USDT"], "buy", "long"),
        (["BTC/USDT:USDT"], "sell", "short"),
    ],
    ids=["spot", "long", "short", "hedge-long", "hedge-short"],
)
async def test_attached_exits_are_placed_and_one_closes_the_position(
    tmp_path: Path, symbols: list[str], side: str, position_side: str
) -> None:
    """Paper used to refuse a spot entry's exits (insufficient balance: the fee is taken in the coin bought); on the
    simulated venue (paper and backtest) the exits go as live sends them and one of them closes the position."""
    margin = ":" in symbols[0]
    cfg = backtest_config(
        config(
            tmp_path,
            logic="tests.backtest.test_backtest:Bracketed",
            universe=symbols,
            margin=margin,
            logic_params={"side": side, "position_side": position_side},
            **({"position_mode": "hedge"} if position_side != "both" else {}),
        ),
        tmp_path / "bt",
    )
    data = {symbols[0]: DATA["BTC/USDT"]}
    bt = Backtest(cfg, data)
    run = await bt.run()
    df = read_trace(run.trace_root)
    assert (df["kind"] == "order_failed").sum() == 0, df[df["kind"] == "order_failed"]["payload"].tolist()
    placed = df[df["kind"] == "order_placed"]
    assert len(placed) == 3  # the entry and its two exits
    fills = df[df["kind"] == "trade_executed"]
    assert len(fills) == 2  # the entry, then one exit: the other was cancelled with it
    assert fills["side"].tolist() == ([side, "sell" if side == "buy" else "buy"])
    # the exchange's own word: nothing left open, nothing held (spot: what the fees left)
    assert not bt.venue.has_open_orders()
    assert all(not p.amount for p in bt.venue.account.positions.values())
    assert bt.venue.account.hedge_mode == (position_side != "both")  # the engine set the exchange's position mode
    if position_side != "both":  # the entry and both exits on the one side of the hedge
        sides = {o.position_side for o in bt.venue.account.orders.values()} | {
            a.position_side for a in bt.venue.account.algo_orders.values()
        }
        assert sides == {position_side.upper()} and len(bt.venue.account.algo_orders) == 2
    assert float(sum(bt.venue.account.balance("BTC"))) < 0.0001


async def test_candles_streamed_in_chunks_give_the_same_run_and_every_symbol_its_bars(tmp_path: Path) -> None:
    """A year of candles is read in chunks (memory flat in the history's length): chunked and whole inputs give the
    same trace, each symbol gets every one of its candles, and a candle out of order stops the run naming it."""
    from planar_core.backtest.source import CandleError

    class Count(Logic):
        class Params(LogicParams):
            pass

        def __init__(self, params: LogicParams | None = None) -> None:
            super().__init__(params)
            self.bars: dict[str, int] = {}

        async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
            self.bars[ai.symbol] = self.bars.get(ai.symbol, 0) + 1

    def chunks(df: pd.DataFrame) -> Iterator[pd.DataFrame]:
        return (df.iloc[i : i + 37] for i in range(0, len(df), 37))

    tables = []
    for name, data in (("whole", DATA), ("chunks", {s: chunks(df) for s, df in DATA.items()})):
        counter = Count()
        cfg = backtest_config(
            config(tmp_path / name, logic="planar_core.strategies.ma_cross:MACross"), tmp_path / name / "bt", {"fast": 3, "slow": 8}
        )
        run = await Backtest(cfg, data).run()
        tables.append(read_trace(run.trace_root))
        counter_run = await Backtest(
            backtest_config(config(tmp_path / f"{name}c"), tmp_path / f"{name}c" / "bt"), DATA, logic=counter
        ).run()
        assert counter.bars == {"BTC/USDT": 300, "ETH/USDT": 300} and counter_run.bars == 600
    pd.testing.assert_frame_equal(tables[0], tables[1])
    shuffled = {"BTC/USDT": DATA["BTC/USDT"].iloc[[0, 2, 1, 3]], "ETH/USDT": DATA["ETH/USDT"]}
    with pytest.raises(CandleError, match="BTC/USDT: the candle at"):
        await Backtest(backtest_config(config(tmp_path / "bad"), tmp_path / "bad" / "bt"), shuffled, warmup=1).run()


def test_one_big_frame_is_turned_into_rows_a_block_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A year handed over as one DataFrame per symbol (what the bench and most users do) must not become half a
    million Python rows before the first candle runs: the rows are made ``BLOCK_ROWS`` at a time, as they are used."""
    from planar_core.backtest import source

    sizes: list[int] = []
    to_numpy = pd.DataFrame.to_numpy

    def spy(self: pd.DataFrame, *args: object, **kwargs: object) -> np.ndarray:
        sizes.append(len(self))
        return to_numpy(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_numpy", spy)
    frame = candles(3 * source.BLOCK_ROWS + 5, 7, 100.0)
    stream = source.SymbolCandles("BTC/USDT", frame)
    assert stream.head is not None and max(sizes) <= source.BLOCK_ROWS  # the first candle: one block made
    assert sum(1 for _ in stream) == len(frame)  # and every candle, once, in order
    assert max(sizes) <= source.BLOCK_ROWS and sum(sizes) == len(frame)


class Churns(Logic):
    """Buys on one bar and sells most of it on the next, on every symbol: an order per candle."""

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.bought: dict[str, float] = {}

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if ai.symbol in self.bought:
            await ctx.call(ai, OrderType.MARKET, Side.SELL, amount=self.bought.pop(ai.symbol) * 0.9, waitfor=0)
        else:
            self.bought[ai.symbol] = 100 / bar.close
            await ctx.call(ai, OrderType.MARKET, Side.BUY, amount=self.bought[ai.symbol], waitfor=0)


async def test_a_long_run_keeps_a_bounded_history_and_trades_the_same(tmp_path: Path) -> None:
    """``history_kept`` bounds the closed orders and trades the engine holds per asset and the simulated venue holds
    per account (memory follows open orders, not the run's length); what the run does is the same either way."""
    traces, held = [], []
    for kept in (100, 5000):
        cfg = backtest_config(config(tmp_path / str(kept), history_kept=kept), tmp_path / str(kept) / "bt")
        bt = Backtest(cfg, DATA, warmup=50, logic=Churns(LogicParams()))
        run = await bt.run()
        assert run.errors == []
        traces.append(read_trace(run.trace_root).drop(columns=["latency_ms"], errors="ignore"))
        acct = bt.venue.account
        held.append(
            (
                [len(ai.orders) for ai in bt.s.universe.values()],
                [len(ai.trades) for ai in bt.s.universe.values()],
                len(acct.orders),
                len(acct.fills),
            )
        )
    bounded, whole = held
    assert (traces[0]["kind"] == "trade_executed").sum() >= 600  # 350 candles a symbol, an order each
    assert min(whole[0]) > 300 and whole[2] > 600  # the default keeps them all at this length
    assert max(bounded[0]) <= 200 and max(bounded[1]) <= 200 and bounded[2] <= 200 and bounded[3] <= 200
    pd.testing.assert_frame_equal(traces[0], traces[1])


async def test_a_backtest_keeps_a_short_history_unless_its_config_sets_one(tmp_path: Path) -> None:
    """A backtest passes a year of orders in minutes: unless the config sets ``history_kept``, the engine and the
    simulated venue keep ``BACKTEST_HISTORY_KEPT`` closed orders an asset (live keeps 5 000), so memory stops
    growing after about twice that many orders (bench/backtest.py measures a month against a year); a config that
    sets ``history_kept`` is obeyed. The trace keeps every order."""
    live_default = StrategyConfig.model_fields["history_kept"].default
    assert BACKTEST_HISTORY_KEPT < live_default
    assert backtest_config(config(tmp_path / "set", history_kept=live_default), tmp_path / "set" / "bt").history_kept == live_default
    cfg = backtest_config(config(tmp_path, universe=["BTC/USDT"]), tmp_path / "bt")
    assert cfg.history_kept == BACKTEST_HISTORY_KEPT
    orders = 2 * BACKTEST_HISTORY_KEPT + 100
    bt = Backtest(cfg, {"BTC/USDT": candles(orders + 50, 1, 60_000.0)}, warmup=50, logic=Churns(LogicParams()))
    run = await bt.run()
    assert run.errors == []
    assert (read_trace(run.trace_root)["kind"] == "trade_executed").sum() >= orders
    ai = bt.s.universe["BTC/USDT"]
    assert len(ai.orders) <= 2 * BACKTEST_HISTORY_KEPT and len(ai.trades) <= 2 * BACKTEST_HISTORY_KEPT
    assert len(bt.venue.account.orders) <= 2 * BACKTEST_HISTORY_KEPT and len(bt.venue.account.fills) <= 2 * BACKTEST_HISTORY_KEPT


class ExecutesOnce(Logic):
    """Trades once through the execution policy (``ctx.execute``), as MACross does."""

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if ai.symbol == "BTC/USDT" and not ai.orders:
            await ctx.execute(ai, Side.BUY, 0.01)


async def test_a_policy_limit_expires_on_the_simulated_clock(tmp_path: Path) -> None:
    """A tuned policy rests a limit 1 % under the market with a 300 s timeout: in a backtest it is cancelled 298 s
    of *simulated* time after it was placed (the policy waits 2 s for its fill first). On the event loop's timer it
    would wait 298 s of the machine's time: the run ends first and the order never expires."""
    cfg = backtest_config(config(tmp_path, logic="tests.backtest.test_backtest:ExecutesOnce"), tmp_path / "bt")
    bt = Backtest(cfg, DATA, warmup=50, logic=ExecutesOnce(LogicParams()))
    bt.s.state_store.update(tuned_params={"prefer_limit_orders": True, "limit_order_offset": -1.0, "order_timeout": 300.0})
    run = await asyncio.wait_for(bt.run(), timeout=120)
    df = read_trace(run.trace_root)
    placed = df[df["kind"] == "order_placed"]
    assert len(placed) == 1 and placed.iloc[0]["price"] < DATA["BTC/USDT"]["close"].iloc[50]  # a resting limit
    cancelled = df[df["kind"] == "order_cancelled"]
    assert len(cancelled) == 1
    waited = (cancelled.iloc[0]["timestamp"] - placed.iloc[0]["timestamp"]).total_seconds()
    assert 298 <= waited < 299


async def test_the_simulated_stream_s_fills_name_their_order_as_live_s_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fill on the simulated user stream carries its order's client id, as Binance's execution report does
    (``c``): the engine finds the order by it, never by searching every order it holds by the exchange's id (a
    search that grew with the run: a year holds up to twice ``history_kept`` orders an asset)."""
    from planar_core.engine.strategy import Strategy
    from planar_core.model import AssetInstance
    from planar_core.model.venue import FillReport

    fills: list[FillReport] = []
    searches: list[str] = []
    apply_trade, order_by_id = Strategy.apply_trade, AssetInstance.order_by_id
    monkeypatch.setattr(Strategy, "apply_trade", lambda self, fill: (fills.append(fill), apply_trade(self, fill))[1])
    monkeypatch.setattr(AssetInstance, "order_by_id", lambda self, oid: (searches.append(oid), order_by_id(self, oid))[1])
    cfg = backtest_config(config(tmp_path), tmp_path / "bt", {"fast": 3, "slow": 8})
    run = await Backtest(cfg, DATA).run()
    assert run.errors == [] and len(fills) > 10
    assert all(f.client_order_id for f in fills)
    assert searches == []


class StopChurn(Logic):
    """A futures stop far below the market each bar, the last one cancelled: a conditional order per candle."""

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        for o in ai.open_orders():
            await ctx.cancel(ai, o)
        await ctx.call(ai, OrderType.STOP_MARKET, Side.SELL, amount=0.01, trigger_price=bar.close * 0.8, waitfor=0)


async def test_a_futures_run_keeps_a_bounded_book_of_conditional_orders(tmp_path: Path) -> None:
    """``history_kept`` bounds the simulated venue's ended conditional orders too (USDⓈ-M keeps them in a book of its
    own), which matching and placing scan: a long futures run with stops grew them without end."""
    cfg = backtest_config(
        config(tmp_path, logic="tests.backtest.test_backtest:StopChurn", universe=["BTC/USDT:USDT"], margin=True, history_kept=100),
        tmp_path / "bt",
    )
    bt = Backtest(cfg, {"BTC/USDT:USDT": DATA["BTC/USDT"]}, warmup=50, logic=StopChurn(LogicParams()))
    run = await bt.run()
    assert run.errors == []
    placed = (read_trace(run.trace_root)["kind"] == "order_placed").sum()
    assert placed >= 300 and len(bt.venue.account.algo_orders) <= 200


class FreezeProbe(Logic):
    """Notes how many objects the garbage collector holds frozen at each bar, and fails at the tenth."""

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.frozen: list[int] = []

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        self.frozen.append(gc.get_freeze_count())
        if len(self.frozen) == 10:
            raise RuntimeError("the logic's bug")


async def test_the_heap_is_frozen_for_the_loop_and_handed_back_after_even_on_failure(tmp_path: Path) -> None:
    """The collector skips what was alive before the candles (a full collection walked it all, a tenth of a long
    run); after the run, even one a logic error ended, nothing stays frozen (a process running many backtests, as
    the optimiser's workers do, would keep every run's garbage)."""
    probe = FreezeProbe()
    cfg = backtest_config(config(tmp_path), tmp_path / "bt")
    with pytest.raises(LogicError, match="bug"):
        await Backtest(cfg, DATA, logic=probe, errors="fail").run()
    assert len(probe.frozen) == 10 and min(probe.frozen) > 10_000  # the engine, the markets, the modules
    assert gc.get_freeze_count() == 0


def flat(start_ms: int, minutes: int, price: float, wick: dict[int, float] | None = None) -> pd.DataFrame:
    """``minutes`` 1m candles at ``price``; ``wick``: minute -> that candle's low (it opens and closes at ``price``)."""
    ts = start_ms + np.arange(minutes, dtype=np.int64) * 60_000
    low = np.full(minutes, price * 0.9999)
    for i, v in (wick or {}).items():
        low[i] = v
    return pd.DataFrame({"timestamp": ts, "open": price, "high": price * 1.0001, "low": low, "close": price, "volume": 1.0})


H0600 = int(pd.Timestamp("2026-12-04T06:00Z").value // 1_000_000)


class RestsFarBelow(Logic):
    """One limit buy far under the market, resting for the whole run."""

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if not ai.orders:
            await ctx.call(ai, OrderType.GTC, Side.BUY, amount=0.001, price=round(bar.close * 0.5, 2), waitfor=0)


async def test_a_resting_order_across_funding_hours_of_a_spot_run_is_no_crash(tmp_path: Path) -> None:
    """A spot run with an order resting over many hours: the simulated exchange also holds futures markets it never
    prices, and its funding settlement asked each for a mark price at every 8-hour mark of the sandbox's own data
    clock: the run stopped with "sim: no price for BTCUSDT yet" (a newcomer's RSI strategy, and the grid example,
    about 6 h 47 min into their runs)."""
    cfg = backtest_config(config(tmp_path, logic="tests.backtest.test_backtest:RestsFarBelow", universe=["BTC/USDT"]), tmp_path / "bt")
    run = await Backtest(cfg, {"BTC/USDT": flat(H0600, 20 * 60, 60_000.0)}, warmup=10, logic=RestsFarBelow(LogicParams())).run()
    assert run.errors == [] and run.result.reason != "halted"
    assert (read_trace(run.trace_root)["kind"] == "order_placed").sum() == 1


def thin_wallet(tmp: Path, logic: str) -> StrategyConfig:
    """A BTC/USDT:USDT backtest of ``logic`` (a class of this module) at 20x on a 1 000 USDT wallet."""
    return backtest_config(
        config(
            tmp,
            logic=f"tests.backtest.test_backtest:{logic}",
            universe=["BTC/USDT:USDT"],
            margin=True,
            default_leverage=20,
            initial_cash=1_000,
        ),
        tmp / "bt",
    )


class BuysOnce(Logic):
    """A futures long at the first bar, held (``amount`` BTC)."""

    amount = 0.01

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if not ai.orders:
            await ctx.call(ai, OrderType.MARKET, Side.BUY, amount=self.amount, waitfor=0)


async def test_funding_is_paid_at_the_simulated_clock_s_funding_hours(tmp_path: Path) -> None:
    """A long held from 06:10 to 09:00 UTC of the history pays funding once, at 08:00 of that time (Binance's 00:00 /
    08:00 / 16:00 UTC). It was counted on the sandbox's data clock, and only while an order rested: none here."""
    cfg = backtest_config(
        config(tmp_path, logic="tests.backtest.test_backtest:BuysOnce", universe=["BTC/USDT:USDT"], margin=True), tmp_path / "bt"
    )
    bt = Backtest(cfg, {"BTC/USDT:USDT": flat(H0600, 180, 60_000.0)}, warmup=10, logic=BuysOnce(LogicParams()))
    run = await bt.run()
    assert run.errors == []
    funding = [i for i in bt.venue.account.income if i.kind == "FUNDING_FEE"]
    assert [pd.Timestamp(i.time_ms, unit="ms", tz="UTC") for i in funding] == [pd.Timestamp("2026-12-04T08:00Z")]
    assert funding[0].amount < 0  # a long pays a positive rate
    booked = read_trace(run.trace_root).query("kind == 'funding_paid'")  # the engine books it, as live does
    assert len(booked) == 1 and booked.iloc[0]["amount"] == pytest.approx(float(funding[0].amount))


class BuysBig(BuysOnce):
    amount = 0.3  # 18 000 USDT of BTC on a 1 000 USDT wallet at 20x: liquidated about 5 % under the entry


async def test_a_wick_through_the_liquidation_price_liquidates_a_position_without_orders(tmp_path: Path) -> None:
    """A candle whose low is 8 % under a 20x long's entry, closing where it opened, liquidates it (Binance watches the
    mark price all the time, not only at candle closes), at its liquidation price. A position without resting orders
    was priced only at each close: the wick never happened; and with an order resting the walk stopped only at the
    candle's four points, so a liquidation filled at the low (a cross wallet of 1 000 USDT ended at -450)."""
    cfg = thin_wallet(tmp_path, "BuysBig")
    bt = Backtest(cfg, {"BTC/USDT:USDT": flat(H0600, 60, 60_000.0, wick={40: 55_200.0})}, warmup=10, logic=BuysBig(LogicParams()))
    run = await bt.run()
    liquidations = [o for o in bt.venue.account.orders.values() if o.type == "LIQUIDATION"]
    assert len(liquidations) == 1, run.errors
    assert not any(p.amount for p in bt.venue.account.positions.values())
    # at its liquidation price (about 5 % under the entry), not at the wick's low: the cross wallet is not overdrawn
    assert float(liquidations[0].avg_price) > 55_200 * 1.02 and bt.venue.account.futures_wallet >= 0
    # the summary says where the money went: the margin handed to the insurance fund is the exchange's own figure
    # (it was in no figure: the net realised PnL and the final equity disagreed by it)
    from planar_core.backtest.summary import summarize

    summary = summarize(read_trace(run.trace_root), run)
    cleared = -sum(float(i.amount) for i in bt.venue.account.income if i.kind == "INSURANCE_CLEAR")
    assert cleared > 0 and summary["liquidation_clearance"] == pytest.approx(cleared, abs=1e-6)
    assert summary["initial_equity"] + summary["net_realized_pnl"] + summary["funding"] + summary["unrealized_pnl"] - summary[
        "liquidation_clearance"
    ] == pytest.approx(summary["final_equity"], abs=1e-6)


class InAndOut(Logic):
    """Buys 0.01 BTC at the first bar and sells 0.00995 ten bars later: 0.00004 BTC stays (about 2.4 USDT, under
    BTCUSDT's 5 USDT minimum order: dust), then nothing more."""

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.bars = 0

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        self.bars += 1
        if self.bars in (1, 11):
            await ctx.call(ai, OrderType.MARKET, Side.BUY if self.bars == 1 else Side.SELL, amount=0.01 if self.bars == 1 else 0.00995)


async def test_exposure_counts_positions_not_the_dust_an_exit_leaves(tmp_path: Path) -> None:
    """Held 10 of 110 minutes, then only dust: the summary's exposure is about 0.1. It counted any holding, and the
    fee-and-rounding leftover of every exit read as a position until the next entry (a newcomer's RSI strategy,
    flat most of the day, showed 0.91)."""
    from planar_core.backtest.summary import exposure

    cfg = backtest_config(config(tmp_path, logic="tests.backtest.test_backtest:InAndOut", universe=["BTC/USDT"]), tmp_path / "bt")
    bt = Backtest(cfg, {"BTC/USDT": flat(H0600, 120, 60_000.0)}, warmup=10, logic=InAndOut(LogicParams()))
    run = await bt.run()
    assert run.errors == [] and 0 < bt.s.cash("BTC").total < 0.0001
    assert 0.05 < exposure(read_trace(run.trace_root)) < 0.15


class FlatOverEight(Logic):
    """A futures long 06:10-07:00 UTC, flat over 08:00, long again from 09:30 (0.01 BTC)."""

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        hhmm = pd.Timestamp(bar.timestamp, unit="ms", tz="UTC").strftime("%H:%M")
        if hhmm in ("06:10", "09:30"):
            await ctx.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=0)
        elif hhmm == "07:00":
            await ctx.call(ai, OrderType.MARKET, Side.SELL, amount=0.01, reduce_only=True, waitfor=0)


async def test_a_funding_time_met_flat_is_not_charged_to_the_next_position(tmp_path: Path) -> None:
    """Flat at 08:00 UTC, long again at 09:30: no funding (the next is at 16:00). The simulated exchange ran no
    matching while flat, so the 08:00 period was still unsettled when the next position opened and was charged to
    it a candle later (a futures trader's backtest found eight such payments in three days). Each payment is also
    booked by the engine (``funding_paid``), as live books the ACCOUNT_UPDATE it reads."""
    cfg = backtest_config(
        config(tmp_path, logic="tests.backtest.test_backtest:FlatOverEight", universe=["BTC/USDT:USDT"], margin=True), tmp_path / "bt"
    )
    bt = Backtest(cfg, {"BTC/USDT:USDT": flat(H0600, 240, 60_000.0)}, warmup=10, logic=FlatOverEight(LogicParams()))
    run = await bt.run()
    assert run.errors == []
    trades = read_trace(run.trace_root).query("kind == 'trade_executed'")
    assert len(trades) == 3
    assert [i for i in bt.venue.account.income if i.kind == "FUNDING_FEE"] == []


class LongWithStop(Logic):
    """A futures long of 0.01 BTC at the first bar with a stop 1 % under it."""

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if not ai.orders:
            await ctx.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, stop_loss=bar.close * 0.99, waitfor=0)


async def test_a_triggered_stop_s_fill_is_traced_when_it_happens(tmp_path: Path) -> None:
    """A futures stop triggered inside a candle: its trigger and fill reach the engine at the simulated time the walk
    crossed the trigger, not at the candle's close (the driver waited for the engine only when a resting limit had
    filled, so a trigger's fill was handled after the clock moved to the close: a take-profit at 23:23:37 was traced
    at 23:24:00, which read as a position held through the next minute)."""
    cfg = backtest_config(
        config(tmp_path, logic="tests.backtest.test_backtest:LongWithStop", universe=["BTC/USDT:USDT"], margin=True), tmp_path / "bt"
    )
    data = {"BTC/USDT:USDT": flat(H0600, 60, 60_000.0, wick={40: 58_800.0})}
    run = await Backtest(cfg, data, warmup=10, logic=LongWithStop(LogicParams())).run()
    assert run.errors == []
    df = read_trace(run.trace_root)
    sells = df[(df["kind"] == "trade_executed") & (df["side"] == "sell")]
    assert len(sells) == 1
    candle_open = pd.Timestamp(H0600 + 40 * 60_000, unit="ms", tz="UTC")
    assert candle_open < sells.iloc[0]["timestamp"] < candle_open + pd.Timedelta(seconds=60)


class TradesAtEight(Logic):
    """``enter``: flat, then long 0.01 BTC at the close of the 07:59 candle (08:00:00); else long from 06:10 and out at
    that same close."""

    class Params(LogicParams):
        enter: bool = True

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        hhmm = pd.Timestamp(bar.timestamp, unit="ms", tz="UTC").strftime("%H:%M")
        if hhmm == "07:59":
            side = Side.BUY if self.params.enter else Side.SELL
            await ctx.call(ai, OrderType.MARKET, side, amount=0.01, reduce_only=not self.params.enter, waitfor=0)
        elif hhmm == "06:10" and not self.params.enter:
            await ctx.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=0)


@pytest.mark.parametrize("enter", [True, False], ids=["enters-at-eight", "exits-at-eight"])
async def test_a_trade_at_a_funding_time_comes_after_its_settlement(tmp_path: Path, enter: bool) -> None:
    """An order at 08:00:00 executes after the 08:00 settlement, as live: a long entered at that close pays nothing
    for 08:00, and one held until then and closed at that close pays it. The flat candle passed the funding time at
    its open and the walk settled it at the next candle's first point, after the trade: the entry paid and the exit
    did not (found by a review of this session's changes)."""
    cfg = backtest_config(
        config(
            tmp_path,
            logic="tests.backtest.test_backtest:TradesAtEight",
            universe=["BTC/USDT:USDT"],
            margin=True,
            logic_params={"enter": enter},
        ),
        tmp_path / "bt",
    )
    bt = Backtest(cfg, {"BTC/USDT:USDT": flat(H0600, 180, 60_000.0)}, warmup=10, logic=TradesAtEight(TradesAtEight.Params(enter=enter)))
    run = await bt.run()
    assert run.errors == []
    assert len(read_trace(run.trace_root).query("kind == 'trade_executed'")) == (1 if enter else 2)
    funding = [i for i in bt.venue.account.income if i.kind == "FUNDING_FEE"]
    assert len(funding) == (0 if enter else 1), funding


class StopEntry(Logic):
    """A futures stop buy of 0.3 BTC 0.5 % over the first close: 18 000 USDT at 20x on a 1 000 USDT wallet."""

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if not ai.orders:
            await ctx.call(ai, OrderType.STOP_MARKET, Side.BUY, amount=0.3, trigger_price=round(bar.close * 1.005, 1), waitfor=0)


async def test_a_position_opened_inside_a_candle_is_liquidated_at_its_liquidation_price(tmp_path: Path) -> None:
    """A stop entry triggers on the way up, and the same candle then falls 8 %: the new position is liquidated where
    its liquidation price is crossed. The walk's stops were worked out when the candle began, before the position
    existed, so it was liquidated at the candle's low: the 1 000 USDT wallet ended at -541 (found by a review)."""
    data = flat(H0600, 60, 60_000.0)
    data.loc[40, ["open", "high", "low", "close"]] = [60_000.0, 60_600.0, 55_200.0, 59_990.0]  # down: open, high, low, close
    cfg = thin_wallet(tmp_path, "StopEntry")
    bt = Backtest(cfg, {"BTC/USDT:USDT": data}, warmup=10, logic=StopEntry(LogicParams()))
    await bt.run()
    (liquidation,) = [o for o in bt.venue.account.orders.values() if o.type == "LIQUIDATION"]
    assert float(liquidation.avg_price) > 55_200 * 1.02 and bt.venue.account.futures_wallet >= 0


def test_the_liquidation_clearance_is_said_only_when_the_other_terms_explain_the_rest() -> None:
    """``liquidation_clearance`` is the residual of a margin run's equity: None (not a number that means something
    else) when funding or fees are in another currency, or when money appeared from nowhere (a negative residual,
    e.g. a balance the engine could not read). It was the residual whatever went into it (found by a review)."""
    from planar_core.backtest.summary import margin_figures

    def frame(currency: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "kind": ["funding_paid", "risk_metrics"],
                "amount": [-2.0, np.nan],
                "payload": [{"payload": {"currency": currency}}, {"payload": {"unrealized_pnl": 5.0}}],
            }
        )

    out = {"initial_equity": 1_000.0, "final_equity": 900.0, "net_realized_pnl": -50.0}
    assert margin_figures(frame("USDT"), out, "USDT") == {"funding": -2.0, "unrealized_pnl": 5.0, "liquidation_clearance": 53.0}
    assert margin_figures(frame("BUSD"), out, "USDT")["liquidation_clearance"] is None
    assert margin_figures(frame("USDT"), {**out, "fees_unvalued": {"BNB": 0.1}}, "USDT")["liquidation_clearance"] is None
    assert margin_figures(frame("USDT"), {**out, "final_equity": 1_100.0}, "USDT")["liquidation_clearance"] is None


class BuysLowInto(Logic):
    """A buy limit of 0.001 BTC at 59 500 placed at the first bar (the market at 60 000)."""

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if not ai.orders:
            await ctx.call(ai, OrderType.GTC, Side.BUY, amount=0.001, price=59_500.0, waitfor=0)


async def test_a_resting_limit_fills_where_the_book_crosses_its_price(tmp_path: Path) -> None:
    """A candle whose path falls from 60 000 to 59 000 in its first third: the buy limit at 59 500 fills where the
    simulated book's ask reaches it (the path half a spread under it), about half way down, at its own price. The
    walk stopped where the path itself crossed the price, where the ask was still above it, so the fill came at the
    next point, the candle's low (found by a review)."""
    data = flat(H0600, 60, 60_000.0)
    data.loc[40, ["open", "high", "low", "close"]] = [60_000.0, 60_100.0, 59_000.0, 60_050.0]  # up: open, low, high, close
    cfg = backtest_config(config(tmp_path, logic="tests.backtest.test_backtest:BuysLowInto", universe=["BTC/USDT"]), tmp_path / "bt")
    run = await Backtest(cfg, {"BTC/USDT": data}, warmup=10, logic=BuysLowInto(LogicParams())).run()
    fills = read_trace(run.trace_root).query("kind == 'trade_executed'")
    assert len(fills) == 1 and fills.iloc[0]["price"] == 59_500.0
    candle_open = pd.Timestamp(H0600 + 40 * 60_000, unit="ms", tz="UTC")
    assert candle_open + pd.Timedelta(seconds=5) < fills.iloc[0]["timestamp"] < candle_open + pd.Timedelta(seconds=15)  # the low is at 20 s


class BuysEachBelow(Logic):
    """A limit buy 1 % under each symbol's first close, resting until it fills."""

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if not ai.orders:
            await ctx.call(
                ai, OrderType.GTC, Side.BUY, amount=0.01 if ai.symbol == "ETH/USDT" else 0.001, price=bar.close * 0.99, waitfor=0
            )


async def test_the_symbols_of_one_candle_time_walk_together(tmp_path: Path) -> None:
    """Two symbols' candles of one time: BTC's limit is crossed about 30 s into it (a down candle: its low comes at
    40 s), ETH's about 10 s in (an up candle: its low at 20 s). Each fill carries its own time, ETH's first. The
    symbols walked one after another, so ETH's fill carried a time after BTC's (the clock was already there)."""
    btc, eth = flat(H0600, 60, 60_000.0), flat(H0600, 60, 3_000.0)
    btc.loc[40, ["open", "high", "low", "close"]] = [60_000.0, 60_100.0, 58_000.0, 59_000.0]  # down: open, high, low, close
    eth.loc[40, ["open", "high", "low", "close"]] = [3_000.0, 3_010.0, 2_900.0, 3_005.0]  # up: open, low, high, close
    cfg = backtest_config(config(tmp_path, logic="tests.backtest.test_backtest:BuysEachBelow"), tmp_path / "bt")
    run = await Backtest(cfg, {"BTC/USDT": btc, "ETH/USDT": eth}, warmup=10, logic=BuysEachBelow(LogicParams())).run()
    fills = read_trace(run.trace_root).query("kind == 'trade_executed'").set_index("symbol")
    candle_open = pd.Timestamp(H0600 + 40 * 60_000, unit="ms", tz="UTC")
    at = {sym: fills.loc[sym, "timestamp"] for sym in ("BTC/USDT", "ETH/USDT")}
    assert candle_open + pd.Timedelta(seconds=5) < at["ETH/USDT"] < candle_open + pd.Timedelta(seconds=15), at
    assert candle_open + pd.Timedelta(seconds=25) < at["BTC/USDT"] < candle_open + pd.Timedelta(seconds=40), at


class ReadsTwoTimeframes(Logic):
    """Records what ``on_start`` sees of each timeframe and every 5m bar."""

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.at_start: dict[str, int] = {}
        self.bars: list[Candle] = []

    async def on_start(self, ctx: StrategyContext) -> None:
        ai = ctx.asset("BTC/USDT")
        self.at_start = {tf: len(ai.ohlcv[tf].closed) for tf in ("1m", "5m")}

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if timeframe == "5m":
            self.bars.append(bar)


async def test_the_other_timeframes_are_built_from_the_first(tmp_path: Path) -> None:
    """``timeframes = ["1m", "5m"]``: the 5m history is there in ``on_start`` as live loads it, and each 5m candle
    closes with the 1m candle that ends it, its open, high, low, close and volume the 1m candles'. Only the first
    timeframe was loaded: ``ai.ohlcv["5m"]`` raised KeyError in on_start and 5m bars never came (an outside trial)."""
    data = DATA["BTC/USDT"]
    cfg = backtest_config(config(tmp_path, universe=["BTC/USDT"], timeframes=["1m", "5m"]), tmp_path / "bt")
    logic = ReadsTwoTimeframes(LogicParams())
    await Backtest(cfg, {"BTC/USDT": data}, warmup=10, logic=logic).run()
    assert logic.at_start == {"1m": 10, "5m": 10}
    assert logic.bars and all(int(b.timestamp) % 300_000 == 0 for b in logic.bars)
    rows = data.set_index("timestamp")
    for bar in logic.bars[:20]:
        part = rows.loc[int(bar.timestamp) : int(bar.timestamp) + 299_999]  # (the test's 1m candles open 20 s into a minute)
        assert len(part) == 5
        assert (bar.open, bar.high, bar.low, bar.close) == (
            part["open"].iloc[0],
            part["high"].max(),
            part["low"].min(),
            part["close"].iloc[-1],
        )
        assert bar.volume == pytest.approx(part["volume"].sum())


@pytest.mark.parametrize("timeframes", [["5m", "1m"], ["3m", "5m"], ["1m", "1w"]])
async def test_a_timeframe_that_cannot_be_built_is_refused_naming_it(tmp_path: Path, timeframes: list[str]) -> None:
    from planar_core.backtest.source import CandleError

    cfg = backtest_config(config(tmp_path, universe=["BTC/USDT"], timeframes=timeframes), tmp_path / "bt")
    with pytest.raises(CandleError, match=f"builds {timeframes[1]} from the {timeframes[0]}"):
        Backtest(cfg, {"BTC/USDT": DATA["BTC/USDT"]})


async def test_the_warm_up_of_a_longer_timeframe_holds_only_whole_candles(tmp_path: Path) -> None:
    """A start 63 minutes in (not on a 5m edge): the warm-up's first 1m candles begin inside a 5m candle, which is
    left out; every 5m candle of ``on_start``'s history is its five 1m candles. The first was built from four
    (found by the review)."""

    class Records(ReadsTwoTimeframes):
        async def on_start(self, ctx: StrategyContext) -> None:
            self.history = [Candle.of(row) for row in ctx.asset("BTC/USDT").ohlcv["5m"].closed]
            await super().on_start(ctx)

    data = DATA["BTC/USDT"]
    start = int(data["timestamp"].iloc[0]) + 63 * 60_000
    cfg = backtest_config(config(tmp_path, universe=["BTC/USDT"], timeframes=["1m", "5m"]), tmp_path / "bt")
    logic = Records(LogicParams())
    await Backtest(cfg, {"BTC/USDT": data}, start_ms=start, warmup=10, logic=logic).run()
    rows = data.set_index("timestamp")
    assert logic.history
    for bar in logic.history:
        part = rows.loc[int(bar.timestamp) : int(bar.timestamp) + 299_999]
        assert len(part) == 5 and bar.volume == pytest.approx(part["volume"].sum()), (bar, len(part))


class ChasesAfterAFill(Logic):
    """A limit buy of BTC under the market; when it fills, a limit buy of ETH at a price ETH passed before then."""

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        if ai.symbol == "BTC/USDT" and not ai.orders and not ctx.trades(ai):
            await ctx.call(ai, OrderType.GTC, Side.BUY, amount=0.001, price=59_400.0, waitfor=0)

    async def on_fill(self, ctx: StrategyContext, order: OrderView, trade: TradeView) -> None:
        if order.symbol == "BTC/USDT":
            await ctx.call(ctx.asset("ETH/USDT"), OrderType.GTC, Side.BUY, amount=0.01, price=2_910.0, waitfor=0)


async def test_an_order_placed_inside_a_candle_meets_only_the_prices_after_it(tmp_path: Path) -> None:
    """BTC's limit fills about 26 s into a candle (a down candle: its low at 40 s); the logic then bids for ETH at
    2 910, a price ETH passed at about 18 s and 22 s (an up candle: its low of 2 900 at 20 s) but not after: the bid
    must rest, not fill. The walk resumed every other symbol from its last stop (20 s for ETH), so the new bid met
    the prices ETH had passed before it existed and filled (found by the review of the walk together)."""
    btc, eth = flat(H0600, 60, 60_000.0), flat(H0600, 60, 3_000.0)
    btc.loc[40, ["open", "high", "low", "close"]] = [60_000.0, 60_100.0, 58_000.0, 59_000.0]
    eth.loc[40, ["open", "high", "low", "close"]] = [3_000.0, 3_010.0, 2_900.0, 3_005.0]
    cfg = backtest_config(config(tmp_path, logic="tests.backtest.test_backtest:ChasesAfterAFill"), tmp_path / "bt")
    run = await Backtest(cfg, {"BTC/USDT": btc, "ETH/USDT": eth}, warmup=10, logic=ChasesAfterAFill(LogicParams())).run()
    trace = read_trace(run.trace_root)
    assert list(trace.query("kind == 'trade_executed'")["symbol"]) == ["BTC/USDT"]
    placed = trace.query("kind == 'order_placed' and symbol == 'ETH/USDT'")
    assert len(placed) == 1


class RaisesOnBar(Logic):
    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        raise ZeroDivisionError("a newcomer's bug")


def test_a_run_over_gaps_or_with_logic_errors_says_so(tmp_path: Path) -> None:
    """A backtest walked over 120 missing candles and exited 0 without a word (``data check`` found the gap); a
    logic that raised on every bar printed a clean summary and exited 0 (two outside trials). Now: the summary
    counts both, the command warns on stderr, and logic errors exit 1."""
    from typer.testing import CliRunner

    from planar_core.backtest.command import warnings
    from planar_core.cli import app

    data = tmp_path / "data"
    data.mkdir()
    DATA["BTC/USDT"].drop(index=range(150, 170)).to_csv(data / "BTC_USDT-1m.csv", index=False)
    DATA["ETH/USDT"].to_csv(data / "ETH_USDT-1m.csv", index=False)
    cfg = tmp_path / "bt.toml"
    body = 'name = "bt"\nuniverse = ["BTC/USDT", "ETH/USDT"]\ntimeframes = ["1m"]\ninitial_cash = 10000\n'
    cfg.write_text(body + 'logic = "planar_core.strategies.ma_cross:MACross"\nlogic_params = { fast = 3, slow = 8 }\n')
    run = ["backtest", str(cfg), "--data", str(data), "--out", str(tmp_path / "out"), "--json"]
    gap = CliRunner().invoke(app, run)
    assert gap.exit_code == 0, gap.output
    summary = json.loads(gap.stdout.strip().splitlines()[-1])
    assert summary["missing_candles"] == 20 and summary["gaps"][0]["symbol"] == "BTC/USDT" and summary["gaps"][0]["missing"] == 20
    assert "the data has gaps, 20 candles missing" in gap.stderr and warnings(summary)
    cfg.write_text(body + 'logic = "tests.backtest.test_backtest:RaisesOnBar"\n')
    bad = CliRunner().invoke(app, run)
    assert bad.exit_code == 1
    summary = json.loads(bad.stdout.strip().splitlines()[-1])
    assert summary["callback_errors"] > 0 and "a newcomer's bug" in summary["first_callback_error"]
    assert "the logic raised" in bad.stderr


async def test_a_gap_at_the_warm_up_boundary_and_data_that_ends_early_are_counted(tmp_path: Path) -> None:
    """A review: the gap count missed candles missing right after the warm-up, and a symbol whose data ended before
    the others' (the run walked on without it)."""
    from planar_core.backtest.summary import summarize

    btc = DATA["BTC/USDT"].drop(index=range(100, 106)).iloc[:-10]  # 6 missing after the 100 warm-up candles, 10 at the end
    cfg = backtest_config(config(tmp_path, logic="tests.backtest.test_backtest:RestsFarBelow"), tmp_path / "bt")
    run = await Backtest(cfg, {"BTC/USDT": btc, "ETH/USDT": DATA["ETH/USDT"]}, warmup=100, logic=RestsFarBelow(LogicParams())).run()
    assert [(sym, n) for sym, _, _, n in run.gaps] == [("BTC/USDT", 6), ("BTC/USDT", 10)]
    assert summarize(read_trace(run.trace_root), run)["missing_candles"] == 16
