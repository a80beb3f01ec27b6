"""The scheduled optimisation flow on a real Prefect server: it proposes the best params only past the margin and
within the bounds, publishes its trials and decision, and a change is undone by `planar params rollback`; without
data it downloads the candles itself (from the sandbox, through the config's own client)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from flows.optimize import optimize_strategy
from planar_core.config import load_config
from planar_core.history.store import default_root, read_series, series_path
from planar_core.params_store import ParamsStore
from planar_core.testing.builders import candle_frame

from .test_flows import artifact

T0 = 1_700_000_000_000


def dips(segments: int = 5, period: int = 60) -> pd.DataFrame:
    """120 flat candles (two folds' worth: the folds start at the first candle), then segments of ``period`` candles that fall to a low at the 4th and rise to the 20th."""
    seg = [60_000 * (1 - 0.01 * i) if i <= 4 else 60_000 * (0.96 + 0.01 * (i - 4)) if i <= 20 else 60_000.0 for i in range(1, period + 1)]
    return candle_frame([60_000.0] * 120 + seg * segments, start=T0)


def write_config(tmp: Path, **optimization: object) -> Path:
    opt = {"params": {"k": "1:6"}, "method": "grid", "metric": "realized_pnl", "walk_forward": "60:60", **optimization}
    body = ", ".join(f"{k} = {json_value(v)}" for k, v in opt.items())
    path = tmp / "dip.toml"
    path.write_text(
        f'name = "dip"\nuniverse = ["BTC/USDT"]\ntimeframes = ["1m"]\ninitial_cash = 10000\nstore_root = "{tmp / "store"}"\n'
        f'logic = "tests.optimize.test_optimize:Dip"\nlogic_params = {{ k = 1, hold = 20 }}\noptimization = {{ {body} }}\n'
    )
    return path


def json_value(v: object) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {json_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(json_value(x) for x in v) + "]"
    return f'"{v}"' if isinstance(v, str) else str(v)


async def test_proposes_only_past_the_margin_within_bounds_and_rolls_back(prefect_api: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    dips().to_csv(data / "BTC_USDT-1m.csv", index=False)
    config = write_config(tmp_path, min_improvement=1e9)
    out = await optimize_strategy(strategy="dip", config_path=str(config), data=str(data))
    decision = out["decision"]
    assert not decision["applied"] and "below the margin" in decision["reason"] and decision["candidate"]["k"] == 4
    store = ParamsStore(load_config(config).shared_root)
    assert store.current() is None
    assert await artifact("dip-optimization-trials") and await artifact("dip-optimization")

    config = write_config(tmp_path, min_improvement=0.0, bounds={"k": [1, 3]})
    decision = (await optimize_strategy(strategy="dip", config_path=str(config), data=str(data)))["decision"]
    assert not decision["applied"] and "bounds" in decision["reason"] and store.current() is None

    config = write_config(tmp_path, min_improvement=0.0)
    decision = (await optimize_strategy(strategy="dip", config_path=str(config), data=str(data)))["decision"]
    assert decision["applied"] and decision["improvement"] > 0, decision
    v = store.current()
    assert v is not None and v.params["k"] == 4 and v.source == "optimize" and v.version == decision["version"] == 1
    # only the searched field: the trial's whole set carried the config's other fields, and a run with a config of its
    # own changed a running engine's timeframe, outside the search and the bounds (an outside operator trial)
    assert v.params == {"k": 4}

    root = str(tmp_path / "store")
    cmd = [sys.executable, "-m", "planar_core", "params", "rollback", "dip", "--root", root]
    done = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    back = store.current()
    assert back is not None and back.source == "rollback" and back.params == {}  # the config's logic_params again


async def test_without_data_it_downloads_the_candles_itself(prefect_api: str, flow_config: Any, tmp_path: Path) -> None:
    config = flow_config(
        "dl",
        universe=["BTC/USDT"],
        timeframes=["1m"],
        logic="planar_core.strategies.ma_cross:MACross",
        logic_params={"fast": 3, "slow": 10},
        optimization={
            "params": {"fast": "2,4"},
            "method": "grid",
            "metric": "return",
            "days": 1,
            "walk_forward": "12h:6h",
            "min_improvement": 1e9,
        },
    )
    out = await optimize_strategy(strategy="dl", config_path=str(config))
    cfg = load_config(config, env={})
    held = read_series(series_path(default_root(cfg), "binance", "BTC/USDT", "1m"))
    assert len(held) >= 1440  # a day and the warm-up, from the sandbox
    assert not out["decision"]["applied"] and out["best"]["folds"]
