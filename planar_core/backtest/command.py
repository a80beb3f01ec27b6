"""``planar backtest CONFIG``: run a strategy's config over stored history and say what happened.

The config is the one ``planar run`` takes: its universe, first timeframe, logic and params, risk limits and
``initial_cash`` (default 10 000 of ``main_currency``). The history is the market-data store's (``planar data
download``, docs/data.md) unless ``--data`` names CSV/Parquet candle files. ``--param k=v`` overrides the logic's params
(validated by its ``Params``). Prints a summary (or, with ``--json``, one strict-JSON object) and writes
``summary.json`` (and the report, when the trace can be analysed) under ``--out``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ..config import StrategyConfig
from ..model.json import strict_dumps
from ..model.types import Json
from .source import Candles


class BacktestInputError(ValueError):
    """A backtest's input that cannot be used: one line for the user."""


def parse_time(text: str | None) -> int | None:
    """ISO-8601 date or datetime (UTC when no zone) or epoch milliseconds -> ms."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise BacktestInputError(f"{text!r} is not a date (ISO-8601, e.g. 2024-01-31 or 2024-01-31T12:00, or epoch ms)") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1000)


def parse_params(items: list[str] | None) -> dict[str, object]:
    """``k=v`` pairs; values read as JSON when they parse (numbers, true/false), else as text."""
    out: dict[str, object] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BacktestInputError(f"--param {item!r}: expected NAME=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def candle_file(folder: Path, symbol: str, timeframe: str) -> Path:
    """``<folder>/<SYMBOL with / and : as _>-<timeframe>.parquet`` (or ``.csv``)."""
    stem = f"{symbol.replace('/', '_').replace(':', '_')}-{timeframe}"
    for ext in (".parquet", ".csv"):
        if (folder / f"{stem}{ext}").exists():
            return folder / f"{stem}{ext}"
    raise BacktestInputError(f"no candles for {symbol} {timeframe} in {folder} (expected {stem}.parquet or {stem}.csv)")


def read_candles(path: Path, start_ms: int | None = None, end_ms: int | None = None, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
    """A CSV (header ``timestamp,open,high,low,close,volume``; timestamp in epoch ms or ISO-8601, UTC without a zone)
    or Parquet file of candles, in chunks of ``chunk_rows``, between ``start_ms`` and ``end_ms``. The order is
    checked as the backtest reads them (``backtest.source``): an out-of-order or duplicated candle stops it."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        chunks: Iterable[pd.DataFrame] = (b.to_pandas() for b in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows))
    else:
        chunks = pd.read_csv(path, chunksize=chunk_rows)
    for df in chunks:
        missing = [c for c in ("timestamp", "open", "high", "low", "close", "volume") if c not in df.columns]
        if missing:
            raise BacktestInputError(f"{path}: missing columns {missing} (expected timestamp,open,high,low,close,volume)")
        ts = df["timestamp"]
        if not pd.api.types.is_numeric_dtype(ts):
            ts = (pd.to_datetime(ts, utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "ms")  # whatever unit pandas parsed to
        df = df.assign(timestamp=ts.astype("int64"))
        if start_ms is not None:
            df = df[df["timestamp"] >= start_ms]
        if end_ms is not None:
            df = df[df["timestamp"] < end_ms]
        if len(df):
            yield df


def load_history(
    cfg: StrategyConfig, data: Path | None, start_ms: int | None, end_ms: int | None, warmup_ms: int
) -> dict[str, Iterator[pd.DataFrame]]:
    """Each symbol's candles of the config's first timeframe from ``data`` (a file, for a one-symbol universe, or
    a folder of ``candle_file``s); from ``warmup_ms`` before ``start_ms`` (the warm-up history) to ``end_ms``."""
    since = start_ms - warmup_ms if start_ms is not None else None
    if data is None:  # the market-data store (planar data download)
        from ..history.store import default_root, series_path

        out: dict[str, Iterator[pd.DataFrame]] = {}
        for a in cfg.universe:
            path = series_path(default_root(cfg), cfg.exchange, a.symbol, cfg.timeframes[0])
            if not path.exists():
                raise BacktestInputError(
                    f"no {a.symbol} {cfg.timeframes[0]} candles in {default_root(cfg)}: planar data download {a.symbol} "
                    f"--timeframe {cfg.timeframes[0]} --since DATE --config CONFIG (or pass --data)"
                )
            out[a.symbol] = read_candles(path, since, end_ms)
        return out
    if not data.exists():
        raise BacktestInputError(f"--data: {data} does not exist")
    tf = cfg.timeframes[0]
    symbols = [a.symbol for a in cfg.universe]
    if data.is_file():
        if len(symbols) != 1:
            raise BacktestInputError(f"--data: {data} is one file; the universe has {len(symbols)} symbols: pass a folder")
        return {symbols[0]: read_candles(data, since, end_ms)}
    return {s: read_candles(candle_file(data, s, tf), since, end_ms) for s in symbols}


def summary_text(summary: Mapping[str, object]) -> str:
    def fmt(v: object) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.2f}"
        return str(v)

    keys = [
        "strategy",
        "start",
        "end",
        "trades",
        "realized_pnl",
        "fees",
        "initial_equity",
        "final_equity",
        "return",
        "max_drawdown",
        "sharpe",
        "round_trips",
        "win_rate",
        "net_realized_pnl",
        *(["funding", "unrealized_pnl", "liquidation_clearance"] if "funding" in summary else []),
        "exposure",
        "bars",
        "bars_per_s",
        "trace",
        "report",
    ]
    keys += [k for k in ("callback_errors", "first_callback_error", "missing_candles") if summary.get(k)]
    return "\n".join(f"{k:>16}  {fmt(summary.get(k))}" for k in keys)


def warnings(summary: Mapping[str, object]) -> list[str]:
    """What makes the figures not the strategy's own: the logic raised, or the run walked over gaps in the data."""
    out = []
    if summary.get("callback_errors"):
        out.append(
            f"warning: the logic raised {summary['callback_errors']} times (first: {summary.get('first_callback_error')}): "
            "these figures are not the strategy's"
        )
    if summary.get("missing_candles"):
        gaps = summary.get("gaps")
        first = gaps[0] if isinstance(gaps, list) and gaps else {}
        out.append(
            f"warning: the data has gaps, {summary['missing_candles']} candles missing (first: {first}); "
            "the run walked over them (planar data check, docs/data.md)"
        )
    return out


async def backtest(
    cfg: StrategyConfig,
    history: Mapping[str, Candles],
    out: Path,
    start_ms: int | None = None,
    end_ms: int | None = None,
    params: Mapping[str, object] | None = None,
    warmup: int = 100,
    report: bool = True,
) -> Json:
    """One backtest of ``cfg`` (params over its own) on ``history``: its trace, ``summary.json`` and (``report``) the
    HTML report (``report/report.html``, trace/report.py: trade list, per-symbol table, round trips, equity and
    drawdown charts) under ``out``; returns the summary. The run's store (``out/store``: trace, state, journal)
    starts empty: a run again into the same folder replaces the last one's, it does not add to it."""
    import shutil

    from ..trace.reading import read_trace
    from ..trace.report import write_report
    from .run import Backtest, backtest_config
    from .summary import summarize

    shutil.rmtree(out / "store", ignore_errors=True)  # a halt, a peak equity or the trades of a previous run count for nothing here
    run_cfg = backtest_config(cfg, out / "store", params)
    run = await Backtest(run_cfg, history, start_ms=start_ms, end_ms=end_ms, warmup=warmup).run()
    df = read_trace(run.trace_root)
    summary = summarize(df, run)
    out.mkdir(parents=True, exist_ok=True)
    if report:
        title = f"Backtest of {cfg.name}: {summary.get('start') or '-'} to {summary.get('end') or '-'}"
        summary["report"] = str(write_report(df, out / "report", cfg.main_currency, title, figures=summary)["html"])
    (out / "summary.json").write_text(strict_dumps(summary) + "\n")
    return summary
