"""What an optimisation leaves behind: ``trials.csv`` / ``trials.html`` (every trial: fold, params, status, the
metric in sample and the summary's figures), ``folds.csv`` (walk-forward: each fold's best params, in- and
out-of-sample metric), ``trials.png`` (the metric per trial; the first two params coloured by the metric) and
``best.json``; and the strict-JSON object ``--json`` prints."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from ..model.json import strict_dumps
from ..model.types import Json
from .search import Result

FIGURES = ("trades", "realized_pnl", "return", "max_drawdown", "sharpe", "win_rate", "fees")


def trials_frame(result: Result) -> pd.DataFrame:
    rows = []
    for t in result.trials:
        row: dict[str, object] = {"fold": t.fold, "trial": t.number, "status": t.status, **t.params, result.metric: t.value}
        row.update({f"is_{k}": t.summary.get(k) for k in FIGURES if k != result.metric})
        row["note"] = t.note
        rows.append(row)
    return pd.DataFrame(rows)


def folds_frame(result: Result) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "fold": f.number,
                "train_start": _iso(f.train[0]),
                "train_end": _iso(f.train[1]),
                "test_end": _iso(f.test[1]) if f.test else None,
                **{f"best_{k}": v for k, v in f.best_params.items()},
                f"in_sample_{result.metric}": f.in_sample,
                f"out_of_sample_{result.metric}": f.out_of_sample,
            }
            for f in result.folds
        ]
    )


def _iso(ms: int | None) -> str | None:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat() if ms is not None else None


def as_json(result: Result) -> Json:
    best = result.best
    return {
        "metric": result.metric,
        "direction": result.direction,
        "method": result.method,
        "best_params": best.best_params,
        "best_value": best.in_sample,
        "best_out_of_sample": best.out_of_sample,
        "trials": [
            {"fold": t.fold, "trial": t.number, "params": t.params, "status": t.status, "value": t.value, "note": t.note}
            for t in result.trials
        ],
        "folds": [
            {
                "fold": f.number,
                "train": [_iso(f.train[0]), _iso(f.train[1])],
                "test": [_iso(f.test[0]), _iso(f.test[1])] if f.test else None,
                "best_params": f.best_params,
                "in_sample": f.in_sample,
                "out_of_sample": f.out_of_sample,
            }
            for f in result.folds
        ],
    }


def write(result: Result, out: Path, title: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    trials, folds = trials_frame(result), folds_frame(result)
    files = {"trials_csv": out / "trials.csv", "folds_csv": out / "folds.csv", "html": out / "trials.html", "png": out / "trials.png"}
    trials.to_csv(files["trials_csv"], index=False)
    folds.to_csv(files["folds_csv"], index=False)
    files["best"] = out / "best.json"
    files["best"].write_text(strict_dumps(as_json(result)) + "\n")
    names = [c for c in trials.columns if c not in ("fold", "trial", "status", result.metric, "note") and not str(c).startswith("is_")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ok = trials[trials["status"] == "ok"]
    axes[0].plot(range(len(trials)), pd.to_numeric(trials[result.metric], errors="coerce"), "o-")
    axes[0].set_xlabel("trial (in order)")
    axes[0].set_ylabel(f"{result.metric} (in sample, {result.direction})")
    if len(names) >= 2 and len(ok):
        pts = axes[1].scatter(
            pd.to_numeric(ok[names[0]], errors="coerce"), pd.to_numeric(ok[names[1]], errors="coerce"), c=ok[result.metric]
        )
        fig.colorbar(pts, ax=axes[1], label=result.metric)
        axes[1].set_xlabel(str(names[0]))
        axes[1].set_ylabel(str(names[1]))
    elif names and len(ok):
        axes[1].plot(pd.to_numeric(ok[names[0]], errors="coerce"), ok[result.metric], "o")
        axes[1].set_xlabel(str(names[0]))
        axes[1].set_ylabel(result.metric)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(files["png"])
    plt.close(fig)
    files["html"].write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>body{font-family:sans-serif;"
        "margin:2em}table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:3px 6px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>metric: {result.metric} ({result.direction}), method: {result.method}</p>"
        f"<h2>Folds</h2>{folds.to_html(index=False)}<h2>Trials</h2>{trials.to_html(index=False)}"
        f"<img src='{files['png'].name}' alt='trials'></body></html>"
    )
    return files
