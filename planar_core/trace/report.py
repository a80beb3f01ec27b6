"""A trading report from a trace: tables and plots, written as HTML and PNG files."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes

from ..model.json import strict_dumps
from .analysis import (
    Analysis,
    analyze_execution_quality,
    analyze_order_patterns,
    analyze_timing_patterns,
    drawdown,
    execution_table,
    per_symbol,
    pnl_summary,
    round_trip_list,
    trade_list,
)


def equity_series(df: pd.DataFrame, currency: str) -> pd.Series:
    """Equity over time: the risk monitor's marked-to-market equity when recorded (one sample is enough: the last
    equity of the trace is the summary's), else the main currency's balance."""
    metrics = df[df["kind"].astype(str) == "risk_metrics"]
    if len(metrics):
        values = metrics["payload"].map(lambda p: ((p or {}).get("payload") or {}).get("equity"))
        return pd.Series(pd.to_numeric(values, errors="coerce").values, index=metrics["timestamp"]).dropna()
    rows = df[df["kind"].astype(str) == "balance_updated"]
    values = rows["payload"].map(lambda p: ((p or {}).get("payload") or {}).get(currency, {}).get("total"))
    s = pd.Series(pd.to_numeric(values, errors="coerce").values, index=rows["timestamp"]).dropna()
    return s


def _fmt(v: object) -> str:
    """A figure as a person reads it: ten significant digits (an amount of 0.00352 BTC or a fee of 3.52e-06 BTC
    is shown as it is; four decimals made them 0.0035 and 0.0000), thousands separated."""
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:,.10g}"
    if v is None:
        return "n/a"
    return html.escape(str(v))


UNITS = {  # the unit of a figure whose name does not say it
    "avg_slippage": "%",
    "median_slippage": "%",
    "avg_execution_time": "s",
    "median_execution_time": "s",
    "api_error_rate": "%",
    "max_drawdown": "fraction of the peak",
    "return": "fraction",
    "exposure": "share of the time",
    "bars_per_s": "candles per second",
    "seconds": "s",
}


def _table(title: str, data: Mapping[str, object]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k) + (f' ({UNITS[k]})' if k in UNITS else ''))}</th><td>{_fmt(v)}</td></tr>"
        for k, v in data.items()
        if not isinstance(v, dict)
    )
    return f"<h2>{html.escape(title)}</h2><table>{rows}</table>"


def _plot(path: Path, title: str, draw: Callable[[Axes], None]) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    draw(ax)
    if ax.xaxis_date is not None and ax.lines:
        import matplotlib.dates as mdates

        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        fig.autofmt_xdate()
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


REPORT_KINDS = ("risk_metrics", "balance_updated", "trade_executed", "round_trip")


def _frame_table(title: str, frame: pd.DataFrame, limit: int | None = None) -> str:
    """A DataFrame as an HTML table (the first ``limit`` rows, saying how many were left out)."""
    shown = frame if limit is None or len(frame) <= limit else frame.iloc[:limit]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in shown.itertuples(index=False))
    more = f"<p>{len(frame) - len(shown)} more rows in the CSV file</p>" if len(shown) < len(frame) else ""
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>{more}"


def write_report(
    source: Analysis | pd.DataFrame,
    out_dir: Path | str,
    currency: str = "USDT",
    title: str = "Planar trading report",
    max_rows: int = 2000,
    figures: Mapping[str, object] | None = None,
) -> dict[str, Path]:
    """Write a trading report into ``out_dir``; returns the paths of its files.

    ``source``: an ``analyze_trading_events`` result (the live flow: one strategy's session), or a trace's events as
    a DataFrame with their payloads (``reading.read_trace``: a backtest's own trace). ``currency``: the main
    currency, in which equity, realised PnL and fees are totalled (symbols quoted in another currency are listed,
    never added). Files: ``report.html`` (summary, per-symbol table, round trips, trade list, charts),
    ``summary.json`` (strict JSON: every figure finite or null), ``trades.csv``, ``round_trips.csv``,
    ``symbols.csv``, ``equity.csv`` (the series the equity and drawdown charts draw), ``equity.png``,
    ``drawdown.png``, ``pnl.png`` (cumulative realised PnL), ``slippage.png``, ``fill_latency.png``.

    The numbers agree by construction: the summary's final equity is the last point of ``equity.csv`` (the last
    equity the trace recorded); its realised PnL is the sum of the trade list's column and of the per-symbol
    table's (main-currency symbols), and the last point of the realised PnL chart. ``figures``: the caller's own
    (a backtest's window, Sharpe, exposure, candles): shown in the summary and written to ``summary.json`` with it,
    so that the page and the caller's summary show the same numbers under the same names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(source, pd.DataFrame):
        df = source.reset_index(drop=True)
        orders, execution, timing = analyze_order_patterns(df), analyze_execution_quality(df), analyze_timing_patterns(df)
    else:
        df = source["raw_events"]
        orders, execution, timing = source["orders"], source["execution"], source["timing"]
        if "payload" not in df.columns:  # the figures read these kinds' payloads (parsed only now, only theirs)
            df = df.assign(payload=source["payloads"](REPORT_KINDS))
    equity = equity_series(df, currency)
    dd = drawdown(equity)
    trades = trade_list(df)
    trips = round_trip_list(df)
    symbols = per_symbol(trades, trips)
    summary = pnl_summary(trades, trips, symbols, equity, currency)
    summary.update(figures or {})
    execs = execution_table(df)
    mine = trades[trades["quote"] == currency]
    cum_pnl = pd.Series(mine["realized_pnl"].fillna(0.0).cumsum().to_numpy(), index=pd.DatetimeIndex(mine["time"]))
    pngs: dict[str, Path] = {}

    def line(series: pd.Series, label: str) -> Callable[[Axes], None]:
        def draw(ax: Axes) -> None:
            if len(series):
                ax.plot(series.index, series.to_numpy(), label=label, drawstyle="steps-post" if label == "realised PnL" else "default")
                ax.legend()
            else:
                ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)

        return draw

    def hist(values: pd.Series, xlabel: str) -> Callable[[Axes], None]:
        def draw(ax: Axes) -> None:
            v = pd.to_numeric(values, errors="coerce").dropna()
            if len(v):
                ax.hist(v, bins=min(50, max(5, len(v) // 3)))
            else:
                ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)
            ax.set_xlabel(xlabel)

        return draw

    pngs["equity"] = out / _plot(out / "equity.png", f"equity ({currency})", line(equity, "equity"))
    pngs["drawdown"] = out / _plot(out / "drawdown.png", "drawdown (fraction of the peak)", line(dd, "drawdown"))
    pngs["pnl"] = out / _plot(out / "pnl.png", f"realised PnL, gross of fees ({currency})", line(cum_pnl, "realised PnL"))
    pngs["slippage"] = out / _plot(out / "slippage.png", "slippage distribution", hist(execs["slippage_pct"], "adverse slippage (%)"))
    pngs["fill_latency"] = out / _plot(out / "fill_latency.png", "time from order to fill", hist(execs["execution_s"], "seconds"))
    files: dict[str, Path] = {}
    files["summary"] = out / "summary.json"
    files["summary"].write_text(strict_dumps(summary))
    for name, frame in (("trades", trades), ("round_trips", trips), ("symbols", symbols)):
        files[name] = out / f"{name}.csv"
        frame.to_csv(files[name], index=False)
    files["equity_csv"] = out / "equity.csv"
    pd.DataFrame({"time": equity.index, "equity": equity.to_numpy(), "drawdown": dd.to_numpy()}).to_csv(files["equity_csv"], index=False)
    first = df["timestamp"].min() if len(df) else "-"
    last = df["timestamp"].max() if len(df) else "-"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(df)} events, {first} to {last}. Realised PnL is gross of fees, in each symbol's quote currency; "
        f"fees are valued in the quote currency; totals are in {html.escape(currency)}.</p>",
        _table("Summary", summary),
        _frame_table("Per symbol", symbols),
        _frame_table("Round trips", trips, max_rows),
        _frame_table("Trades", trades.drop(columns=["client_order_id"]), max_rows),
        *[f'<h2>{name}</h2><img src="{p.name}" alt="{name}">' for name, p in pngs.items()],
        _table("Orders", orders),
        _table("Execution", execution),
        _table("API latency (ms)", {f"p{k}": v for k, v in timing["api_latency_ms"].items()}),
        _table("Orders by UTC hour", {f"{h:02d}:00": c for h, c in timing["orders_by_hour"].items()}),
    ]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}</style></head><body>" + "".join(body) + "</body></html>"
    )
    report = out / "report.html"
    report.write_text(page)
    return {"html": report, **files, **pngs}


def analysis_markdown(analysis: Analysis) -> str:
    """The analysis as markdown tables (for Prefect artifacts and alerts)."""
    parts = []
    for section in ("orders", "execution"):
        rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in analysis[section].items())
        parts.append(f"### {section}\n| metric | value |\n|---|---|\n{rows}")
    lat = analysis["timing"]["api_latency_ms"]
    parts.append("### API latency (ms)\n| percentile | ms |\n|---|---|\n" + "\n".join(f"| p{k} | {_fmt(v)} |" for k, v in lat.items()))
    return "\n\n".join(parts)
