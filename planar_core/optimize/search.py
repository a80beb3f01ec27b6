"""The search: Optuna proposes the trials (``GridSampler``, ``RandomSampler`` or ``TPESampler``, seeded), each trial
is a full backtest (``backtest.command.backtest``) in a worker process, and Optuna's ask/tell loop stays in this
process: a batch of ``workers`` trials is asked, run in parallel, then told back in the order asked.

Determinism: the same data, space, seed and number of workers give the same trials, values and best params. Grid and
random give the same trials for any number of workers (their proposals never read the results: the grid sampler
only skips the points already asked); bayes (TPE) proposes its first 10 trials at random, the same for any number of
workers, and each later one from the results told before it, so from the 11th trial on its trials depend on the
batch size (the number of workers): a batch's trials are proposed without each other's results.

Each worker process reads the candles once (the data's path travels, not frames) and slices each trial's window
from them.

Walk-forward (``TRAIN:TEST``): consecutive folds over the data's span, the train window of each followed by its test
window, the next fold starting one test window later; each fold's search runs on its train window, its best params
are then backtested on its test window (out of sample, never seen by the search). Without it: one search on the
whole range.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import shutil
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import optuna
import pandas as pd
from pydantic import ValidationError

from ..backtest.command import backtest, load_history
from ..backtest.run import timeframe_ms, warmup_span_ms
from ..config import StrategyConfig, check_logic
from ..model.types import Json
from .space import Dimension

MINIMISED = frozenset({"max_drawdown", "max_drawdown_abs", "fees"})
METRICS = frozenset(
    {
        "sharpe",
        "return",
        "realized_pnl",
        "net_realized_pnl",
        "final_equity",
        "win_rate",
        "trades",
        "round_trips",
        "winning_round_trips",
        "exposure",
        *MINIMISED,
    }
)  # the backtest summary's figures a search may rank by (backtest/summary.py)
UNITS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class OptimizeError(ValueError):
    """An optimisation that cannot run as asked: one line."""


@dataclass(frozen=True)
class Task:
    """One backtest, as a worker process receives it (everything picklable)."""

    config: Json
    config_dir: str | None
    data: str | None
    data_key: str  # one search's candles: read once per worker process under this key
    params: Json
    start_ms: int | None
    end_ms: int | None
    out: str
    warmup: int


@dataclass
class TrialRow:
    fold: int
    number: int
    params: Json
    status: str  # ok | invalid | error
    value: float | None  # the metric in the train window (in sample)
    summary: Json = field(default_factory=dict)
    note: str = ""
    out_of_sample: float | None = None  # walk-forward: the metric on the fold's test window (the fold's best trial)


@dataclass
class Fold:
    number: int
    train: tuple[int | None, int | None]
    test: tuple[int, int] | None
    best_params: Json
    in_sample: float | None
    out_of_sample: float | None = None
    out_of_sample_summary: Json = field(default_factory=dict)
    best_trial: int | None = None  # the fold's study's trial number of the best params


@dataclass
class Result:
    metric: str
    direction: str
    method: str
    trials: list[TrialRow]
    folds: list[Fold]
    dims: list[Dimension] = field(default_factory=list)

    @property
    def best(self) -> Fold:
        return self.folds[-1]  # the newest fold's: the params a scheduled run proposes


_CANDLES: dict[str, dict[str, pd.DataFrame]] = {}  # this process's candles: {data_key: {symbol: frame}}


def candles(cfg: StrategyConfig, data: Path | None, key: str) -> dict[str, pd.DataFrame]:
    """Every candle of the universe, read once per process and search (``key``); one search's only (memory)."""
    if key not in _CANDLES:
        _CANDLES.clear()
        _CANDLES[key] = {s: pd.concat(list(chunks), ignore_index=True) for s, chunks in load_history(cfg, data, None, None, 0).items()}
    return _CANDLES[key]


def window(frames: dict[str, pd.DataFrame], since: int | None, end: int | None) -> dict[str, pd.DataFrame]:
    """Each symbol's candles from ``since`` (the warm-up's first) to before ``end``."""
    out = {}
    for symbol, df in frames.items():
        ts = df["timestamp"]
        keep = pd.Series(True, index=df.index)
        if since is not None:
            keep &= ts >= since
        if end is not None:
            keep &= ts < end
        out[symbol] = df[keep]
    return out


def run_task(task: Task) -> Json:
    """A worker's job: one backtest, its summary (``error`` when it raised)."""
    cfg = StrategyConfig.model_validate(task.config)
    cfg._config_dir = Path(task.config_dir) if task.config_dir else None
    try:
        frames = candles(cfg, Path(task.data) if task.data else None, task.data_key)
        since = task.start_ms - warmup_span_ms(cfg, task.warmup) if task.start_ms is not None else None
        history = window(frames, since, task.end_ms)
        return _run(lambda: backtest(cfg, history, Path(task.out), task.start_ms, task.end_ms, task.params, task.warmup, report=False))
    except Exception as exc:  # a trial that fails is recorded, never stops the search
        return {"error": f"{type(exc).__name__}: {exc}"}


def _run(make: Callable[[], Coroutine[object, object, Json]]) -> Json:
    """Run a coroutine to its end from synchronous code: in this thread, or in a thread of its own when this one
    already runs an event loop (a Prefect task called from an async flow)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(1) as one:
        return one.submit(lambda: asyncio.run(make())).result()


def duration_ms(text: str, bar_ms: int) -> int:
    if text.isdigit():
        return int(text) * bar_ms
    unit = UNITS.get(text[-1:])
    if unit is None or not text[:-1].replace(".", "", 1).isdigit():
        raise OptimizeError(f"--walk-forward: {text!r} is not a duration (20d, 12h, 90m, 2w) or a candle count")
    return int(float(text[:-1]) * unit)


def folds(spec: str, start: int, end: int, bar_ms: int) -> list[tuple[int, int, int]]:
    """(train start, test start, test end) of each fold over [start, end)."""
    train_s, sep, test_s = spec.partition(":")
    if not sep:
        raise OptimizeError(f"--walk-forward: {spec!r}: expected TRAIN:TEST (e.g. 20d:10d)")
    train, test = duration_ms(train_s, bar_ms), duration_ms(test_s, bar_ms)
    if train <= 0 or test <= 0:  # a test of 0 never moved the next fold on: the fold list grew until memory ran out
        raise OptimizeError(f"--walk-forward {spec}: TRAIN and TEST must both be longer than zero")
    out, t = [], start
    while t + train + test <= end:
        out.append((t, t + train, t + train + test))
        t += test
    if not out:
        raise OptimizeError(f"--walk-forward {spec}: the data spans {(end - start) / 86_400_000:.1f} days, less than one fold")
    return out


def span(cfg: StrategyConfig, data: Path | None) -> tuple[int, int]:
    """The first candle's open and the last candle's close common to the universe's data."""
    step = timeframe_ms(cfg.timeframes[0])
    firsts, lasts = [], []
    for chunks in load_history(cfg, data, None, None, 0).values():
        first = last = None
        for df in chunks:
            first = int(df["timestamp"].iloc[0]) if first is None else first
            last = int(df["timestamp"].iloc[-1])
        if first is None or last is None:
            raise OptimizeError("no candles in the data")
        firsts.append(first)
        lasts.append(last + step)
    return max(firsts), min(lasts)


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler (every point once, in an order drawn from the seed), without its stop: once the grid is
    done it calls ``Study.stop``, which raises outside ``Study.optimize`` (optuna issues 4121, 5141: the ask/tell
    loop cannot take it). The search asks exactly the grid's size (or ``--trials``) and stops by itself."""

    def after_trial(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: optuna.trial.TrialState, values: Sequence[float] | None
    ) -> None:
        return None


def sampler(method: str, dims: list[Dimension], seed: int) -> optuna.samplers.BaseSampler:
    """grid: GridSampler over every point of every dimension; random: RandomSampler; bayes: TPESampler."""
    if method == "grid":
        return GridSampler({d.name: d.points() for d in dims}, seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "bayes":
        return optuna.samplers.TPESampler(seed=seed)
    raise OptimizeError(f"--method: {method!r} is not grid, random or bayes")


class Search:
    def __init__(
        self,
        cfg: StrategyConfig,
        dims: list[Dimension],
        *,
        data: Path | None = None,
        method: str = "bayes",
        metric: str = "sharpe",
        trials: int | None = None,
        workers: int = 1,
        seed: int = 7,
        warmup: int = 100,
        work_dir: Path | None = None,
        progress: Callable[[str], None] = lambda line: None,
    ) -> None:
        if metric not in METRICS:
            raise OptimizeError(f"--metric {metric}: not a backtest figure to rank by (known: {', '.join(sorted(METRICS))})")
        if method not in ("grid", "random", "bayes"):
            raise OptimizeError(f"--method: {method!r} is not grid, random or bayes")
        self.cfg, self.dims, self.data, self.method, self.metric = cfg, dims, data, method, metric
        self.direction: Literal["minimize", "maximize"] = "minimize" if metric in MINIMISED else "maximize"
        size = math.prod(len(d.points()) for d in dims) if method == "grid" else None
        self.trials = trials if trials is not None else (size or 50)
        if size is not None:
            self.trials = min(self.trials, size)
        self.workers, self.seed, self.warmup, self.progress = workers, seed, warmup, progress
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="planar-optimize-"))
        self.logic = check_logic(cfg.logic or "", cfg.logic_params or {}, cfg.config_dir)
        self._count = 0
        self._data_key = uuid.uuid4().hex  # this search's candles, read once per worker process
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def _task(self, params: Json, start: int | None, end: int | None) -> Task:
        self._count += 1
        return Task(
            self.cfg.model_dump(mode="json"),
            str(self.cfg.config_dir) if self.cfg.config_dir else None,
            str(self.data) if self.data else None,
            self._data_key,
            params,
            start,
            end,
            str(self.work_dir / f"trial-{self._count:05d}"),
            self.warmup,
        )

    def evaluate(self, params: Json, start: int | None, end: int | None) -> tuple[float | None, Json]:
        """One backtest of ``params`` between ``start`` and ``end``: the metric and the summary."""
        summary = run_task(self._task(params, start, end))
        return self._value(summary), summary

    def _value(self, summary: Json) -> float | None:
        v = summary.get(self.metric)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None

    def _batches(self, study: optuna.Study, n: int) -> Iterator[list[tuple[optuna.Trial, Json]]]:
        asked = 0
        while asked < n:
            batch: list[tuple[optuna.Trial, Json]] = []
            for _ in range(min(self.workers, n - asked)):
                trial = study.ask()
                batch.append((trial, {d.name: d.suggest(trial) for d in self.dims}))
                asked += 1
            yield batch

    def _search(self, pool: Executor | None, fold: int, start: int | None, end: int | None, rows: list[TrialRow]) -> optuna.Study:
        study = optuna.create_study(direction=self.direction, sampler=sampler(self.method, self.dims, self.seed))
        for batch in self._batches(study, self.trials):
            valid: list[tuple[optuna.Trial, Json]] = []
            for trial, params in batch:
                try:
                    self.logic.Params.model_validate({**(self.cfg.logic_params or {}), **params})
                except ValidationError as exc:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    rows.append(TrialRow(fold, trial.number, params, "invalid", None, note=exc.errors()[0]["msg"]))
                    continue
                valid.append((trial, params))
            tasks = [self._task(p, start, end) for _, p in valid]
            summaries = list(pool.map(run_task, tasks)) if pool is not None else [run_task(t) for t in tasks]
            for (trial, params), summary in zip(valid, summaries):
                value = self._value(summary)
                if summary.get("callback_errors"):  # the logic raised: its figures are not the params' (never the best)
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    why = f"the logic raised {summary['callback_errors']} times: {summary.get('first_callback_error')}"
                    rows.append(TrialRow(fold, trial.number, params, "error", None, summary, why))
                elif value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    status = "error" if "error" in summary else "ok"
                    rows.append(TrialRow(fold, trial.number, params, status, None, summary, str(summary.get("error", f"no {self.metric}"))))
                else:
                    study.tell(trial, value)
                    gap = f"the data has gaps: {summary['missing_candles']} candles missing" if summary.get("missing_candles") else ""
                    rows.append(TrialRow(fold, trial.number, params, "ok", value, summary, gap))
                self.progress(f"fold {fold} trial {trial.number}: {params} -> {self.metric} {value}")
        return study

    def run(self, start: int | None = None, end: int | None = None, walk_forward: str | None = None) -> Result:
        load_history(self.cfg, self.data, None, None, 0)  # a missing file is refused here, not in every trial
        # a backtest appends to the trace already in its folder: an earlier search's trials here would count twice
        for old in self.work_dir.glob("trial-[0-9]*"):
            if old.is_dir():
                shutil.rmtree(old)
        rows: list[TrialRow] = []
        out: list[Fold] = []
        pool: Executor | None = None
        if self.workers > 1:
            pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            if walk_forward is None:
                study = self._search(pool, 0, start, end, rows)
                best = study.best_trial if _any_complete(study) else None
                out.append(
                    Fold(
                        0,
                        (start, end),
                        None,
                        dict(best.params) if best else {},
                        best.value if best else None,
                        best_trial=best.number if best else None,
                    )
                )
            else:
                bar = timeframe_ms(self.cfg.timeframes[0])
                first, last = span(self.cfg, self.data)
                first, last = max(first, start or first), min(last, end or last)  # folds from the first candle
                for i, (t0, t1, t2) in enumerate(folds(walk_forward, first, last, bar)):
                    study = self._search(pool, i, t0, t1, rows)
                    if not _any_complete(study):
                        out.append(Fold(i, (t0, t1), (t1, t2), {}, None))
                        continue
                    best = study.best_trial
                    summary = run_task(self._task(dict(best.params), t1, t2))
                    oos = None if summary.get("callback_errors") else self._value(summary)
                    out.append(Fold(i, (t0, t1), (t1, t2), dict(best.params), best.value, oos, summary, best.number))
                    for row in rows:
                        if row.fold == i and row.number == best.number:
                            row.out_of_sample = oos
        finally:
            if pool is not None:
                pool.shutdown()
        return Result(self.metric, self.direction, self.method, rows, out, self.dims)


def _any_complete(study: optuna.Study) -> bool:
    return any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
