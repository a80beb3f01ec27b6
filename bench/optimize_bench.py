"""Optimisation speed: trials per minute of ``planar optimize``'s search with 1 worker and with 2, in the same run.

The search is the product's own (``planar_core.optimize.search.Search``, what ``planar optimize`` and the scheduled
``optimize_strategy`` flow run): MACross's ``fast`` and ``slow`` searched at random with a fixed seed, each trial a
full backtest of 2 symbols over ``--days`` of 1m candles read from CSV files, as a user's data directory holds them.
Each side runs its whole search in a block (1 worker, then 2), timed from the search's start to its result, the
spawned workers' start-up included (a user pays it). The figure is trials per minute with 2 workers against 1
(ratio > 1: the second worker pays off); both sides must find the same best params (the same seeded trials).

    python -m bench.optimize_bench [--days 3] [--trials 20] [--rounds 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.backtest import SYMBOLS, candles
from bench.common import figure
from planar_core.config import StrategyConfig
from planar_core.optimize.search import Search
from planar_core.optimize.space import pairs, parse
from planar_core.strategies.ma_cross import MACross

SPACE = ["fast=3:20", "slow=25:60"]


def search(root: Path, data: Path, trials: int, workers: int) -> tuple[float, dict[str, object]]:
    """One whole search: its seconds and its best params."""
    cfg = StrategyConfig.model_validate(
        {
            "name": "optbench",
            "universe": list(SYMBOLS)[:2],
            "store_root": str(root / f"store-{workers}"),
            "timeframes": ["1m"],
            "initial_cash": 1_000_000,
            "logic": "planar_core.strategies.ma_cross:MACross",
            "logic_params": {"order_value": 1000.0},
        }
    )
    dims = parse(pairs(SPACE), MACross.Params)
    started = time.perf_counter()
    result = Search(
        cfg, dims, data=data, method="random", metric="realized_pnl", trials=trials, workers=workers, seed=7, work_dir=root / f"w{workers}"
    ).run()
    seconds = time.perf_counter() - started
    (fold,) = result.folds
    return seconds, dict(fold.best_params)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1, help="rounds of (1 worker, then 2); each side's median")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        for i, (sym, price) in enumerate(list(SYMBOLS.items())[:2]):
            candles(args.days, i, price).to_csv(data / f"{sym.replace('/', '_')}-1m.csv", index=False)
        one: list[float] = []
        two: list[float] = []
        best: dict[int, dict[str, object]] = {}
        for n in range(max(1, args.rounds)):
            for workers, times in ((1, one), (2, two)):
                seconds, best[workers] = search(root, data, args.trials, workers)
                times.append(seconds)
            print(f"round {n + 1}: 1 worker {one[-1]:.1f} s, 2 workers {two[-1]:.1f} s", file=sys.stderr)
    per_min = [args.trials / statistics.median(t) * 60 for t in (one, two)]
    figure(
        "optimize_trials_per_min, 2 workers",
        per_min[1],
        per_min[0],
        "the same search with 1 worker (trials/min)",
        "reported (2 workers pay off when trials are long and a core is free)",
        trials=args.trials,
        days=args.days,
        symbols=2,
        seconds_1=[round(x, 2) for x in one],
        seconds_2=[round(x, 2) for x in two],
    )
    figure(
        "optimize_same_best_params", float(best[1] == best[2]), 1.0, "1 = the same best params with 1 and 2 workers", "equal", best=best[1]
    )


if __name__ == "__main__":
    main()
