"""Backtest speed: an MA crossover on 3 symbols over N days of 1m candles through the full engine, against the floor
of the same signals and fills computed vectorised with pandas/numpy, in the same run (each side in its own block).

    python -m bench.backtest [--days 365] [--fast 10] [--slow 40] [--rounds N]

Prints JSON lines (bench/common.py): candle events per second of the engine and of the floor (ratio = engine time /
floor time), the engine's peak memory over the whole history against over its first ``--short-days`` (each the max RSS
growth (VmHWM) of a fresh process of its own over the engine's run; ratio ~1: memory flat in the history's length), and a
sanity figure: both sides made the
same number of trades on the same candles (the floor fills at the close, no spread: the engine's fills differ by the
book, so trades and not prices are compared). Then NautilusTrader's BacktestEngine runs the same logic on the same
candles in its own environment (bench/nautilus_backtest.py; ``--nautilus-python``, else ``.venv-nautilus`` made once;
skipped with a line saying why when it cannot be installed), and both again over the first ``--short-days`` (its cost per
candle grows with the history, ours does not: the ratio depends on the length).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import figure, nautilus_python, nautilus_skipped
from planar_core.backtest.run import Backtest, backtest_config
from planar_core.config import StrategyConfig
from planar_core.sandbox.market_data import DEFAULT_MARKETS

SYMBOLS = {"BTC/USDT": 60_000.0, "ETH/USDT": 3_000.0, "LTC/USDT": 80.0}
T0 = 1_700_000_000_000
FEE = 0.001  # the simulated exchange's spot fee, paid in the coin bought
MIN_NOTIONAL = 10.0  # below it the exchange refuses a sell


def candles(days: int, seed: int, start: float) -> pd.DataFrame:
    n = days * 1440
    rng = np.random.default_rng(seed)
    c = start * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    o = np.concatenate([[start], c[:-1]])
    wick = np.abs(rng.normal(0, 0.0004, n))
    return pd.DataFrame(
        {
            "timestamp": T0 + np.arange(n, dtype=np.int64) * 60_000,
            "open": o,
            "high": np.maximum(o, c) * (1 + wick),
            "low": np.minimum(o, c) * (1 - wick),
            "close": c,
            "volume": 1.0,
        }
    )


def floor(data: dict[str, pd.DataFrame], fast: int, slow: int, warmup: int, order_value: float = 1000.0) -> int:
    """The same MA-cross signals, vectorised: a buy when the fast mean crosses above the slow one, a sell when it
    crosses below (after the warm-up, once a previous signal exists). Returns the number of signals that trade."""
    trades = 0
    for df in data.values():
        close = df["close"].to_numpy()
        f = pd.Series(close).rolling(fast).mean().to_numpy()
        s = pd.Series(close).rolling(slow).mean().to_numpy()
        signal = np.where(f > s, 1, -1)
        signal[: max(slow - 1, warmup)] = 0
        live = signal[max(slow - 1, warmup) :]
        changes = np.flatnonzero(np.diff(live) != 0) + 1
        held = 0.0
        for i in changes:  # as MACross: buy order_value on an up-cross, sell up to order_value of what it holds on a down-cross
            price = close[max(slow - 1, warmup) + i]
            if live[i] > 0:
                held, trades = held + order_value / price * (1 - FEE), trades + 1
            elif held * price >= MIN_NOTIONAL:
                held, trades = held - min(held, order_value / price), trades + 1
    return trades


async def engine(
    data: dict[str, pd.DataFrame], fast: int, slow: int, warmup: int, root: Path, count: bool = True
) -> tuple[float, int, int]:
    """The backtest's seconds, candles and (``count``: read back from its trace, else 0) trades."""
    cfg = StrategyConfig.model_validate(
        {
            "name": "bench",
            "universe": list(SYMBOLS),
            "store_root": str(root),
            "timeframes": ["1m"],
            "initial_cash": 1_000_000,
            "logic": "planar_core.strategies.ma_cross:MACross",
            "logic_params": {"fast": fast, "slow": slow, "order_value": 1000.0},
        }
    )
    run = await Backtest(backtest_config(cfg, root / "bt"), data, warmup=warmup).run()
    if not count:
        return run.seconds, run.bars, 0
    from planar_core.trace.reading import read_trace

    trades = int((read_trace(run.trace_root, payload=False)["kind"] == "trade_executed").sum())
    return run.seconds, run.bars, trades


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=40)
    ap.add_argument("--nautilus-python", default=None, help="a Python with nautilus_trader (default: .venv-nautilus, made once)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds of (ours, then Nautilus), each side a block; the figures are each side's median (a shared machine "
        "moved one side's year by a quarter between two runs)",
    )
    ap.add_argument("--short-days", type=int, default=30, help="the short history the memory figure is compared with")
    ap.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)  # the child: one run, its RSS growth
    args = ap.parse_args()
    warmup = 100
    if args.memory_probe:
        print(json.dumps({"rss_growth_mb": probe(args.days, args.fast, args.slow, warmup)}))
        return
    data = {sym: candles(args.days, i, p) for i, (sym, p) in enumerate(SYMBOLS.items())}
    events = sum(len(d) for d in data.values()) - warmup * len(data)
    started = time.perf_counter()
    floor_trades = floor(data, args.fast, args.slow, warmup)
    floor_s = time.perf_counter() - started
    python, why = nautilus_python(args.nautilus_python)
    ours: list[float] = []
    theirs: list[dict[str, object]] = []
    bars = trades = 0
    for n in range(max(1, args.rounds)):
        with tempfile.TemporaryDirectory() as tmp:
            seconds, bars, trades = asyncio.run(engine(data, args.fast, args.slow, warmup, Path(tmp)))
        ours.append(seconds)
        if python is not None:
            got, why = nautilus(python, args, data, warmup)
            if got is None:
                python = None
            else:
                theirs.append(got)
        print(
            f"round {n + 1}: ours {seconds:.1f} s" + (f", Nautilus {theirs[-1]['seconds']:.1f} s" if len(theirs) > n else ""),
            file=sys.stderr,
        )
    seconds = statistics.median(ours)
    figure(
        "backtest_candles_per_s",
        bars / seconds,
        events / floor_s,
        "vectorised pandas floor (events/s)",
        ">= 100000 events/s",
        days=args.days,
    )
    figure("backtest_seconds", seconds, floor_s, "vectorised pandas floor (s)", "", candle_events=bars, rounds=[round(x, 2) for x in ours])
    short = min(args.short_days, args.days)
    figure(
        "backtest_peak_rss_growth_mb",
        memory(args.days, args),
        memory(short, args),
        f"the same over the first {short} days (MB)",
        "flat in the history's length (ratio ~1)",
        days=args.days,
    )
    figure("backtest_trades", trades, floor_trades, "floor's trading signals", "equal (each engine order is one fill)")
    if not theirs:
        nautilus_skipped(why)
        return
    their_s = statistics.median(float(str(t["seconds"])) for t in theirs)
    last = theirs[-1]
    figure(
        "nautilus_backtest_seconds",
        seconds,
        their_s,
        f"NautilusTrader {last['nautilus_version']} BacktestEngine (s)",
        "ours <= theirs",
        rounds=len(ours),
        their_rounds=[t["seconds"] for t in theirs],
        our_candles=bars,
        their_candles=last["bars"],  # warm-up included (ours loads it as history, in its timed run too)
        our_fills=trades,
        # filled orders; a few off ours, on LTC: Nautilus rounds the candles to the 0.01 tick (LTC ~80 USDT), the
        # engine reads them unrounded, and a few crossings move (rounded closes also tie more often)
        their_fills=last["fills"],
        their_fill_events=last["fill_events"],  # parts: an order above the bar's top-of-book size fills in two
        their_orders=last["orders"],
    )
    figure("nautilus_candles_per_s", bars / seconds, float(str(last["bars"])) / their_s, "NautilusTrader candles/s", "")
    if short < args.days and python is not None:
        scaling(python, args, data, short, warmup)


def scaling(python: str, args: argparse.Namespace, data: dict[str, pd.DataFrame], days: int, warmup: int) -> None:
    """Both engines again on the first ``days`` of the same candles, one block each: the ratio at the full length
    alone would hide that a side's cost per candle grows with the history (NautilusTrader's does: about 3.5 s for 30
    days, 12 s for 90, 105 s for a year on the benchmark machine; ours is linear)."""
    head = {sym: d.iloc[: days * 1440].reset_index(drop=True) for sym, d in data.items()}
    with tempfile.TemporaryDirectory() as tmp:
        seconds, bars, _ = asyncio.run(engine(head, args.fast, args.slow, warmup, Path(tmp), count=False))
    got, why = nautilus(python, args, head, warmup)
    if got is None:
        nautilus_skipped(why)
        return
    figure(
        "nautilus_backtest_seconds_short",
        seconds,
        float(str(got["seconds"])),
        f"NautilusTrader BacktestEngine over the first {days} days (s)",
        "ours <= theirs",
        days=days,
        our_candles=bars,
        their_candles=got["bars"],
    )


def probe(days: int, fast: int, slow: int, warmup: int) -> float:
    """The engine's peak memory over ``days``, in MB: the process's peak resident set (VmHWM) during the run less its
    resident set just before it (the history built). The peak is reset first (``/proc/self/clear_refs``): building
    the history's DataFrames peaks higher than a short run would, and would hide it. Run in a fresh process
    (``memory``) so that nothing of an earlier run is resident."""
    data = {sym: candles(days, i, p) for i, (sym, p) in enumerate(SYMBOLS.items())}
    gc.collect()
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(engine(data, fast, slow, warmup, Path(tmp), count=False))  # the run's memory, not a read of its trace
    return (_status_kb("VmHWM") - before) / 1024


def _status_kb(field: str) -> int:
    return next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field + ":"))


def memory(days: int, args: argparse.Namespace) -> float:
    """``probe`` in a child process of its own."""
    cmd = [sys.executable, "-m", "bench.backtest", "--memory-probe", "--days", str(days)]
    cmd += ["--fast", str(args.fast), "--slow", str(args.slow)]
    run = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    return float(json.loads(run.stdout.strip().splitlines()[-1])["rss_growth_mb"])


def nautilus(python: str, args: argparse.Namespace, data: dict[str, pd.DataFrame], warmup: int) -> tuple[dict[str, object] | None, str]:
    """NautilusTrader's BacktestEngine on the same candles, with the same markets' filters (bench/nautilus_backtest.py
    in its own environment, after our block). Never fails the bench: None and why when it could not run."""
    specs = {f"{m.base}/{m.quote}": m for m in DEFAULT_MARKETS if m.kind == "spot"}
    cmd = [python, str(Path(__file__).with_name("nautilus_backtest.py"))]
    cmd += ["--fast", str(args.fast), "--slow", str(args.slow), "--order-value", "1000", "--warmup", str(warmup), "--cash", "1000000"]
    with tempfile.TemporaryDirectory() as tmp:
        for sym, df in data.items():
            m = specs[sym]
            path = Path(tmp) / f"{m.symbol}.parquet"
            df.to_parquet(path, index=False)
            filters = (m.tick_size, m.step_size, m.min_qty, m.max_qty, m.min_notional)
            cmd += ["--market", m.symbol, m.base, *map(str, filters), str(path)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"the script could not run: {exc}"
    lines = run.stdout.strip().splitlines()
    if run.returncode != 0 or not lines:
        return None, f"the script failed (exit {run.returncode}): {run.stderr.strip()[-300:]}"
    try:
        theirs = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None, f"the script printed no JSON: {lines[-1][:300]}"
    return theirs, ""


if __name__ == "__main__":
    main()
