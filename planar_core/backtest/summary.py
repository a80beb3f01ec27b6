"""A backtest's figures, read back from its trace: so the summary, the report and the trace cannot disagree.

* **equity**: the risk monitor's marked-to-market equity (``risk_metrics``: wallet plus unrealised PnL valued in the
  main currency, the engine's one definition), sampled every ``risk.monitor_interval`` of simulated time and at the
  end; the start is the equity before ``on_start``.
* **return**: final / initial - 1. **max drawdown**: the largest fall from a running peak of that series, as a
  fraction of the peak.
* **Sharpe**: mean / standard deviation of the series' daily returns (the last sample of each UTC day), times
  sqrt(365) (crypto trades every day); None with fewer than two daily returns.
* **trades**: fills (``trade_executed``); **fees** in the main currency (a fee paid in the base currency is valued
  at its fill's price); **realised PnL**: the sum of the fills' ``realized_pnl`` when the trace carries it;
  **win rate**: winning round trips / round trips (``round_trip`` events), None without one.
* **exposure**: the share of samples in which a position was held (``total_exposure`` above zero).

Every figure is finite or None (strict JSON: no NaN).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from ..model.types import Json
from .run import BacktestRun


def _finite(x: object) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _payload(p: object) -> Mapping[str, object]:
    """A trace row's payload (``payload`` holds the recorded fields; some kinds nest theirs one level more)."""
    if not isinstance(p, Mapping):
        return {}
    inner = p.get("payload")
    return inner if isinstance(inner, Mapping) else p


def equity_curve(df: pd.DataFrame, run: BacktestRun) -> pd.Series:
    """Equity over simulated time: the start, every risk monitor sample, the end."""
    rows = df[df["kind"].astype(str) == "risk_metrics"]
    values = [_finite(_payload(p).get("equity")) for p in rows["payload"]]
    s = pd.Series(values, index=pd.DatetimeIndex(rows["timestamp"]), dtype="float64").dropna()
    if run.start_ms is not None or len(df):
        first = pd.Timestamp(int(df["timestamp"].iloc[0].value), tz="UTC") if len(df) else None
        if first is not None and _finite(run.initial_equity) is not None:
            s = pd.concat([pd.Series([run.initial_equity], index=pd.DatetimeIndex([first])), s])
    return s[~s.index.duplicated(keep="last")]


def max_drawdown(equity: pd.Series) -> float:
    if equity.empty:
        return 0.0
    peak = equity.cummax()
    return float(((peak - equity) / peak).max())


def sharpe(equity: pd.Series) -> float | None:
    daily = equity.resample("1D").last().dropna()
    rets = daily.pct_change().dropna()
    if len(rets) < 2 or not rets.std():
        return None
    return _finite(rets.mean() / rets.std() * math.sqrt(365))


def _fee_in_main(row: Mapping[str, object], main: str) -> float:
    fee = _finite(row.get("fee")) or 0.0
    payload = _payload(row.get("payload"))
    currency = payload.get("fee_currency")
    symbol = str(row.get("symbol") or "")
    base = symbol.split("/")[0]
    if currency == base and currency != main:
        return fee * (_finite(row.get("price")) or 0.0)
    return fee


def summarize(df: pd.DataFrame, run: BacktestRun) -> Json:
    """The summary of ``run`` from its trace ``df`` (``trace.reading.read_trace``), as strict JSON."""
    main = run.config.main_currency
    kinds = df["kind"].astype(str)
    trades = df[kinds == "trade_executed"]
    rows: list[dict[str, object]] = [{str(k): v for k, v in r.items()} for r in trades.to_dict("records")]
    fees = sum((_fee_in_main(r, main) for r in rows), 0.0)
    pnls = [_finite(_payload(r.get("payload")).get("realized_pnl", r.get("realized_pnl"))) for r in rows]
    known = [p for p in pnls if p is not None]
    trips = df[kinds == "round_trip"]
    wins = [_finite(_payload(p).get("realized_pnl")) for p in trips["payload"]] if len(trips) else []
    equity = equity_curve(df, run)
    metrics = df[kinds == "risk_metrics"]
    held = [(_finite(_payload(p).get("total_exposure")) or 0.0) > 0 for p in metrics["payload"]]
    initial, final = _finite(run.initial_equity), _finite(run.final_equity)
    return {
        "strategy": run.config.name,
        "start": pd.Timestamp(run.first_ms, unit="ms", tz="UTC").isoformat() if run.first_ms is not None else None,
        "end": pd.Timestamp(run.last_ms, unit="ms", tz="UTC").isoformat() if run.last_ms is not None else None,
        "trades": len(trades),
        "realized_pnl": sum(known) if known else (0.0 if not rows else None),
        "fees": fees,
        "initial_equity": initial,
        "final_equity": final,
        "return": (final / initial - 1) if initial and final is not None else None,
        "max_drawdown": max_drawdown(equity),
        "sharpe": sharpe(equity),
        "round_trips": len(trips),
        "win_rate": (sum(1 for w in wins if w is not None and w > 0) / len(wins)) if wins else None,
        "exposure": (sum(held) / len(held)) if held else 0.0,
        "bars": run.bars,
        "warmup_bars": run.warmup_bars,
        "bars_per_s": run.bars_per_s,
        "seconds": run.seconds,
        "callback_errors": len(run.errors),
        "halted": run.result.reason == "halted",
        "trace": run.trace_root,
    }
