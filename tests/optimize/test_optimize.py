"""planar optimize: a grid finds the known best params of a path built for it; seeded searches repeat; two workers
find what one finds; walk-forward folds test out of sample on windows the search never saw; the CLI's JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pydantic import Field

from planar_core.config import StrategyConfig
from planar_core.logic import Logic, LogicParams
from planar_core.model import Candle
from planar_core.model.context import StrategyContext
from planar_core.model.types import OrderType, Side
from planar_core.model.views import AssetView
from planar_core.optimize.search import Search
from planar_core.optimize.space import SpaceError, pairs, parse
from planar_core.testing.builders import candle_frame

T0 = 1_700_000_000_000
WARMUP = 100


class Dip(Logic):
    """Buys on the k-th candle after the start and sells it all 20 candles after the start."""

    class Params(LogicParams):
        k: int = Field(1, ge=1, le=15)
        hold: int = 20

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.n = 0

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        self.n += 1
        p = self.params
        assert isinstance(p, Dip.Params)
        if self.n == p.k:
            await ctx.call(ai, OrderType.MARKET, Side.BUY, amount=0.01)
        elif self.n == p.hold and ctx.cash("BTC").free > 0:
            await ctx.call(ai, OrderType.MARKET, Side.SELL, amount=round(ctx.cash("BTC").free, 5) - 0.00001)


def path(n_after: int = 40, low_at: int = 4) -> pd.DataFrame:
    """Flat, then down to the low at the ``low_at``-th candle after the warm-up, then up: buying at the low is best."""
    after = [60_000 * (1 - 0.01 * i) if i <= low_at else 60_000 * (1 - 0.01 * low_at + 0.01 * (i - low_at)) for i in range(1, n_after + 1)]
    return candle_frame([60_000.0] * WARMUP + after, start=T0)


def setup(tmp: Path, candles: pd.DataFrame | None = None) -> tuple[StrategyConfig, Path]:
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    (path() if candles is None else candles).to_csv(data / "BTC_USDT-1m.csv", index=False)
    cfg = StrategyConfig.model_validate(
        {
            "name": "dip",
            "universe": ["BTC/USDT"],
            "store_root": str(tmp / "store"),
            "timeframes": ["1m"],
            "initial_cash": 10_000,
            "logic": "tests.optimize.test_optimize:Dip",
        }
    )
    return cfg, data


def test_a_grid_finds_the_known_best(tmp_path: Path) -> None:
    cfg, data = setup(tmp_path)
    dims = parse(pairs(["k=1:8"]), Dip.Params)
    result = Search(cfg, dims, data=data, method="grid", metric="realized_pnl", work_dir=tmp_path / "w").run()
    assert [t.params["k"] for t in result.trials] == list(range(1, 9)) and all(t.status == "ok" for t in result.trials)
    assert result.best.best_params == {"k": 4}
    values = {t.params["k"]: t.value for t in result.trials}
    assert max(values, key=lambda k: values[k] or -1e18) == 4


def test_seeded_searches_repeat_and_two_workers_find_what_one_finds(tmp_path: Path) -> None:
    cfg, data = setup(tmp_path)
    dims = parse(pairs(["k=1:10"]), Dip.Params)
    runs = [
        Search(cfg, dims, data=data, method="random", metric="realized_pnl", trials=5, seed=3, work_dir=tmp_path / f"r{i}").run()
        for i in range(2)
    ]
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]
    grid = [
        Search(cfg, dims, data=data, method="grid", metric="realized_pnl", workers=w, work_dir=tmp_path / f"g{w}").run() for w in (1, 2)
    ]
    assert [(t.params, t.value) for t in grid[0].trials] == [(t.params, t.value) for t in grid[1].trials]
    assert grid[0].best.best_params == grid[1].best.best_params == {"k": 4}


def test_walk_forward_tests_each_fold_on_the_window_after_it(tmp_path: Path) -> None:
    cfg, data = setup(tmp_path, path(n_after=160))
    dims = parse(pairs(["k=2:6:2"]), Dip.Params)
    result = Search(cfg, dims, data=data, method="grid", metric="return", work_dir=tmp_path / "w").run(walk_forward="60:40")
    assert len(result.folds) >= 3
    for f in result.folds:
        assert f.test is not None and f.train[1] == f.test[0] and f.in_sample is not None and f.out_of_sample is not None
    for a, b in zip(result.folds, result.folds[1:]):
        assert b.train[0] == a.train[0] + 40 * 60_000  # the next fold starts one test window later


def test_the_command_prints_json_and_refuses_a_bad_param_in_one_line(tmp_path: Path) -> None:
    _, data = setup(tmp_path)
    conf = tmp_path / "dip.toml"
    conf.write_text(
        f'name = "dip"\nuniverse = ["BTC/USDT"]\ntimeframes = ["1m"]\ninitial_cash = 10000\nlogic = "tests.optimize.test_optimize:Dip"\nstore_root = "{tmp_path / "s"}"\n'
    )
    base = [sys.executable, "-m", "planar_core", "optimize", str(conf), "--data", str(data), "--out", str(tmp_path / "o")]
    out = subprocess.run(
        [*base, "--param", "k=3:5", "--method", "grid", "--metric", "realized_pnl", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[2],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["best_params"] == {"k": 4} and len(got["trials"]) == 3
    assert (tmp_path / "o" / "trials.csv").exists() and (tmp_path / "o" / "trials.png").exists()
    bad = subprocess.run([*base, "--param", "nope=1:3"], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "nope" in bad.stderr
    with pytest.raises(SpaceError):
        parse(pairs(["k=5:1"]), Dip.Params)
