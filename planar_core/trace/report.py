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

from .analysis import Analysis, execution_table


def equity_series(df: pd.DataFrame, currency: str) -> pd.Series:
    """Equity over time: the risk monitor's marked-to-market equity when recorded, else the main currency's balance."""
    metrics = df[df["kind"].astype(str) == "risk_metrics"]
    if len(metrics) >= 2:
        values = metrics["payload"].map(lambda p: (p.get("payload") or {}).get("equity"))
        return pd.Series(pd.to_numeric(values, errors="coerce").values, index=metrics["timestamp"]).dropna()
    rows = df[df["kind"].astype(str) == "balance_updated"]
    values = rows["payload"].map(lambda p: (p.get("payload") or {}).get(currency, {}).get("total"))
    s = pd.Series(pd.to_numeric(values, errors="coerce").values, index=rows["timestamp"]).dropna()
    return s


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:,.4f}"
    return html.escape(str(v))


def _table(title: str, data: Mapping[str, object]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in data.items() if not isinstance(v, dict))
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


def write_report(analysis: Analysis, out_dir: Path | str, currency: str = "USDT", title: str = "Planar trading report") -> dict[str, Path]:
    """Write report.html plus equity.png, pnl.png, slippage.png, fill_latency.png; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = analysis["raw_events"]
    if "payload" not in df.columns:  # the equity curve reads these kinds' payloads (parsed only now, only theirs)
        df = df.assign(payload=analysis["payloads"](("risk_metrics", "balance_updated")))
    equity = equity_series(df, currency)
    execs = execution_table(df)
    pngs: dict[str, Path] = {}

    def line(series: pd.Series, label: str) -> Callable[[Axes], None]:
        def draw(ax: Axes) -> None:
            if len(series):
                ax.plot(series.index, series.to_numpy(), label=label)
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

    pnl = equity - equity.iloc[0] if len(equity) else equity
    pngs["equity"] = out / _plot(out / "equity.png", f"equity ({currency})", line(equity, "equity"))
    pngs["pnl"] = out / _plot(out / "pnl.png", f"PnL ({currency})", line(pnl, "PnL"))
    pngs["slippage"] = out / _plot(out / "slippage.png", "slippage distribution", hist(execs["slippage_pct"], "adverse slippage (%)"))
    pngs["fill_latency"] = out / _plot(out / "fill_latency.png", "time from order to fill", hist(execs["execution_s"], "seconds"))
    timing = analysis["timing"]
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(df)} events, {df['timestamp'].min() if len(df) else '-'} to {df['timestamp'].max() if len(df) else '-'}</p>",
        _table("Orders", analysis["orders"]),
        _table("Execution", analysis["execution"]),
        _table("API latency (ms)", {f"p{k}": v for k, v in timing["api_latency_ms"].items()}),
        _table("Orders by UTC hour", {f"{h:02d}:00": c for h, c in timing["orders_by_hour"].items()}),
        *[f'<h2>{name}</h2><img src="{p.name}" alt="{name}">' for name, p in pngs.items()],
    ]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}</style></head><body>" + "".join(body) + "</body></html>"
    )
    report = out / "report.html"
    report.write_text(page)
    return {"html": report, **pngs}


def analysis_markdown(analysis: Analysis) -> str:
    """The analysis as markdown tables (for Prefect artifacts and alerts)."""
    parts = []
    for section in ("orders", "execution"):
        rows = "\n".join(f"| {k} | {_fmt(v)} |" for k, v in analysis[section].items())
        parts.append(f"### {section}\n| metric | value |\n|---|---|\n{rows}")
    lat = analysis["timing"]["api_latency_ms"]
    parts.append("### API latency (ms)\n| percentile | ms |\n|---|---|\n" + "\n".join(f"| p{k} | {_fmt(v)} |" for k, v in lat.items()))
    return "\n\n".join(parts)
