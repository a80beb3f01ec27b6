"""A backtest's figures, read back from its trace: so the summary, the report and the trace cannot disagree.

The trading figures are the report's (``trace.analysis.pnl_summary`` over the trade list, the round trips and the
risk monitor's equity: realised PnL gross of fees and the fees in the main currency, round trips and win rate,
initial and final equity, return, max drawdown); the backtest adds:

* **Sharpe**: mean / standard deviation of the equity's daily returns (the last sample of each UTC day), times
  sqrt(365) (crypto trades every day); None with fewer than two daily returns;
* **exposure**: the share of the risk monitor's samples in which a position above dust was held
  (``positions_held``);
* futures (``margin``): ``funding``, ``unrealized_pnl`` and ``liquidation_clearance`` (``margin_figures``);
* the run: candle events processed, candles per second, seconds, warm-up candles, callback errors, whether a
  breaker halted it, and where its trace is.

The equity series starts with the sample the backtest records before ``on_start`` (the starting equity) and ends
with the one after ``on_stop``. Every figure is finite or None (strict JSON: no NaN).
"""

from __future__ import annotations

import math

import pandas as pd

from ..model.types import Json
from ..trace.analysis import per_symbol, pnl_summary, round_trip_list, trade_list
from ..trace.report import equity_series
from .run import BacktestRun


def _finite(x: object) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def sharpe(equity: pd.Series, start: pd.Timestamp, end: pd.Timestamp, initial: float) -> float | None:
    """Annualised (√365) Sharpe of the daily returns: 24 h periods from ``start``, the first from ``initial``, each
    ending at the equity then; a last partial day is left out; None under two whole days. (UTC days dropped the
    first day's return, ``initial`` overwritten by that day's last sample, and counted the final sample, at the
    window's midnight end, as a day of its own: over two days every run scored ±13.5.)"""
    day = pd.Timedelta(days=1)
    whole = int((end - start) // day)
    if whole < 2 or equity.empty:
        return None
    ordered = equity.sort_index()
    values = [initial, *(ordered.asof(start + k * day) for k in range(1, whole + 1))]
    rets = pd.Series(values, dtype=float).pct_change().dropna()
    if len(rets) < 2 or not rets.std():
        return None
    return _finite(rets.mean() / rets.std() * math.sqrt(365))


def exposure(df: pd.DataFrame) -> float:
    """The share of the risk monitor's samples with a position: one above dust (``positions_held``). A holding no
    order can trade is none: counted, the fee a spot buy leaves in the coin read as a position until the next entry,
    and a strategy flat most of the time showed an exposure near 1. (A trace written before ``positions_held``
    existed counts any exposure.)"""
    metrics = df[df["kind"].astype(str) == "risk_metrics"]
    held = []
    for p in metrics["payload"]:
        figures = (p or {}).get("payload") or {}
        count = figures.get("positions_held")
        held.append(count > 0 if isinstance(count, int) else (_finite(figures.get("total_exposure")) or 0.0) > 0)
    return sum(held) / len(held) if held else 0.0


def margin_figures(df: pd.DataFrame, out: Json, currency: str) -> Json:
    """Futures: what moves the equity besides the fills. ``funding`` (received, paid negative: the ``funding_paid``
    events in the main currency), ``unrealized_pnl`` of what is still open (the monitor's last figure), and
    ``liquidation_clearance``: the margin liquidations handed to the insurance fund, the part of the equity's change
    that neither the fills (realised PnL less fees), the funding nor the open positions explain (None while a fill's
    PnL is unknown). So initial_equity + net_realized_pnl + funding + unrealized_pnl - liquidation_clearance =
    final_equity, and a liquidation's loss is no longer hidden: a 50x run showed +3164 of net realised PnL on an
    account that made +924."""
    paid = df[df["kind"].astype(str) == "funding_paid"]
    in_main = [((p or {}).get("payload") or {}).get("currency") in (currency, None) for p in paid["payload"]]
    funding = float(pd.to_numeric(paid["amount"], errors="coerce")[in_main].fillna(0.0).sum()) if len(paid) else 0.0
    metrics = df[df["kind"].astype(str) == "risk_metrics"]
    last = ((metrics["payload"].iloc[-1] or {}).get("payload") or {}) if len(metrics) else {}
    unrealized = _finite(last.get("unrealized_pnl")) or 0.0
    initial, final, net = out.get("initial_equity"), out.get("final_equity"), out.get("net_realized_pnl")
    # the residual is the clearance only when every other term is in the main currency and known: else it would
    # hold whatever they missed (a fee or PnL in another currency, funding in another, a fill of unknown PnL)
    known = (
        isinstance(initial, float)
        and isinstance(final, float)
        and isinstance(net, float)
        and not out.get("unknown_pnl_fills")
        and not out.get("fees_unvalued")
        and not out.get("realized_pnl_other_quotes")
        and all(in_main)
    )
    clearance = round(initial + net + funding + unrealized - final, 8) if known else None  # type: ignore[operator]
    if clearance is not None and clearance < -1e-6:  # money appeared from nowhere: say it is not known, never a negative loss
        clearance = None
    return {"funding": funding, "unrealized_pnl": unrealized, "liquidation_clearance": clearance}


def summarize(df: pd.DataFrame, run: BacktestRun) -> Json:
    """The summary of ``run`` from its trace ``df`` (``trace.reading.read_trace``), as strict JSON."""
    currency = run.config.main_currency
    trades = trade_list(df)
    trips = round_trip_list(df)
    equity = equity_series(df, currency)
    out: Json = {"strategy": run.config.name, **pnl_summary(trades, trips, per_symbol(trades, trips), equity, currency)}
    if run.config.margin:
        out.update(margin_figures(df, out, currency))
    out.update(
        {
            "start": pd.Timestamp(run.first_ms, unit="ms", tz="UTC").isoformat() if run.first_ms is not None else None,
            "end": pd.Timestamp(run.last_ms, unit="ms", tz="UTC").isoformat() if run.last_ms is not None else None,
            "sharpe": sharpe(
                equity.set_axis(pd.DatetimeIndex(equity.index)),
                pd.Timestamp(run.first_ms, unit="ms", tz="UTC"),
                pd.Timestamp(run.last_ms, unit="ms", tz="UTC"),
                run.initial_equity,
            )
            if len(equity) and run.first_ms is not None and run.last_ms is not None
            else None,
            "exposure": exposure(df),
            "bars": run.bars,
            "warmup_bars": run.warmup_bars,
            "bars_per_s": run.bars_per_s,
            "seconds": run.seconds,
            "callback_errors": len(run.errors),
            "first_callback_error": run.errors[0] if run.errors else None,
            "missing_candles": sum(g[3] for g in run.gaps),  # the run walked over them: the data has gaps
            "gaps": [
                {"symbol": sym, "after": pd.Timestamp(before, unit="ms", tz="UTC").isoformat(), "missing": n}
                for sym, before, _, n in run.gaps[:20]
            ],
            "halted": run.result.reason == "halted",
            "trace": run.trace_root,
        }
    )
    return out
