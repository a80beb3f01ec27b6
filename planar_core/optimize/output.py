"""What an optimisation leaves behind: ``trials.csv`` / ``trials.html`` (every trial: fold, params, status, the
metric in sample, the summary's other figures (``is_*``, in sample) and, walk-forward, the out-of-sample metric of
each fold's best trial), ``folds.csv`` (each fold's windows, best params, in- and out-of-sample metric),
``trials.png`` (the metric per trial; the first two params coloured by the metric), ``best.json`` (the chosen
params, the metric, its direction and values); and the strict-JSON object ``--json`` prints."""

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

FIGURES = ("trades", "realized_pnl", "return", "max_drawdown", "sharpe", "win_rate", "exposure", "fees", "final_equity")


def trials_frame(result: Result) -> pd.DataFrame:
    walk_forward = any(f.test is not None for f in result.folds)
    rows = []
    for t in result.trials:
        row: dict[str, object] = {"fold": t.fold, "trial": t.number, "status": t.status, **t.params, result.metric: t.value}
        if walk_forward:
            row[f"oos_{result.metric}"] = t.out_of_sample
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
            {
                "fold": t.fold,
                "trial": t.number,
                "params": t.params,
                "status": t.status,
                "value": t.value,
                "out_of_sample": t.out_of_sample,
                "summary": {k: t.summary.get(k) for k in FIGURES if k in t.summary},
                "note": t.note,
            }
            for t in result.trials
        ],
        "folds": [
            {
                "fold": f.number,
                "train": [_iso(f.train[0]), _iso(f.train[1])],
                "test": [_iso(f.test[0]), _iso(f.test[1])] if f.test else None,
                "best_params": f.best_params,
                "best_trial": f.best_trial,
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
    full = as_json(result)
    best = {k: full[k] for k in ("best_params", "best_value", "best_out_of_sample", "metric", "direction", "method")}
    files["best"].write_text(strict_dumps(best) + "\n")
    names = [d.name for d in result.dims]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ok = trials[trials["status"] == "ok"]
    axes[0].plot(range(len(trials)), pd.to_numeric(trials[result.metric], errors="coerce"), "o-")
    axes[0].set_xlabel("trial (in order)")
    axes[0].set_ylabel(f"{result.metric} (in sample, {result.direction})")
    axes[1].set_title(f"{result.metric} by params (ok trials)")
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
