"""The market-data store: one Parquet file per exchange, symbol and timeframe.

``<root>/<exchange>/<SYMBOL with / and : as _>/<timeframe>.parquet``, columns ``timestamp`` (int64, the candle's
open in epoch ms, UTC), ``open``, ``high``, ``low``, ``close``, ``volume`` (float64), sorted by time, one row per
time. ``root`` defaults to ``<store_root>/market_data``. A write merges with what is there (a new row wins on the same
time) and replaces the file atomically (a temporary file in the same folder, then a rename), so a crash leaves the
previous file whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..config import StrategyConfig

COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]


def default_root(cfg: StrategyConfig) -> Path:
    return Path(cfg.store_root) / "market_data"


def series_path(root: Path, exchange: str, symbol: str, timeframe: str) -> Path:
    return root / exchange / symbol.replace("/", "_").replace(":", "_") / f"{timeframe}.parquet"


def read_series(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "timestamp" else "float64") for c in COLUMNS})
    return pd.read_parquet(path)


def frame(rows: list[list[float]]) -> pd.DataFrame:
    df = pd.DataFrame([r[:6] for r in rows], columns=COLUMNS)
    return df.astype({"timestamp": "int64", **{c: "float64" for c in COLUMNS[1:]}})


def write_candles(path: Path, new: pd.DataFrame) -> pd.DataFrame:
    """Merge ``new`` into the file at ``path`` (new rows win on the same time); returns what the file holds now."""
    merged = pd.concat([read_series(path), new[COLUMNS]], ignore_index=True)
    merged = merged.drop_duplicates("timestamp", keep="last").sort_values("timestamp", kind="stable").reset_index(drop=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    merged.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return merged


def listing(root: Path) -> list[tuple[str, str, str, Path]]:
    """(exchange, symbol folder, timeframe, path) of every stored series."""
    return sorted((p.parent.parent.name, p.parent.name, p.stem, p) for p in root.glob("*/*/*.parquet"))
